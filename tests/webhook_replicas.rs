//! Three control-plane replicas on one PostgreSQL database share one
//! webhook outbox: every delivery is sent by one of them, once per
//! `webhook-id`, in order per bot, and each attempt is claimed before it is
//! made, so no replica sends what another is sending.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_control_plane::ControlPlane;
use axum::http::HeaderMap;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;
use support::*;
use tokio_util::sync::CancellationToken;

const BOTS: usize = 70;

/// Every request the endpoint received: (webhook-id, body).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver(seen: Seen) -> String {
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                // Slow enough that replicas polling every 250 ms overlap.
                tokio::time::sleep(Duration::from_millis(40)).await;
                let id = headers["webhook-id"].to_str().unwrap().to_string();
                seen.lock().unwrap().push((id, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hooks")
}

async fn count(url: &str, sql: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_deliver_each_webhook_once() {
    let Some(url) = fresh_postgres("webhook_replicas") else {
        return;
    };
    let cluster = Cluster::start_with(Options {
        database_url: Some(url.clone()),
        create_bot_limit: Some((100_000, 100_000)),
        api_limit: Some((100_000, 100_000)),
        tweak: Some(|c| c.webhook_allow_private = true),
        ..Default::default()
    })
    .await;
    // Two more replicas of the same deployment: its database and keys.
    let mut replicas = Vec::new();
    for i in 0..2 {
        let dir = temp_dir(&format!("webhook-replica-{i}"));
        let mut c = cp_config(&dir, &cluster.sandbox, "127.0.0.1:0".parse().unwrap());
        c.database_url = Some(url.clone());
        c.master_key_file = Some(cluster.dir.join("cp").join("master.key"));
        c.erasable_key_dir = Some(cluster.dir.join("cp").join("erasable-keys"));
        c.webhook_allow_private = true;
        let cp = ControlPlane::build(c).await.unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(cp.run(stop.clone()));
        replicas.push((stop, task));
    }

    let seen: Seen = Arc::default();
    let hooks = receiver(seen.clone()).await;
    let api = cluster.tenant("hooks").await;
    api.gql(
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) { secret } }",
        json!({ "url": hooks }),
    )
    .await;
    // Each bot queued, then asked to leave: a few events each.
    for i in 0..BOTS {
        let id = api
            .create_bot(&cluster.meeting(&format!("hooks-{i}"), ""), "Hook Bot")
            .await;
        api.leave(&id).await;
    }
    let stored = count(&url, "SELECT count(*) AS n FROM webhook_deliveries").await;
    assert!(stored >= 2 * BOTS as i64, "{stored} deliveries");

    let started = Instant::now();
    loop {
        let pending = count(
            &url,
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status <> 'DELIVERED'",
        )
        .await;
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{pending} deliveries still not delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give any duplicate in flight time to land.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = seen.lock().unwrap().clone();
    let mut times: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &seen {
        *times.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {} webhook-ids sent more than once, e.g. {:?}",
        twice.len(),
        times.len(),
        &twice[..twice.len().min(3)]
    );
    assert_eq!(times.len() as i64, stored, "every delivery sent");
    // In order per bot: a bot's events arrive in the order they happened.
    let mut last: HashMap<String, String> = HashMap::new();
    for (_, body) in &seen {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let bot = v["data"]["botId"].as_str().unwrap_or_default().to_string();
        let at = v["timestamp"].as_str().unwrap_or_default().to_string();
        if let Some(prev) = last.get(&bot) {
            assert!(*prev <= at, "bot {bot}: {prev} then {at}");
        }
        last.insert(bot, at);
    }
    println!(
        "webhooks: {stored} deliveries over 3 replicas, each sent once, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (stop, task) in replicas {
        stop.cancel();
        let _ = task.await;
    }
}
