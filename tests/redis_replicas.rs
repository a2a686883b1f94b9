//! Control-plane replicas on one PostgreSQL database and one Redis: what
//! happens on one replica reaches the others at once. A subscriber on C
//! sees, in order, every event and every final transcript segment of a bot
//! created on B and run by a worker linked to A; leaveBot on B reaches that worker within a second; a
//! tenant's burst is N in all, not N per replica. With Redis killed the
//! replicas serve from PostgreSQL alone and say so; when it is back, no bot
//! is stuck and no stored event is missing from a live feed.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const JOIN: Duration = Duration::from_secs(40);

/// `/readyz`'s body, once it answers.
async fn readiness(http: &str) -> String {
    reqwest::get(format!("{http}/readyz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `/readyz` says `want` (`ready`, or degraded).
async fn wait_ready(http: &str, degraded: bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let r = readiness(http).await;
        if r.contains("degraded") == degraded && r.starts_with("ready") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{http}: {r:?}, want degraded={degraded}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(http: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the bot's status is one of `want`; returns how long that took.
async fn until_status(api: &Api, id: &str, want: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let b = api.bot(id).await;
        if want.iter().any(|w| b["status"] == *w) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "never {want:?}: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The bot's final transcript segments as stored: (id, text), in order.
async fn stored_finals(api: &Api, id: &str) -> Vec<(String, String)> {
    let v = api
        .gql(
            "query($id: ID!) { bot(id: $id) { transcript(first: 500) { edges { node { id text isFinal } } } } }",
            json!({ "id": id }),
        )
        .await;
    v["bot"]["transcript"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["isFinal"] == true)
        .map(|n| {
            (
                n["id"].as_str().unwrap().into(),
                n["text"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_linked_to_one_replica_is_followed_and_stopped_from_the_others() {
    let (Some(db), Some(redis)) = (fresh_postgres("redis_replicas"), redis_url()) else {
        return;
    };
    // A holds the worker's link. Left to itself it would dispatch a bot
    // queued elsewhere only at its next poll (30 s) and repeat a leave only
    // at its next sweep (8 s): what happens sooner came over the bus.
    let mut cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: Some(redis.clone()),
        api_limit: Some((100_000, 100_000)),
        tweak: Some(|c| {
            c.heartbeat_interval = Duration::from_secs(2);
            c.worker_grace = Duration::from_secs(15);
            c.dispatch_interval = Duration::from_secs(30);
            c.default_transcription = attache_control_plane::DefaultTranscription::Local;
        }),
        ..Default::default()
    })
    .await;
    // The same deployment's timings; the test polls fast, and API limits
    // are now shared: lift them.
    let replica = |c: &mut attache_control_plane::Config| {
        c.redis_url = Some(redis.clone());
        (c.api_per_minute, c.api_burst) = (100_000, 100_000);
        c.heartbeat_interval = Duration::from_secs(2);
        c.worker_grace = Duration::from_secs(15);
    };
    let b = cluster.replica(&db, replica).await;
    let c = cluster.replica(&db, replica).await;
    for http in [&cluster.http, &b, &c] {
        wait_ready(http, false, Duration::from_secs(10)).await;
    }
    cluster.add_worker(2).await;
    let api_a = cluster.tenant("acme").await;
    let api_b = Api::new(&b, &api_a.key);
    let api_c = Api::new(&c, &api_a.key);

    let bot = api_b
        .create_bot(
            &cluster.meeting("relay", "admission=open&script=demo-loop"),
            "Relay Bot",
        )
        .await;
    let feed = subscribe(&api_c, &bot).await;
    let words = subscribe_transcript(&api_c, &bot).await;
    let joined = until_status(&api_c, &bot, &["IN_CALL"], Duration::from_secs(25)).await;
    eprintln!("redis: created on B, dispatched by A, IN_CALL after {joined:.1?}");
    // Some words are spoken and stored (by A) before the bot leaves.
    let deadline = Instant::now() + Duration::from_secs(90);
    while stored_finals(&api_c, &bot).await.is_empty() {
        assert!(Instant::now() < deadline, "nothing transcribed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Asked to leave on B: the worker, linked to A, hears it at once.
    api_b.leave(&bot).await;
    let heard = until_status(&api_c, &bot, &["LEAVING", "ENDED"], JOIN).await;
    eprintln!("redis: leaveBot on B reached the worker on A in {heard:.2?}");
    assert!(heard < Duration::from_secs(1), "leave took {heard:?}");
    let ended = api_c.wait_status(&bot, "ENDED", JOIN).await;
    assert_eq!(ended["statusReason"], "LEAVE_REQUESTED", "{ended:#}");

    // C's subscriber saw every stored event, in order, and the end.
    let seen = tokio::time::timeout(Duration::from_secs(10), feed)
        .await
        .expect("the feed on C completes")
        .unwrap()
        .expect("no errors");
    assert_eq!(
        seen,
        statuses(&ended),
        "C's live feed against what is stored"
    );
    // And every final segment A stored, words and all, read on C.
    let live: Vec<(String, String)> = tokio::time::timeout(Duration::from_secs(10), words)
        .await
        .expect("the transcript feed on C completes")
        .unwrap()
        .into_iter()
        .filter(|(_, s)| s["isFinal"] == true)
        .map(|(_, s)| {
            (
                s["id"].as_str().unwrap().into(),
                s["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(live, stored_finals(&api_c, &bot).await);
    assert!(
        metric(
            &c,
            "attache_control_plane_bus_notices_total{outcome=\"received\"}"
        )
        .await
        .is_some_and(|n| n > 0.0),
        "C heard the others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_burst_holds_across_replicas() {
    let (Some(db), Some(redis)) = (fresh_postgres("redis_burst"), redis_url()) else {
        return;
    };
    const BURST: u32 = 4;
    let limit = |c: &mut attache_control_plane::Config| {
        c.create_bot_per_minute = 1;
        c.create_bot_burst = BURST;
    };
    let cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: Some(redis.clone()),
        create_bot_limit: Some((1, BURST)),
        ..Default::default()
    })
    .await;
    let mut apis = vec![cluster.tenant("bursty").await];
    for _ in 0..2 {
        let http = cluster
            .replica(&db, |c| {
                limit(c);
                c.redis_url = Some(redis.clone());
            })
            .await;
        apis.push(Api::new(&http, &apis[0].key));
    }
    for api in &apis {
        wait_ready(&api.http, false, Duration::from_secs(10)).await;
    }
    let (mut created, mut limited) = (0, 0);
    for i in 0..(3 * BURST) {
        let api = &apis[i as usize % 3];
        let (_, v) = api
            .raw(
                "mutation($url: String!) { createBot(input: {meetingUrl: $url}) { id } }",
                json!({ "url": cluster.meeting(&format!("burst-{i}"), "") }),
            )
            .await;
        match v["errors"][0]["extensions"]["code"].as_str() {
            None => created += 1,
            Some("RATE_LIMITED") => limited += 1,
            Some(other) => panic!("{other}: {v}"),
        }
    }
    assert_eq!(
        (created, limited),
        (BURST, 2 * BURST),
        "a burst of {BURST} in all, over 3 replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_and_back_no_bot_is_stuck_and_no_event_missed() {
    let (Some(db), Some(mut redis)) = (fresh_postgres("redis_down"), RedisServer::start()) else {
        return;
    };
    let mut cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let url = redis.url.clone();
    let b = cluster.replica(&db, |c| c.redis_url = Some(url)).await;
    for http in [&cluster.http, &b] {
        wait_ready(http, false, Duration::from_secs(10)).await;
    }
    cluster.add_worker(2).await;
    let api_a = cluster.tenant("acme").await;
    let api_b = Api::new(&b, &api_a.key);

    let lobby = api_b
        .create_bot(&cluster.meeting("down-1", "admission=manual"), "Lobby Bot")
        .await;
    let lobby_feed = subscribe(&api_b, &lobby).await;
    api_b.wait_status(&lobby, "WAITING_ROOM", JOIN).await;

    redis.kill();
    for http in [&cluster.http, &b] {
        wait_ready(http, true, Duration::from_secs(10)).await;
    }
    assert_eq!(
        metric(&b, "attache_control_plane_redis_degraded").await,
        Some(1.0)
    );
    // Admitted while Redis is down: B's subscriber still hears it (from
    // stored history).
    cluster.host("down-1", "admit", Some("Lobby Bot")).await;
    api_b.wait_status(&lobby, "IN_CALL", JOIN).await;
    // Created on B while Redis is down: A dispatches it by polling.
    let call = api_b
        .create_bot(
            &cluster.meeting("down-2", "admission=open&script=demo-loop"),
            "Outage Bot",
        )
        .await;
    let call_feed = subscribe(&api_b, &call).await;
    api_b.wait_status(&call, "IN_CALL", JOIN).await;
    assert!(
        metric(
            &b,
            "attache_control_plane_redis_fallbacks_total{operation=\"rate_limit\"}"
        )
        .await
        .is_some_and(|n| n > 0.0),
        "B limited on its own while Redis was down"
    );
    // Asked to leave on B: A's sweep repeats the request to its worker.
    api_b.leave(&lobby).await;
    let ended = api_b.wait_status(&lobby, "ENDED", JOIN).await;

    redis.restart();
    for http in [&cluster.http, &b] {
        wait_ready(http, false, Duration::from_secs(15)).await;
    }
    api_b.leave(&call).await;
    let call_ended = api_b.wait_status(&call, "ENDED", JOIN).await;

    for (feed, stored) in [(lobby_feed, &ended), (call_feed, &call_ended)] {
        let seen = tokio::time::timeout(Duration::from_secs(10), feed)
            .await
            .expect("the feed completes")
            .unwrap()
            .expect("no errors");
        assert_eq!(seen, statuses(stored), "live feed against what is stored");
    }
    for id in [&lobby, &call] {
        let b = api_a.bot(id).await;
        assert_eq!(b["statusReason"], "LEAVE_REQUESTED", "{b:#}");
    }
}

/// Replicas keep the keys that authenticated, so a request needs no
/// database read; a key revoked on one replica still stops at the very
/// next request on the others, which had just answered to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_at_the_next_request_on_every_replica() {
    let (Some(db), Some(redis)) = (fresh_postgres("redis_revoke"), redis_url()) else {
        return;
    };
    let cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: Some(redis.clone()),
        ..Default::default()
    })
    .await;
    let owner = cluster.tenant("revoking").await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let redis = redis.clone();
        others.push(cluster.replica(&db, |c| c.redis_url = Some(redis)).await);
    }
    for http in others.iter().chain([&owner.http]) {
        wait_ready(http, false, Duration::from_secs(10)).await;
    }
    let viewer = |api: &Api| {
        let api = api.clone();
        async move { api.raw("{ viewer { role } }", json!({})).await.1 }
    };
    for round in 0..3 {
        let v = owner
            .gql(
                "mutation { createApiKey(name: \"ci\", role: DEVELOPER) { apiKey { id } secret } }",
                json!({}),
            )
            .await;
        let key = &v["createApiKey"];
        let secret = key["secret"].as_str().unwrap();
        let apis: Vec<Api> = others.iter().map(|h| Api::new(h, secret)).collect();
        for api in &apis {
            for _ in 0..3 {
                let v = viewer(api).await;
                assert!(
                    v["data"]["viewer"]["role"].is_string(),
                    "round {round}: {v}"
                );
            }
        }
        owner
            .gql(
                "mutation($id: ID!) { revokeApiKey(id: $id) { id active } }",
                json!({ "id": key["apiKey"]["id"] }),
            )
            .await;
        for api in &apis {
            let v = viewer(api).await;
            assert_eq!(
                v["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
                "round {round}, {}: {v}",
                api.http
            );
        }
    }
}
