//! A worker told to stop (SIGTERM, or its shutdown token in process) while
//! its bots sit in meetings that never end: its bots go on until its drain
//! timeout (2 s here), then every bot leaves with WORKER_SHUTDOWN, every
//! recording is closed by the worker itself (READY, not left for the
//! control plane to salvage as PARTIAL), and the worker exits 0.

mod support;

use std::time::Duration;

use support::*;

const JOIN: Duration = Duration::from_secs(40);
const BOTS: usize = 2;

/// One test at a time: both run several Chromium bots on a small machine,
/// and a starved page is another test's subject.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The worker's drain timeout (2 s), its wait for the bots to leave (10 s)
/// and for tasks (5 s), with room for a loaded machine. A worker that hangs never gets here.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(40);

async fn bots_in_endless_meetings(cluster: &Cluster, api: &Api, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..BOTS {
        let meeting = cluster.meeting(&format!("{tag}-{n}"), "admission=open&script=demo-loop");
        ids.push(api.create_bot(&meeting, &format!("Bot {n}")).await);
    }
    for id in &ids {
        api.wait_status(id, "IN_CALL", JOIN).await;
    }
    // Long enough for audio to be recorded and chunks sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ids
}

async fn assert_left_and_closed(api: &Api, ids: &[String]) {
    for id in ids {
        let b = api.wait_status(id, "FAILED", Duration::from_secs(10)).await;
        assert_eq!(b["statusReason"], "WORKER_SHUTDOWN", "{b:#}");
        let m = api.media(id).await;
        let rec = &m["recording"];
        assert_eq!(rec["status"], "READY", "bot {id}: {rec:#}");
        assert!(rec["durationMs"].as_i64().unwrap() >= 2_000, "{rec:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_worker_stops_with_bots_in_endless_meetings() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start().await;
    cluster.add_worker(BOTS as u32).await;
    let api = cluster.tenant("acme").await;
    let ids = bots_in_endless_meetings(&cluster, &api, "inproc").await;

    cluster.stop_worker(0);
    assert!(
        cluster.worker_finished(0, SHUTDOWN_BUDGET).await,
        "the worker was still running {SHUTDOWN_BUDGET:?} after it was told to stop"
    );
    assert_left_and_closed(&api, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_exits_on_sigterm_with_bots_in_endless_meetings() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start().await;
    let mut worker = cluster
        .spawn_worker_process_with_capacity(BOTS as u32)
        .await;
    let api = cluster.tenant("acme").await;
    let ids = bots_in_endless_meetings(&cluster, &api, "proc").await;

    let status = tokio::task::spawn_blocking(move || {
        let status = worker.terminate(SHUTDOWN_BUDGET);
        (status, worker)
    })
    .await
    .unwrap();
    let (status, _worker) = status;
    let status = status.unwrap_or_else(|| {
        panic!("the worker process was still running {SHUTDOWN_BUDGET:?} after SIGTERM")
    });
    assert!(status.success(), "the worker exited with {status}");
    assert_left_and_closed(&api, &ids).await;
}
