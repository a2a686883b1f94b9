//! The dispatch queue on Redis, with two replicas on one PostgreSQL: bots
//! queued on B wait in their region's stream while no worker is there.
//! Then a replica that read two entries dies without acknowledging them, and
//! one entry is lost outright. When a worker links to A, every bot is
//! leased once: the fresh entries read, the dead replica's claimed, the
//! lost one found missing and added again, all well before A's database
//! poll (30 s) could have done it. Settled entries leave the stream. And
//! an entry lost while others wait in the stream is added again by the
//! dispatcher's sweep, without waiting for the stream to empty.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use support::*;

const DISPATCHED: [&str; 4] = ["DISPATCHED", "JOINING", "WAITING_ROOM", "IN_CALL"];

async fn metric(http: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The one dispatch stream of this deployment's region `local`.
async fn stream_key(conn: &mut redis::aio::MultiplexedConnection) -> String {
    let keys: Vec<String> = conn.keys("attache:*:dispatch:local").await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// The key of region `local`'s dispatch stream, once it holds `n` entries.
async fn stream_holding(conn: &mut redis::aio::MultiplexedConnection, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = conn.keys("attache:*:dispatch:local").await.unwrap();
        if let [k] = keys.as_slice()
            && conn.xlen::<_, usize>(k).await.unwrap() == n
        {
            return k.clone();
        }
        assert!(Instant::now() < deadline, "{n} entries never in {keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_bots_are_offered_once_claimed_from_a_dead_replica_and_readded_when_lost() {
    let (Some(db), Some(redis)) = (fresh_postgres("dispatch_streams"), RedisServer::start()) else {
        return;
    };
    let mut cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: Some(redis.url.clone()),
        api_limit: Some((100_000, 100_000)),
        tweak: Some(|c| {
            c.dispatch_interval = Duration::from_secs(30);
            c.dispatch_claim_idle = Duration::from_secs(1);
        }),
        ..Default::default()
    })
    .await;
    let url = redis.url.clone();
    let b = cluster
        .replica(&db, move |c| {
            c.redis_url = Some(url);
            (c.api_per_minute, c.api_burst) = (100_000, 100_000);
            c.dispatch_interval = Duration::from_secs(30);
            c.dispatch_claim_idle = Duration::from_secs(1);
        })
        .await;
    let api_a = cluster.tenant("acme").await;
    let api_b = Api::new(&b, &api_a.key);
    // Both replicas listen before anything is queued.
    for http in [&cluster.http, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(http, "attache_control_plane_redis_degraded").await != 0.0 {
            assert!(Instant::now() < deadline, "{http} stays degraded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut bots = Vec::new();
    for n in 0..4 {
        let meeting = cluster.meeting(&format!("stream-{n}"), "admission=manual");
        bots.push(api_b.create_bot(&meeting, &format!("Queued {n}")).await);
    }
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = stream_holding(&mut conn, 4).await;
    assert_eq!(stream_key(&mut conn).await, key);
    let members = key.replace("dispatch:local", "dispatch:queued");

    // A replica reads two entries and dies: they stay pending under its name.
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("dispatchers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap_or(redis::Value::Okay);
    let opts = StreamReadOptions::default()
        .group("dispatchers", "a-replica-that-died")
        .count(2);
    let read: StreamReadReply = conn.xread_options(&[&key], &[">"], &opts).await.unwrap();
    let orphaned: Vec<String> = read.keys[0]
        .ids
        .iter()
        .map(|e| e.get::<String>("bot").unwrap())
        .collect();
    assert_eq!(orphaned.len(), 2);
    // And one entry of the other two is lost.
    let rest: redis::streams::StreamRangeReply = conn.xrange_all(&key).await.unwrap();
    let lost = rest
        .ids
        .iter()
        .find(|e| !orphaned.contains(&e.get::<String>("bot").unwrap()))
        .unwrap()
        .clone();
    let lost_bot: String = lost.get("bot").unwrap();
    let _: usize = conn.xdel(&key, &[&lost.id]).await.unwrap();
    let _: usize = conn.srem(&members, &lost_bot).await.unwrap();
    for id in &bots {
        assert_eq!(api_a.bot(id).await["status"], "QUEUED");
    }

    // A worker links to A: every bot is dispatched, once, long before a
    // poll.
    let started = Instant::now();
    cluster.add_worker(4).await;
    let mut took = HashMap::new();
    let deadline = started + Duration::from_secs(20);
    while took.len() < bots.len() {
        for id in &bots {
            if took.contains_key(id) {
                continue;
            }
            let b = api_a.bot(id).await;
            if DISPATCHED.iter().any(|s| b["status"] == *s) {
                took.insert(id.clone(), started.elapsed());
            }
            assert!(Instant::now() < deadline, "never dispatched: {b:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut entries = Vec::new();
    for o in ["read", "claimed", "readded", "settled", "put_back"] {
        let name = format!("attache_control_plane_dispatch_entries_total{{outcome=\"{o}\"}}");
        entries.push(format!("{o} {}", metric(&cluster.http, &name).await));
    }
    eprintln!(
        "dispatch streams: fresh, claimed ({orphaned:?}) and readded ({lost_bot}) bots leased after {took:?}; A's entries: {}",
        entries.join(", ")
    );
    for id in &bots {
        let leases = cluster.admin.bot_leases(id).await.unwrap();
        assert_eq!(leases.len(), 1, "{id}: {leases:?}");
    }
    let a = &cluster.http;
    assert!(
        metric(
            a,
            "attache_control_plane_dispatch_entries_total{outcome=\"claimed\"}"
        )
        .await
            >= 2.0
    );
    assert!(
        metric(
            a,
            "attache_control_plane_dispatch_entries_total{outcome=\"readded\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(
        metric(
            a,
            "attache_control_plane_redis_fallbacks_total{operation=\"dispatch\"}"
        )
        .await,
        0.0
    );
    // Settled entries are acknowledged and gone; no bot is left marked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let len: usize = conn.xlen(&key).await.unwrap();
        let marked: usize = conn.scard(&members).await.unwrap();
        if len == 0 && marked == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{len} entries, {marked} marked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sweep: an entry lost while its stream still holds others (here no
/// worker has room, so no pass reads the stream at all) is added again
/// within the sweep's period, not once the stream has emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_lost_behind_others_is_added_again_by_the_sweep() {
    let (Some(db), Some(redis)) = (fresh_postgres("dispatch_sweep"), RedisServer::start()) else {
        return;
    };
    let cluster = Cluster::start_with(Options {
        database_url: Some(db),
        redis_url: Some(redis.url.clone()),
        api_limit: Some((100_000, 100_000)),
        tweak: Some(|c| c.dispatch_interval = Duration::from_secs(30)),
        ..Default::default()
    })
    .await;
    let api = cluster.tenant("acme").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&cluster.http, "attache_control_plane_redis_degraded").await != 0.0 {
        assert!(Instant::now() < deadline, "stays degraded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 0..3 {
        let meeting = cluster.meeting(&format!("sweep-{n}"), "admission=manual");
        api.create_bot(&meeting, &format!("Queued {n}")).await;
    }
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = stream_holding(&mut conn, 3).await;
    let members = key.replace("dispatch:local", "dispatch:queued");
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&key).await.unwrap();
    let lost = entries.ids[1].clone();
    let lost_bot: String = lost.get("bot").unwrap();
    let _: usize = conn.xdel(&key, &[&lost.id]).await.unwrap();
    let _: usize = conn.srem(&members, &lost_bot).await.unwrap();

    let readded = "attache_control_plane_dispatch_entries_total{outcome=\"readded\"}";
    let lost_at = Instant::now();
    let deadline = lost_at + Duration::from_secs(20);
    loop {
        let back: bool = conn.sismember(&members, &lost_bot).await.unwrap();
        if back {
            break;
        }
        assert!(Instant::now() < deadline, "{lost_bot} never added again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "dispatch sweep: the lost entry was back after {:?}",
        lost_at.elapsed()
    );
    assert_eq!(metric(&cluster.http, readded).await, 1.0);
    let bots: Vec<String> = conn
        .xrange_all::<_, redis::streams::StreamRangeReply>(&key)
        .await
        .unwrap()
        .ids
        .iter()
        .map(|e| e.get::<String>("bot").unwrap())
        .collect();
    assert_eq!(bots.len(), 3, "{bots:?}");
    assert!(bots.contains(&lost_bot), "{bots:?}");
}
