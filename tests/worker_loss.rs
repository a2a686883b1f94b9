//! A worker process killed with SIGKILL (and its Chromium with it): the
//! control plane notices, waits out the grace period, then fails bots that
//! were in a meeting with WORKER_LOST and hands the others to another worker.

mod support;

use std::time::{Duration, Instant};

use support::*;

const JOIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_meeting_fails_its_bot_with_worker_lost() {
    let cluster = Cluster::start().await;
    let mut worker = cluster.spawn_worker_process().await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(&cluster.meeting("lost", "admission=open"), "Doomed Bot")
        .await;
    api.wait_status(&id, "IN_CALL", JOIN).await;

    let killed = Instant::now();
    worker.kill();
    let b = api
        .wait_status(&id, "FAILED", GRACE + Duration::from_secs(10))
        .await;
    let took = killed.elapsed();
    assert_eq!(b["statusReason"], "WORKER_LOST");
    assert!(
        took >= GRACE,
        "leases were taken back after {took:?}, before the {GRACE:?} grace period ended"
    );
    let last = b["events"].as_array().unwrap().last().unwrap().clone();
    assert!(last["detail"].as_str().unwrap().contains("lost"), "{last}");
    assert!(
        cluster
            .metrics()
            .await
            .contains("attache_control_plane_fleet_leases_expired_total{outcome=\"failed\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_before_admission_hands_the_bot_to_another_worker() {
    let mut cluster = Cluster::start().await;
    let mut first = cluster.spawn_worker_process().await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(&cluster.meeting("again", "admission=manual"), "Patient Bot")
        .await;
    api.wait_status(&id, "WAITING_ROOM", JOIN).await;

    // A second worker comes up; then the first dies while its bot waits.
    cluster.add_worker(2).await;
    first.kill();

    let deadline = Instant::now() + GRACE + JOIN;
    loop {
        let b = api.bot(&id).await;
        if statuses(&b).iter().filter(|s| *s == "WAITING_ROOM").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "bot was not handed over: {b:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.host("again", "admit", Some("Patient Bot")).await;
    let b = api.wait_status(&id, "IN_CALL", JOIN).await;
    assert_eq!(
        statuses(&b),
        [
            "QUEUED",
            "DISPATCHED",
            "JOINING",
            "WAITING_ROOM", // first worker
            "QUEUED",
            "DISPATCHED",
            "JOINING",
            "WAITING_ROOM",
            "IN_CALL", // second worker
        ]
    );
    let requeue = &b["events"].as_array().unwrap()[4];
    assert!(
        requeue["detail"].as_str().unwrap().contains("lost"),
        "{requeue}"
    );
    assert!(
        cluster
            .metrics()
            .await
            .contains("attache_control_plane_fleet_leases_expired_total{outcome=\"requeued\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_takes_its_bots_out_with_a_true_reason() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(2).await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(&cluster.meeting("drain", "admission=open"), "Drained Bot")
        .await;
    api.wait_status(&id, "IN_CALL", JOIN).await;

    cluster.stop_worker(0);
    let b = api
        .wait_status(&id, "FAILED", Duration::from_secs(15))
        .await;
    assert_eq!(b["statusReason"], "WORKER_SHUTDOWN");
    assert_eq!(statuses(&b)[statuses(&b).len() - 2], "LEAVING");
    let seat = cluster.participant("drain", "Drained Bot").await;
    assert_eq!(
        seat["state"], "left",
        "the bot clicked leave on its way out"
    );
}
