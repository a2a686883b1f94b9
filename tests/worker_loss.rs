//! A worker process killed with SIGKILL (and its Chromium with it): the
//! control plane notices, waits out the grace period, then fails bots that
//! were in a meeting with WORKER_LOST and hands the others to another worker.
//! A worker restarted on the same data directory delivers its spool and
//! says what happened.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const JOIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_meeting_fails_its_bot_with_worker_lost() {
    let cluster = Cluster::start().await;
    let mut worker = cluster.spawn_worker_process().await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("lost", "admission=open&script=demo"),
            "Doomed Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", JOIN).await;
    // Long enough for recording chunks and Alice's first words to be sent.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let killed = Instant::now();
    worker.kill();
    let b = api
        .wait_status(&id, "FAILED", GRACE + Duration::from_secs(10))
        .await;
    let took = killed.elapsed();
    eprintln!(
        "worker loss: the in-call bot FAILED WORKER_LOST {took:.2?} after SIGKILL \
         (grace {GRACE:?}, heartbeat {HEARTBEAT:?})"
    );
    assert_eq!(b["statusReason"], "WORKER_LOST");
    // The grace runs from the last heartbeat, at most one interval before
    // the kill: never sooner than that.
    assert!(
        took + HEARTBEAT >= GRACE,
        "leases were taken back after {took:?}, before the {GRACE:?} grace period ended"
    );
    let last = b["events"].as_array().unwrap().last().unwrap().clone();
    assert!(last["detail"].as_str().unwrap().contains("lost"), "{last}");
    // What the worker sent before it died is kept: the recording up to the
    // last acknowledged chunk, closed by the control plane as PARTIAL.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let m = api.media(&id).await;
        if m["recording"]["status"] != "RECORDING" {
            break m["recording"].clone();
        }
        assert!(Instant::now() < deadline, "recording never closed: {m:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rec["status"], "PARTIAL", "{rec:#}");
    let kept = rec["durationMs"].as_i64().unwrap();
    assert!(
        (2_000..=6_000).contains(&kept),
        "kept {kept} ms of about 5 s"
    );
    let bytes = reqwest::get(rec["downloadUrl"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let pcm = attache_edge_worker::audio::decode_ogg_opus(&bytes).expect("the prefix decodes");
    assert!((pcm.len() as i64 / 16 - kept).abs() < 100);
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
    let killed = Instant::now();
    first.kill();

    let deadline = Instant::now() + GRACE + JOIN;
    loop {
        let b = api.bot(&id).await;
        if statuses(&b).iter().filter(|s| *s == "WAITING_ROOM").count() == 2 {
            eprintln!(
                "worker loss: the lobby bot waited in a lobby again, on the other worker, \
                 {:.2?} after SIGKILL (grace {GRACE:?}, heartbeat {HEARTBEAT:?})",
                killed.elapsed()
            );
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

/// One bot's renderer process dies (SIGKILL): that bot fails with
/// PLATFORM_ERROR, and the other bot on the same worker and browser stays in
/// its meeting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_renderer_fails_its_bot_alone() {
    let cluster = Cluster::start().await;
    // Chromium on demand, so no context is made ahead: the renderers that
    // appear with the second bot are its own, not a spare's made for a
    // bot still to come.
    let worker = cluster
        .spawn_worker_process_args(temp_dir("worker-proc"), 2, &[], &["--browser-on-demand"])
        .await;
    let api = cluster.tenant("acme").await;
    let survivor = api
        .create_bot(&cluster.meeting("crash-a", "admission=open"), "Survivor")
        .await;
    api.wait_status(&survivor, "IN_CALL", JOIN).await;
    let before = worker.renderers();
    let victim = api
        .create_bot(&cluster.meeting("crash-b", "admission=open"), "Victim")
        .await;
    api.wait_status(&victim, "IN_CALL", JOIN).await;
    // The renderers that appeared with the second bot's context are its own
    // (and perhaps a spare one the browser keeps warm).
    let new: Vec<i32> = worker.renderers().difference(&before).copied().collect();
    assert!(!new.is_empty(), "no renderer appeared for the second bot");
    for pid in &new {
        let _ = Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status();
    }
    let b = api
        .wait_status(&victim, "FAILED", Duration::from_secs(20))
        .await;
    assert_eq!(b["statusReason"], "PLATFORM_ERROR", "{b:#}");
    let detail = b["events"].as_array().unwrap().last().unwrap()["detail"].clone();
    assert!(detail.as_str().unwrap().contains("crashed"), "{detail}");
    // The other bot never noticed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.bot(&survivor).await["status"], "IN_CALL");
    api.leave(&survivor).await;
    let b = api
        .wait_status(&survivor, "ENDED", Duration::from_secs(20))
        .await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_mid_meeting_delivers_its_spool_and_says_so() {
    let cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    let dir = temp_dir("restarting-worker");
    let mut first = cluster.spawn_worker_process_in(dir.clone(), 2).await;
    let id = api
        .create_bot(
            &cluster.meeting("restarts", "admission=open&script=demo-loop"),
            "Steady",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    let in_call = Instant::now();
    // Killed once two recording chunks (2 s of audio each) are stored, so
    // the test does not depend on how soon audio flows on a loaded machine.
    let deadline = in_call + Duration::from_secs(30);
    let stored_before = loop {
        let size = api.media(&id).await["recording"]["sizeBytes"]
            .as_i64()
            .unwrap_or(0);
        if size > 0 && Instant::now() >= in_call + Duration::from_secs(5) {
            break size;
        }
        assert!(Instant::now() < deadline, "no recording chunk was stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    first.kill();
    let stay = in_call.elapsed();
    // Back at once, on the same data directory: well inside the grace.
    let _second = cluster.spawn_worker_process_in(dir.clone(), 2).await;
    let b = api
        .wait_status(&id, "FAILED", Duration::from_secs(30))
        .await;
    assert_eq!(b["statusReason"], "WORKER_RESTARTED", "{b:#}");
    let m = api.media(&id).await;
    let warnings = m["warnings"].as_array().unwrap();
    let lost = warnings
        .iter()
        .find(|w| w["code"] == "RESULTS_LOST")
        .unwrap_or_else(|| panic!("{m:#}"));
    let detail = lost["message"].as_str().unwrap();
    assert!(detail.contains("0 emitted results were lost"), "{detail}");
    // What the bot saw before the kill was delivered from the spool.
    let names: Vec<&str> = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Alice") && names.contains(&"Bob"), "{m:#}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rec = loop {
        let rec = api.media(&id).await["recording"].clone();
        if rec["status"] != "RECORDING" || Instant::now() > deadline {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(rec["status"], "PARTIAL", "{rec:#}");
    // Nothing acknowledged before the kill is missing, and the recording
    // holds at least the first chunk and no more than the stay.
    assert!(
        rec["sizeBytes"].as_i64().unwrap() >= stored_before,
        "{rec:#} after {stored_before} bytes were stored"
    );
    let ms = rec["durationMs"].as_i64().unwrap();
    let stay_ms = stay.as_millis() as i64;
    assert!(
        (2_000..=stay_ms + 1_000).contains(&ms),
        "{ms} ms of a {stay_ms} ms stay"
    );
    // Nothing stays in the spool once delivered.
    let spool: Vec<_> = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
        .collect();
    assert!(spool.is_empty(), "{spool:?}");
    println!("restart detail: {detail}");
}
