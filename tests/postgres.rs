//! The same migrations and the same control plane on a real PostgreSQL
//! server (started by `scripts/test` on a port of its own and passed in
//! `ATTACHE_TEST_POSTGRES_URL`).

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

fn postgres_url() -> Option<String> {
    match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_lives_its_whole_life_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let url = own_postgres_database(&url, "lifecycle");
    // Migrating twice is a no-op the second time.
    let mut cp = attache_control_plane::Config::local(temp_dir("pg-migrate"));
    cp.database_url = Some(url.clone());
    attache_control_plane::Admin::open(&cp)
        .await
        .expect("migrates");
    attache_control_plane::Admin::open(&cp)
        .await
        .expect("migrates again");

    let mut cluster = Cluster::start_with(Options {
        database_url: Some(url),
        ..Default::default()
    })
    .await;
    cluster.add_worker(2).await;
    let suffix = std::process::id();
    let a = cluster.tenant(&format!("pg-a-{suffix}")).await;
    let b = cluster.tenant(&format!("pg-b-{suffix}")).await;
    let id = a
        .create_bot(
            &cluster.meeting("pg", "admission=open&script=demo"),
            "Postgres Bot",
        )
        .await;
    a.wait_status(&id, "IN_CALL", Duration::from_secs(30)).await;
    // Alice speaks at 1 s, Carol joins at 2.5 s, Bob writes at 4 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        b.error_code(
            "query($id: ID!) { bot(id: $id) { id } }",
            json!({ "id": id })
        )
        .await,
        "NOT_FOUND"
    );
    a.leave(&id).await;
    let bot = a.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    assert_eq!(bot["statusReason"], "LEAVE_REQUESTED");
    // What the bot heard and saw is stored on PostgreSQL too.
    let m = a.media(&id).await;
    assert_eq!(m["recording"]["status"], "READY", "{m:#}");
    assert_eq!(m["speakerTimeline"][0]["name"], "Alice", "{m:#}");
    assert_eq!(m["chatMessages"][0]["sender"], "Bob", "{m:#}");
    let names: Vec<&str> = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        statuses(&bot),
        [
            "QUEUED",
            "DISPATCHED",
            "JOINING",
            "IN_CALL",
            "LEAVING",
            "ENDED"
        ]
    );
    let page = a
        .gql(
            "{ bots(first: 1, status: ENDED) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(page["bots"]["totalCount"], 1);
    assert_eq!(page["bots"]["edges"][0]["node"]["id"], id.as_str());
    // Creating the same tenant twice is refused by name, on any backend.
    let again = cluster
        .admin
        .create_tenant(&format!("pg-a-{suffix}"), "local")
        .await;
    assert!(again.is_err());
}
