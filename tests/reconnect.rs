//! The control plane restarts under a running bot: the worker reconnects
//! with backoff, says which bots it runs, and the bot carries on; results
//! from after the restart arrive through the new process.

mod support;

use std::time::Duration;

use attache_control_plane::ControlPlane;
use attache_edge_worker::EdgeWorker;
use support::*;
use tokio_util::sync::CancellationToken;

/// An in-process worker enrolled with `admin`, dialling `quic`.
async fn start_worker(
    admin: &attache_control_plane::Admin,
    quic: std::net::SocketAddr,
    stop: CancellationToken,
) {
    let mut wc = attache_edge_worker::Config::new(quic.to_string(), temp_dir("reconnect-worker"));
    wc.chromium = chromium();
    wc.reconnect_min = Duration::from_millis(100);
    wc.reconnect_max = Duration::from_millis(400);
    let token = admin
        .worker_token("local", Duration::from_secs(60))
        .await
        .unwrap();
    wc.join_token = Some(token.token);
    tokio::spawn(EdgeWorker::build(wc).await.unwrap().run(stop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_bot_survives_a_control_plane_restart() {
    let dir = temp_dir("restart");
    let stop_all = CancellationToken::new();
    let sandbox = start_sandbox(stop_all.clone()).await;

    // First life of the control plane.
    let cp = ControlPlane::build(cp_config(&dir, &sandbox, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let quic = cp.quic_addr();
    let admin = cp.admin();
    let api = Api::new(
        &format!("http://{}", cp.http_addr()),
        &admin.create_tenant("acme", "local").await.unwrap().api_key,
    );
    let first_life = CancellationToken::new();
    let first = tokio::spawn(cp.run(first_life.clone()));

    start_worker(&admin, quic, stop_all.clone()).await;

    let meeting = format!("{sandbox}/m/restart?admission=open");
    let id = api.create_bot(&meeting, "Steady Bot").await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;

    // The control plane goes away, and comes back on the same fleet port
    // and the same database.
    first_life.cancel();
    first.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cp = ControlPlane::build(cp_config(&dir, &sandbox, quic))
        .await
        .unwrap();
    let api = Api::new(&format!("http://{}", cp.http_addr()), &api.key);
    tokio::spawn(cp.run(stop_all.clone()));

    // Well past the grace period the bot is still in the call: the worker
    // reconnected and reported it.
    tokio::time::sleep(GRACE + Duration::from_secs(2)).await;
    assert_eq!(api.bot(&id).await["status"], "IN_CALL");

    // What happens next reaches the new process.
    let host = reqwest::Client::new();
    let r = host
        .post(format!("{sandbox}/api/meetings/restart/end"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let b = api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    assert_eq!(b["statusReason"], "MEETING_ENDED");
    assert_eq!(
        statuses(&b),
        ["QUEUED", "DISPATCHED", "JOINING", "IN_CALL", "ENDED"]
    );
    stop_all.cancel();
}

/// Two control-plane replicas on one database and one fleet CA; the worker
/// is connected to one of them. The other must not take its leases back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_never_expires_a_worker_connected_to_another() {
    let dir = temp_dir("replicas");
    let stop = CancellationToken::new();
    let sandbox = start_sandbox(stop.clone()).await;
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();

    let a = ControlPlane::build(cp_config(&dir, &sandbox, any))
        .await
        .unwrap();
    let b = ControlPlane::build(cp_config(&dir, &sandbox, any))
        .await
        .unwrap();
    let admin = a.admin();
    let api = Api::new(
        &format!("http://{}", a.http_addr()),
        &admin.create_tenant("acme", "local").await.unwrap().api_key,
    );
    let quic_b = b.quic_addr();
    tokio::spawn(a.run(stop.clone()));
    tokio::spawn(b.run(stop.clone()));

    start_worker(&admin, quic_b, stop.clone()).await;

    let id = api
        .create_bot(
            &format!("{sandbox}/m/replicas?admission=open"),
            "Shared Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    tokio::time::sleep(GRACE * 2).await;
    let b = api.bot(&id).await;
    assert_eq!(b["status"], "IN_CALL", "{b:#}");
    stop.cancel();
}
