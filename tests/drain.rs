//! A worker that drains (SIGTERM, here its shutdown token in process)
//! takes no new bots, hands back the bot still in a waiting room (another
//! worker takes it from the start), lets the bot in a call go on until its
//! meeting ends (MEETING_ENDED, not WORKER_SHUTDOWN), and then stops by
//! itself. Its free capacity leaves the region's autoscaling gauge at once,
//! and its `/healthz` says `draining` (still 200) until it stops.
//! The operator's `drainWorker` does the same to a worker from afar.

mod support;

use std::time::{Duration, Instant};

use support::*;

const JOIN: Duration = Duration::from_secs(40);

fn series(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_hands_back_its_lobby_bot_and_finishes_its_call() {
    let mut cluster = Cluster::start().await;
    cluster
        .add_worker_with(2, "local", None, |c| {
            c.drain_timeout = Duration::from_secs(120)
        })
        .await;
    let api = cluster.tenant("acme").await;
    let in_call = api
        .create_bot(
            &cluster.meeting("drain-call", "admission=open&script=demo-loop"),
            "Busy Bot",
        )
        .await;
    let waiting = api
        .create_bot(
            &cluster.meeting("drain-lobby", "admission=manual"),
            "Patient Bot",
        )
        .await;
    api.wait_status(&in_call, "IN_CALL", JOIN).await;
    api.wait_status(&waiting, "WAITING_ROOM", JOIN).await;

    let health = format!("http://{}/healthz", cluster.worker_metrics[0]);
    let said = |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    assert_eq!(said(health.clone()).await, "ok");

    // Another worker comes up; the first drains.
    cluster.add_worker(2).await;
    cluster.stop_worker(0);

    // The waiting bot is handed back and waits again, on the other worker.
    let deadline = Instant::now() + JOIN;
    loop {
        let b = api.bot(&waiting).await;
        if statuses(&b).iter().filter(|s| *s == "WAITING_ROOM").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not handed back: {b:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The call goes on, on the draining worker, which takes nothing new
    // and still answers its liveness probe.
    let b = api.bot(&in_call).await;
    assert_eq!(b["status"], "IN_CALL", "{b:#}");
    assert_eq!(said(health.clone()).await, "draining");
    // Its room leaves the region's gauge: only the other worker's is left,
    // less the bot it took (as soon as its heartbeat says so).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = cluster.metrics().await;
        let workers = series(
            &metrics,
            "attache_control_plane_region_workers{pool=\"shared\",region=\"local\"}",
        );
        let free = series(
            &metrics,
            "attache_control_plane_region_free_capacity{pool=\"shared\",region=\"local\"}",
        );
        if workers.as_deref() == Some("2") && free.as_deref() == Some("1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers {workers:?}, free {free:?}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The meeting ends: the bot ends for that reason, and the drained
    // worker stops by itself.
    cluster.host("drain-call", "end", None).await;
    let ended = api.wait_status(&in_call, "ENDED", JOIN).await;
    assert_eq!(ended["statusReason"], "MEETING_ENDED", "{ended:#}");
    assert!(
        cluster.worker_finished(0, Duration::from_secs(30)).await,
        "the drained worker did not stop"
    );

    // The handed-back bot is let in on the other worker.
    cluster
        .host("drain-lobby", "admit", Some("Patient Bot"))
        .await;
    let b = api.wait_status(&waiting, "IN_CALL", JOIN).await;
    assert_eq!(
        statuses(&b),
        [
            "QUEUED",
            "DISPATCHED",
            "JOINING",
            "WAITING_ROOM", // the draining worker
            "QUEUED",
            "DISPATCHED",
            "JOINING",
            "WAITING_ROOM",
            "IN_CALL", // the other one
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_drains_a_worker_and_it_stops() {
    let mut cluster = Cluster::start().await;
    let id = cluster.add_worker(1).await;
    cluster
        .admin
        .add_operator("ops@platform.test")
        .await
        .unwrap();
    let cookie = cluster
        .admin
        .operator_session("ops@platform.test", Duration::from_secs(600))
        .await
        .unwrap();
    let drained = operator_gql(
        &cluster.http,
        &cookie,
        "mutation($id: ID!) { drainWorker(id: $id) { id draining } }",
        serde_json::json!({ "id": id }),
    )
    .await;
    assert_eq!(drained["drainWorker"]["draining"], true, "{drained}");
    // With no bot to wait for, it stops at once.
    assert!(
        cluster.worker_finished(0, Duration::from_secs(20)).await,
        "the drained worker did not stop"
    );
    // Carried out: the request is cleared, and the worker is no longer
    // connected.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let regions = operator_gql(
            &cluster.http,
            &cookie,
            "{ regions { workers { id state draining } } }",
            serde_json::json!({}),
        )
        .await;
        let w = &regions["regions"][0]["workers"][0];
        if w["state"] != "connected" && w["draining"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "{regions}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
