//! One box under load, as its bots see it. A bot whose own page stops
//! answering says so: `PAGE_STALLED` while it waits, and in the end
//! `PAGE_UNRESPONSIVE` rather than the platform reason the stall brought
//! about (the sandbox, like a real platform, drops a peer silent for 5 s,
//! and its page then shows the call over). And bots created together load
//! their pages a few at a time (`--max-joining`), the others waiting their
//! turn.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

async fn warnings(api: &Api, id: &str) -> Vec<Value> {
    api.media(id).await["warnings"].as_array().unwrap().clone()
}

async fn wait_final(api: &Api, id: &str, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let b = api.bot(id).await;
        if b["endedAt"].is_string() {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bot did not end: {b:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A bot in a sandbox meeting whose page hangs as `hang` says, from its
/// call to its end: it must fail PAGE_UNRESPONSIVE. Returns the cluster,
/// the client, the bot's id and its last event's detail.
async fn hung_bot(meeting: &str, hang: &str) -> (Cluster, Api, String, String) {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;
    let query = format!("admission=open&script=demo-loop&{hang}");
    let id = api
        .create_bot(&cluster.meeting(meeting, &query), "Hung Bot")
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    let b = wait_final(&api, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (b["status"].as_str(), b["statusReason"].as_str()),
        (Some("FAILED"), Some("PAGE_UNRESPONSIVE")),
        "{b:#}"
    );
    let detail = b["events"].as_array().unwrap().last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    (cluster, api, id, detail)
}

/// The page hangs for 9 s in the call; the sandbox drops it meanwhile and,
/// once it runs again, it shows the call as left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_hung_and_was_dropped_ends_with_the_stall_as_its_reason() {
    let (cluster, api, id, detail) = hung_bot("hang", "hang_ms=9000&hang_after_ms=1500").await;
    assert!(
        detail.contains("stalled for") && detail.contains("the platform showed"),
        "the detail says what happened and what the page showed: {detail}"
    );
    let w = warnings(&api, &id).await;
    let stalled: Vec<&Value> = w.iter().filter(|w| w["code"] == "PAGE_STALLED").collect();
    assert_eq!(stalled.len(), 1, "one warning for one stall: {w:#?}");
    assert!(
        stalled[0]["message"]
            .as_str()
            .unwrap()
            .contains("not answered")
    );

    let worker = cluster.worker_metrics_text(0).await;
    assert_eq!(
        metric(&worker, "attache_edge_worker_page_stalls_total "),
        1.0
    );
    assert_eq!(metric(&worker, "attache_edge_worker_pages_stalled "), 0.0);
    let cp = cluster.metrics().await;
    assert!(
        metric(
            &cp,
            "attache_control_plane_bot_warnings_total{code=\"PAGE_STALLED\"}"
        ) >= 1.0
    );
}

/// A page that never answers again is given up after 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_hung_for_good_is_given_up() {
    let (_cluster, api, id, detail) = hung_bot("hung", "hang_ms=90000&hang_after_ms=1000").await;
    assert!(detail.contains("did not answer for 20 s"), "{detail}");
    assert!(
        warnings(&api, &id)
            .await
            .iter()
            .any(|w| w["code"] == "PAGE_STALLED")
    );
    // Its recording was closed as for any other ending.
    let m = api.media(&id).await;
    assert!(m["recording"]["durationMs"].as_u64().unwrap() > 0, "{m:#}");
}

/// A worker starts Chromium when it starts, before any bot, and its first
/// bot joins in that browser; a worker told to wait starts none until a
/// bot needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_starts_with_the_worker_not_with_its_first_bot() {
    let mut cluster = Cluster::start().await;
    cluster
        .add_worker_with(1, "local", None, |w| w.browser_at_start = true)
        .await;
    cluster.add_worker_in(1, "later", None).await;
    let starts = |m: &str| metric(m, "attache_edge_worker_browser_starts_total ");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while starts(&cluster.worker_metrics_text(0).await) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "Chromium did not start with the worker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(starts(&cluster.worker_metrics_text(1).await), 0.0);
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("warm", "admission=open&script=demo-loop"),
            "Warm Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(60))
        .await;
    let m = cluster.worker_metrics_text(0).await;
    assert_eq!(metric(&m, "attache_edge_worker_bots_active "), 1.0, "{m}");
    assert_eq!(starts(&m), 1.0, "the bot used the browser already running");
    api.leave(&id).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
}

/// With one page loading at a time, bots created together wait their turn
/// (the worker's gauge shows them waiting) and all reach their calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_created_together_load_their_pages_in_turn() {
    let mut cluster = Cluster::start().await;
    cluster
        .add_worker_with(3, "local", None, |w| w.max_joining = 1)
        .await;
    let api = cluster.tenant("acme").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let url = cluster.meeting(&format!("turn{n}"), "admission=open&script=demo-loop");
        ids.push(api.create_bot(&url, "Patient Bot").await);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut most_waiting = 0.0f64;
    loop {
        let worker = cluster.worker_metrics_text(0).await;
        most_waiting = most_waiting.max(metric(&worker, "attache_edge_worker_joins_waiting "));
        let mut in_call = 0;
        for id in &ids {
            let b = api.bot(id).await;
            assert!(
                !b["endedAt"].is_string(),
                "a waiting bot does not fail: {b:#}"
            );
            if b["status"] == "IN_CALL" {
                in_call += 1;
            }
        }
        if in_call == ids.len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not every bot joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(most_waiting >= 1.0, "bots waited for their turn to load");
    let worker = cluster.worker_metrics_text(0).await;
    assert_eq!(metric(&worker, "attache_edge_worker_joins_waiting "), 0.0);
}

/// A worker takes only the bots it measures room for, `--capacity` being
/// the upper bound: one that must leave the machine more memory than it
/// has advertises no room, is sent nothing (the bot waits, WORKERS_BUSY)
/// and says in its metrics that memory is what ran out; a worker with room
/// beside it gets the bot.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_takes_only_the_bots_it_measures_room_for() {
    let mut cluster = Cluster::start().await;
    cluster
        .add_worker_with(4, "local", None, |c| {
            c.fixed_capacity = false;
            c.memory_reserve_mib = 1 << 40;
        })
        .await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("room", "admission=open&script=demo-loop"),
            "Room Bot",
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let b = api.bot(&id).await;
        assert_eq!(b["status"], "QUEUED", "{b:#}");
        if b["statusReason"] == "WORKERS_BUSY" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{b:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let m = cluster.worker_metrics_text(0).await;
    assert_eq!(metric(&m, "attache_edge_worker_room "), 0.0, "{m}");
    assert_eq!(
        metric(&m, "attache_edge_worker_room_limited{limit=\"memory\"} "),
        1.0
    );
    assert_eq!(metric(&m, "attache_edge_worker_bots_active "), 0.0);
    // A measuring worker with room takes it.
    cluster
        .add_worker_with(4, "local", None, |c| c.fixed_capacity = false)
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(60))
        .await;
    let m = cluster.worker_metrics_text(1).await;
    assert_eq!(metric(&m, "attache_edge_worker_bots_active "), 1.0);
    assert!(metric(&m, "attache_edge_worker_bot_memory_mib ") > 0.0);
    api.leave(&id).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
}
