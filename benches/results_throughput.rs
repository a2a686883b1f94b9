//! Load harness: how many result frames per second one control plane
//! persists and acknowledges, from simulated workers speaking the real
//! fleet protocol over QUIC on loopback (mutual TLS, sealed frames, one
//! stream per bot).
//!
//!     cargo bench --bench results_throughput
//!
//! Each simulated worker enrolls like a real one, takes the bots the
//! control plane dispatches to it, and streams FRAMES transcript segments
//! per bot as fast as flow control allows. Printed: frames persisted per
//! second and the acknowledgement latency (p50/p99), first for one bot
//! alone (the baseline), then for BOTS bots at once, and the ratio.
//! SQLite by default; with ATTACHE_TEST_POSTGRES_URL set, PostgreSQL.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_edge_worker::EdgeWorker;
use attache_protocol::{
    ALPN_FLEET, Assignment, BotStatus, ControlMsg, Load, PROTOCOL_VERSION, ResultBody, ResultFrame,
    TranscriptSegment, WorkerMsg, encode_frame, read_frame, write_frame,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::*;
use tokio::sync::{Notify, mpsc};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A worker spoken by hand: its connection, the bots assigned to it and
/// the acknowledgements it got.
struct SimWorker {
    conn: quinn::Connection,
    assigned: mpsc::Receiver<Assignment>,
    acked: Arc<Mutex<HashMap<uuid::Uuid, (u64, Instant)>>>,
    progress: Arc<Notify>,
}

async fn sim_worker(cluster: &Cluster, capacity: u32) -> SimWorker {
    let dir = temp_dir("sim-worker");
    let mut wc = cluster.worker_config(dir.clone());
    wc.join_token = Some(cluster.token().await);
    EdgeWorker::build(wc).await.expect("enrolls");
    let ca = CertificateDer::from_pem_file(dir.join("fleet-ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(dir.join("worker.pem")).unwrap()],
        PrivateKeyDer::from_pem_file(dir.join("worker.key")).unwrap(),
    )
    .unwrap();
    tls.alpn_protocols = vec![ALPN_FLEET.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = ep
        .connect(cluster.quic, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    write_frame(
        &mut send,
        &WorkerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            software_version: "sim".into(),
            capacity,
            bots: vec![],
        },
    )
    .await
    .unwrap();
    let (tx, assigned) = mpsc::channel(1024);
    let acked: Arc<Mutex<HashMap<uuid::Uuid, (u64, Instant)>>> = Arc::default();
    let progress = Arc::new(Notify::new());
    let (a, p) = (acked.clone(), progress.clone());
    tokio::spawn(async move {
        while let Ok(Some(m)) = read_frame::<ControlMsg, _>(&mut recv).await {
            match m {
                ControlMsg::Assign(x) => {
                    let _ = tx.send(*x).await;
                }
                ControlMsg::Ack { bot_id, seq, .. } => {
                    a.lock().unwrap().insert(bot_id, (seq, Instant::now()));
                    p.notify_waiters();
                }
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let hb = WorkerMsg::Heartbeat {
                load: Load {
                    active_bots: 0,
                    capacity,
                    rss_mib: 0,
                    draining: false,
                },
                bots: vec![],
            };
            if write_frame(&mut send, &hb).await.is_err() {
                return;
            }
        }
    });
    SimWorker {
        conn,
        assigned,
        acked,
        progress,
    }
}

fn segment(n: u64) -> ResultBody {
    ResultBody::Transcript(TranscriptSegment {
        segment_id: format!("u{n}"),
        start_ms: n * 1_000,
        end_ms: n * 1_000 + 900,
        speaker: Some("Alice".into()),
        text: "The release candidate passed every test yesterday.".into(),
        confidence: 0.9,
        language: Some("en".into()),
        is_final: true,
    })
}

/// Streams `frames` segments for one bot; returns each frame's ack latency.
async fn stream_bot(
    conn: quinn::Connection,
    a: Assignment,
    frames: u64,
    acked: Arc<Mutex<HashMap<uuid::Uuid, (u64, Instant)>>>,
    progress: Arc<Notify>,
) -> Vec<f64> {
    let mut out = conn.open_uni().await.unwrap();
    let mut sent_at = Vec::with_capacity(frames as usize + 2);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let bodies = [
        ResultBody::Status {
            status: BotStatus::Joining,
            reason: None,
            detail: None,
        },
        ResultBody::Status {
            status: BotStatus::InCall,
            reason: None,
            detail: None,
        },
    ]
    .into_iter()
    .chain((1..=frames).map(segment));
    for (i, body) in bodies.enumerate() {
        let seq = i as u64 + 1;
        let f = ResultFrame::seal(&a.data_key, a.bot_id, a.generation, seq, now_ms, &body);
        out.write_all(&encode_frame(&f).unwrap()).await.unwrap();
        sent_at.push(Instant::now());
    }
    let last = frames + 2;
    let mut latencies = Vec::new();
    let mut seen = 0u64;
    loop {
        let notified = progress.notified();
        let (seq, at) = acked
            .lock()
            .unwrap()
            .get(&a.bot_id)
            .copied()
            .unwrap_or((0, Instant::now()));
        // Acks are cumulative: every frame up to `seq` was persisted by `at`.
        for s in seen..seq {
            latencies.push(at.duration_since(sent_at[s as usize]).as_secs_f64() * 1000.0);
        }
        seen = seen.max(seq);
        if seq >= last {
            return latencies;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), notified).await;
    }
}

async fn round(cluster: &Cluster, api: &Api, workers: &mut [SimWorker], bots: usize, frames: u64) {
    for i in 0..bots {
        api.create_bot(&cluster.meeting(&format!("load-{bots}-{i}"), ""), "Load")
            .await;
    }
    let mut tasks = Vec::new();
    let started = Instant::now();
    let mut got = 0;
    while got < bots {
        for w in workers.iter_mut() {
            while let Ok(a) = w.assigned.try_recv() {
                got += 1;
                tasks.push(tokio::spawn(stream_bot(
                    w.conn.clone(),
                    a,
                    frames,
                    w.acked.clone(),
                    w.progress.clone(),
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let total = bots as f64 * (frames + 2) as f64;
    println!(
        "{bots:>3} bot(s) × {} frames: {:>7.0} frames/s persisted, ack latency p50 {:.1} ms, p99 {:.1} ms",
        frames + 2,
        total / secs,
        q(0.5),
        q(0.99)
    );
    RATES.lock().unwrap().push(total / secs);
}

static RATES: Mutex<Vec<f64>> = Mutex::new(Vec::new());

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "results_throughput: a load harness; run it with `cargo bench --bench results_throughput`"
        );
        return;
    }
    let bots = env("BOTS", 32);
    let frames = env("FRAMES", 500) as u64;
    let n_workers = env("WORKERS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let database_url = std::env::var("ATTACHE_TEST_POSTGRES_URL").ok();
        println!(
            "database: {}",
            if database_url.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
        let cluster = Cluster::start_with(Options {
            database_url,
            create_bot_limit: Some((100_000, 100_000)),
            ..Default::default()
        })
        .await;
        let api = cluster.tenant("load").await;
        let mut workers = Vec::new();
        for _ in 0..n_workers {
            workers.push(sim_worker(&cluster, (bots / n_workers + 1) as u32).await);
        }
        round(&cluster, &api, &mut workers, 1, frames).await;
        round(&cluster, &api, &mut workers, bots, frames).await;
        let r = RATES.lock().unwrap().clone();
        println!(
            "{bots} bots at once persist {:.2}× the frames per second of one bot alone",
            r[1] / r[0]
        );
    });
}
