//! The fleet link from a worker's side, spoken by hand: enrollment rules,
//! mutual TLS, and garbage from a worker that must be refused without
//! hurting the control plane.

mod support;

use std::sync::Arc;
use std::time::Duration;

use attache_edge_worker::EdgeWorker;
use attache_protocol::{
    ALPN_FLEET, BotStatus, ControlMsg, ErrorCode, PROTOCOL_VERSION, ResultBody, ResultFrame,
    WorkerMsg, read_frame, write_frame,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::*;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC client speaking the fleet ALPN with an enrolled worker's files,
/// or with no client certificate at all.
async fn dial(
    cluster: &Cluster,
    identity: Option<&std::path::Path>,
    ca_dir: &std::path::Path,
) -> quinn::Connection {
    let ca = CertificateDer::from_pem_file(ca_dir.join("fleet-ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(dir) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(dir.join("worker.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(dir.join("worker.key")).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN_FLEET.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep.connect(cluster.quic, "localhost")
        .unwrap()
        .await
        .expect("handshake")
}

async fn closed_with(conn: &quinn::Connection) -> u64 {
    let err = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed by the server");
    match err {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("expected an application close, got {other:?}"),
    }
}

async fn enrolled(cluster: &Cluster) -> std::path::PathBuf {
    let dir = temp_dir("raw-worker");
    let mut wc = cluster.worker_config(dir.clone());
    wc.join_token = Some(cluster.token().await);
    EdgeWorker::build(wc).await.expect("enrolls");
    dir
}

async fn hello(conn: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let msg = WorkerMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        software_version: "test".into(),
        capacity: 1,
        bots: vec![],
    };
    write_frame(&mut send, &msg).await.unwrap();
    match read_frame::<ControlMsg, _>(&mut recv).await.unwrap() {
        Some(ControlMsg::Welcome { region, .. }) => assert_eq!(region, "local"),
        other => panic!("expected welcome, got {other:?}"),
    }
    (send, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_join_token_enrolls_as_many_workers_as_it_allows() {
    let cluster = Cluster::start().await;
    let shared = cluster
        .admin
        .shared_worker_token("local", None, Duration::from_secs(600), 2)
        .await
        .unwrap();
    assert_eq!(shared.uses, 2);
    let mut ids = Vec::new();
    for n in 0..2 {
        let mut wc = cluster.worker_config(temp_dir(&format!("shared-{n}")));
        wc.join_token = Some(shared.token.clone());
        let w = EdgeWorker::build(wc).await.expect("a use is left");
        ids.push(w.worker_id().to_string());
    }
    assert_ne!(ids[0], ids[1], "each worker gets an identity of its own");
    let mut third = cluster.worker_config(temp_dir("shared-2"));
    third.join_token = Some(shared.token.clone());
    let err = EdgeWorker::build(third)
        .await
        .err()
        .expect("every use is spent");
    assert!(err.to_string().contains("UNAUTHENTICATED"), "{err}");
    // Out of range: refused before anything is stored.
    for uses in [0, attache_control_plane::MAX_TOKEN_USES + 1] {
        let refused = cluster
            .admin
            .shared_worker_token("local", None, Duration::from_secs(600), uses)
            .await;
        assert!(refused.is_err(), "{uses} uses");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_enroll_once_and_pin_the_control_plane() {
    let cluster = Cluster::start().await;
    let token = cluster.token().await;
    let mut wc = cluster.worker_config(temp_dir("w1"));
    wc.join_token = Some(token.clone());
    let w = EdgeWorker::build(wc).await.expect("first use enrolls");
    assert!(w.worker_id().starts_with("w-"));

    let mut again = cluster.worker_config(temp_dir("w2"));
    again.join_token = Some(token.clone());
    let err = EdgeWorker::build(again)
        .await
        .err()
        .expect("a spent token is refused");
    assert!(err.to_string().contains("UNAUTHENTICATED"), "{err}");

    let mut wrong_secret = cluster.worker_config(temp_dir("w3"));
    let parts: Vec<&str> = token.split('_').collect();
    wrong_secret.join_token = Some(format!("ajt_{}_{}_{}", parts[1], "0".repeat(64), parts[3]));
    assert!(EdgeWorker::build(wrong_secret).await.is_err());

    let mut wrong_ca = cluster.worker_config(temp_dir("w4"));
    let fresh = cluster.token().await;
    let p: Vec<&str> = fresh.split('_').collect();
    wrong_ca.join_token = Some(format!("ajt_{}_{}_{}", p[1], p[2], "a".repeat(64)));
    let err = EdgeWorker::build(wrong_ca)
        .await
        .err()
        .expect("an unpinned control plane is not trusted");
    assert!(err.to_string().contains("fleet CA does not match"), "{err}");
    // The token was not spent by the refused attempt: it still enrolls.
    let mut ok = cluster.worker_config(temp_dir("w5"));
    ok.join_token = Some(fresh);
    EdgeWorker::build(ok).await.expect("token still valid");

    let mut garbage = cluster.worker_config(temp_dir("w6"));
    garbage.join_token = Some("hello".into());
    assert!(EdgeWorker::build(garbage).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_worker_is_refused_and_the_service_keeps_serving() {
    let cluster = Cluster::start().await;
    let id = enrolled(&cluster).await;

    // No certificate: the fleet ALPN refuses the connection.
    let anon = dial(&cluster, None, &id).await;
    let _ = anon
        .open_bi()
        .await
        .map(|(mut s, _)| async move { s.write_all(b"hi").await });
    assert_eq!(
        closed_with(&anon).await,
        ErrorCode::Unauthenticated.quic_code() as u64
    );

    // Garbage instead of a hello.
    let conn = dial(&cluster, Some(&id), &id).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .await
        .unwrap();
    assert_eq!(
        closed_with(&conn).await,
        ErrorCode::ProtocolViolation.quic_code() as u64
    );

    // A 4 GiB length prefix after a valid hello.
    let conn = dial(&cluster, Some(&id), &id).await;
    let (mut send, _recv) = hello(&conn).await;
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(
        closed_with(&conn).await,
        ErrorCode::ProtocolViolation.quic_code() as u64
    );

    // Garbage on a result stream stops that stream only.
    let conn = dial(&cluster, Some(&id), &id).await;
    let (mut send, mut recv) = hello(&conn).await;
    let mut results = conn.open_uni().await.unwrap();
    results.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), results.stopped())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stopped.map(|c| c.into_inner()),
        Some(ErrorCode::ProtocolViolation.quic_code() as u64)
    );

    // A well-formed result for a bot this worker holds no lease on is
    // refused with a cancel, and nothing is stored.
    let stranger = uuid_v4();
    let mut results = conn.open_uni().await.unwrap();
    let frame = ResultFrame::seal(
        &attache_protocol::DataKey::generate(),
        stranger,
        1,
        1,
        0,
        &ResultBody::Status {
            status: BotStatus::InCall,
            reason: None,
            detail: None,
        },
    );
    write_frame(&mut results, &frame).await.unwrap();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame::<ControlMsg, _>(&mut recv),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        reply,
        Some(ControlMsg::Revoke {
            bot_id: stranger,
            generation: 1
        })
    );

    // The link itself is still up: heartbeats are taken.
    let hb = WorkerMsg::Heartbeat {
        load: Default::default(),
        bots: vec![],
    };
    write_frame(&mut send, &hb).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        conn.close_reason().is_none(),
        "still connected: {:?}",
        conn.close_reason()
    );

    let metrics = cluster.metrics().await;
    assert!(
        metrics
            .contains("attache_control_plane_fleet_frames_rejected_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "attache_control_plane_fleet_frames_rejected_total{reason=\"PROTOCOL_VIOLATION\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("attache_control_plane_fleet_frames_rejected_total{reason=\"stale\"} 1"),
        "{metrics}"
    );

    // And the API never noticed.
    let api = cluster.tenant("acme").await;
    assert_eq!(api.bot_count().await, 0);
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

/// Reads the control stream until `want` says yes (heartbeat-driven
/// commands come among others, such as a repeated Assign).
async fn until(
    recv: &mut quinn::RecvStream,
    within: Duration,
    want: impl Fn(&ControlMsg) -> bool,
) -> ControlMsg {
    tokio::time::timeout(within, async {
        loop {
            match read_frame::<ControlMsg, _>(recv).await.unwrap() {
                Some(m) if want(&m) => return m,
                Some(_) => {}
                None => panic!("control stream closed"),
            }
        }
    })
    .await
    .expect("the control plane said it in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_reconciled_with_the_leases() {
    let cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    let dir = enrolled(&cluster).await;
    let conn = dial(&cluster, Some(&dir), &dir).await;
    let (mut send, mut recv) = hello(&conn).await;
    let id = api
        .create_bot(&cluster.meeting("beats", ""), "Beat Bot")
        .await;
    let ControlMsg::Assign(a) = until(&mut recv, Duration::from_secs(10), |m| {
        matches!(m, ControlMsg::Assign(_))
    })
    .await
    else {
        unreachable!()
    };
    let mut results = conn.open_uni().await.unwrap();
    for (seq, status) in [(1, BotStatus::Joining), (2, BotStatus::InCall)] {
        let body = ResultBody::Status {
            status,
            reason: None,
            detail: None,
        };
        let f = ResultFrame::seal(&a.data_key, a.bot_id, a.generation, seq, 0, &body);
        write_frame(&mut results, &f).await.unwrap();
    }
    api.wait_status(&id, "IN_CALL", Duration::from_secs(10))
        .await;

    // A heartbeat lists a bot the worker holds no lease for: revoked at
    // once, not at the next hello.
    let stranger = uuid_v4();
    let beat = |bots: Vec<attache_protocol::BotReport>| WorkerMsg::Heartbeat {
        load: Default::default(),
        bots,
    };
    let ours = attache_protocol::BotReport {
        bot_id: a.bot_id,
        generation: a.generation,
        status: BotStatus::InCall,
    };
    let theirs = attache_protocol::BotReport {
        bot_id: stranger,
        generation: 1,
        status: BotStatus::InCall,
    };
    write_frame(&mut send, &beat(vec![ours, theirs]))
        .await
        .unwrap();
    let revoked = until(&mut recv, Duration::from_secs(5), |m| {
        matches!(m, ControlMsg::Revoke { .. })
    })
    .await;
    assert_eq!(
        revoked,
        ControlMsg::Revoke {
            bot_id: stranger,
            generation: 1
        }
    );

    // Then the worker stops listing its bot, with no final status: the bot
    // is not lost at once (a final status may still be on its way), but
    // once it has been missing for the grace period.
    let stop = tokio_util::sync::CancellationToken::new();
    let beating = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.is_cancelled() {
                write_frame(&mut send, &beat(vec![])).await.unwrap();
                tokio::time::sleep(HEARTBEAT).await;
            }
            send
        }
    });
    tokio::time::sleep(GRACE / 2).await;
    assert_eq!(api.bot(&id).await["status"], "IN_CALL");
    let b = api.wait_status(&id, "FAILED", GRACE * 4).await;
    assert_eq!(b["statusReason"], "WORKER_LOST", "{b:#}");
    stop.cancel();
    let _ = beating.await;
    assert!(conn.close_reason().is_none(), "the link stays up");
}
