//! Load harness: how many result frames per second one control plane
//! persists and acknowledges, from simulated workers speaking the real
//! fleet protocol over QUIC on loopback (mutual TLS, sealed frames, one
//! stream per bot).
//!
//!     cargo bench --bench results_throughput
//!
//! Each of WORKERS (50) simulated workers enrolls like a real one, takes
//! the bots the control plane dispatches to it, and streams FRAMES (100)
//! transcript segments per bot at RATE (20) frames per second each (0: as
//! fast as flow control allows). Printed: frames persisted per second and
//! the acknowledgement latency (p50/p99), first for one bot alone (the
//! baseline), then for BOTS (1000) bots at once, and the ratio; the last
//! line is
//!
//!     results_throughput: F frames/s, ack p50 A ms, ack p99 B ms, bots 1000, workers 50, database postgres
//!
//! SQLite by default; with ATTACHE_TEST_POSTGRES_URL set, PostgreSQL.
//! BASELINE=0 runs the batched control plane alone.

/// The binary's allocator (`src/main.rs`), so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod sim;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_protocol::{
    Assignment, BotStatus, ControlMsg, Load, ResultBody, ResultFrame, TranscriptSegment, WorkerMsg,
    encode_frame, read_frame, write_frame,
};
use support::*;
use tokio::sync::{Notify, mpsc};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every acknowledgement, per bot, with when it came.
type Acks = Arc<Mutex<HashMap<uuid::Uuid, Vec<(u64, Instant)>>>>;

/// A worker spoken by hand: its connection, the bots assigned to it and
/// the acknowledgements it got.
struct SimWorker {
    conn: quinn::Connection,
    assigned: mpsc::Receiver<Assignment>,
    /// Every acknowledgement, per bot, with when it came.
    acked: Acks,
    progress: Arc<Notify>,
}

async fn sim_worker(cluster: &Cluster, capacity: u32) -> SimWorker {
    let dir = temp_dir("sim-worker");
    sim::enroll(cluster.quic, Some(cluster.token().await), &dir).await;
    let (conn, mut send, mut recv) = sim::connect(cluster.quic, &dir, capacity, vec![]).await;
    let (tx, assigned) = mpsc::channel(1024);
    let acked: Acks = Arc::default();
    let progress = Arc::new(Notify::new());
    let (a, p) = (acked.clone(), progress.clone());
    tokio::spawn(async move {
        while let Ok(Some(m)) = read_frame::<ControlMsg, _>(&mut recv).await {
            match m {
                ControlMsg::Assign(x) => {
                    let _ = tx.send(*x).await;
                }
                ControlMsg::Ack { bot_id, seq, .. } => {
                    a.lock()
                        .unwrap()
                        .entry(bot_id)
                        .or_default()
                        .push((seq, Instant::now()));
                    p.notify_waiters();
                }
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        loop {
            // At the product's interval (`product_timings`).
            tokio::time::sleep(Duration::from_secs(2)).await;
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

/// One bot's stream: when its first frame went, when its last was
/// acknowledged, and each frame's acknowledgement latency.
struct Streamed {
    first_sent: Instant,
    last_acked: Instant,
    latencies: Vec<f64>,
}

/// Streams `frames` segments for one bot, `rate` a second (0: at once).
async fn stream_bot(
    conn: quinn::Connection,
    a: Assignment,
    (frames, rate): (u64, u64),
    acked: Acks,
    progress: Arc<Notify>,
) -> Streamed {
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
    let start = tokio::time::Instant::now();
    for (i, body) in bodies.enumerate() {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        }
        let seq = i as u64 + 1;
        let f = ResultFrame::seal(&a.data_key, a.bot_id, a.generation, seq, now_ms, &body);
        out.write_all(&encode_frame(&f).unwrap()).await.unwrap();
        sent_at.push(Instant::now());
    }
    let last = frames + 2;
    loop {
        let notified = progress.notified();
        let done = acked
            .lock()
            .unwrap()
            .get(&a.bot_id)
            .and_then(|acks| acks.last())
            .is_some_and(|(seq, _)| *seq >= last);
        if done {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
    // Acks are cumulative: a frame was persisted by the first ack at or
    // past its sequence number.
    let acks = acked.lock().unwrap().remove(&a.bot_id).unwrap_or_default();
    let mut latencies = Vec::with_capacity(sent_at.len());
    let mut next = acks.iter().peekable();
    for (i, sent) in sent_at.iter().enumerate() {
        let seq = i as u64 + 1;
        while next.peek().is_some_and(|(s, _)| *s < seq) {
            next.next();
        }
        if let Some((_, at)) = next.peek() {
            latencies.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    Streamed {
        first_sent: sent_at[0],
        last_acked: acks.last().map(|(_, at)| *at).unwrap_or_else(Instant::now),
        latencies,
    }
}

/// One round: `bots` bots at once. Returns (frames/s, ack p50, ack p99).
async fn round(
    cluster: &Cluster,
    api: &Api,
    workers: &mut [SimWorker],
    bots: usize,
    frames: (u64, u64),
) -> (f64, f64, f64) {
    for i in 0..bots {
        api.create_bot(&cluster.meeting(&format!("load-{bots}-{i}"), ""), "Load")
            .await;
    }
    let mut tasks = Vec::new();
    // An Assign may come again (the sweep repeats one not yet taken up,
    // as this worker's heartbeats list no bots): one stream per lease, as
    // a real worker keeps.
    let mut leases = std::collections::HashSet::new();
    while leases.len() < bots {
        for w in workers.iter_mut() {
            while let Ok(a) = w.assigned.try_recv() {
                if !leases.insert((a.bot_id, a.generation)) {
                    continue;
                }
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
    // Over the time frames were in flight: from the first frame sent to
    // the last acknowledged (creating and dispatching the bots is not
    // ingest).
    let mut lat = Vec::new();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for t in tasks {
        let s = t.await.unwrap();
        first = Some(first.map_or(s.first_sent, |f| f.min(s.first_sent)));
        last = Some(last.map_or(s.last_acked, |l| l.max(s.last_acked)));
        lat.extend(s.latencies);
    }
    let secs = last.unwrap().duration_since(first.unwrap()).as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let total = bots as f64 * (frames.0 + 2) as f64;
    println!(
        "{bots:>4} bot(s) × {} frames: {:>7.0} frames/s persisted, ack latency p50 {:.1} ms, p99 {:.1} ms",
        frames.0 + 2,
        total / secs,
        q(0.5),
        q(0.99)
    );
    let metrics = cluster.metrics().await;
    let sum = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    println!(
        "       {:.0} frames per batch on average so far",
        sum("attache_control_plane_ingest_batch_frames_sum")
            / sum("attache_control_plane_ingest_batch_frames_count").max(1.0)
    );
    (total / secs, q(0.5), q(0.99))
}

/// A control plane of its own (on a database of its own), its simulated
/// workers, one bot alone and then `bots` at once; returns the latter.
async fn run(
    database_url: Option<&str>,
    one_per_transaction: bool,
    bots: usize,
    n_workers: usize,
    frames: (u64, u64),
) -> (f64, f64, f64) {
    let tag = if one_per_transaction {
        "unbatched"
    } else {
        "batched"
    };
    println!(
        "{}:",
        if one_per_transaction {
            "one frame per transaction"
        } else {
            "batched by the ingest writer"
        }
    );
    let tweak: fn(&mut attache_control_plane::Config) = if one_per_transaction {
        |c| {
            product_timings(c);
            c.ingest_batch = 1
        }
    } else {
        product_timings
    };
    let cluster = Cluster::start_with(Options {
        database_url: database_url.map(|u| own_postgres_database(u, tag)),
        create_bot_limit: Some((100_000, 100_000)),
        api_limit: Some((100_000, 100_000)),
        // The product's timings, not the tests' short ones (a link is
        // dead after four missed heartbeats).
        tweak: Some(tweak),
        ..Default::default()
    })
    .await;
    let api = cluster.tenant("load").await;
    let mut workers = Vec::new();
    for _ in 0..n_workers {
        workers.push(sim_worker(&cluster, (bots / n_workers + 1) as u32).await);
    }
    let one = round(&cluster, &api, &mut workers, 1, frames).await;
    let all = round(&cluster, &api, &mut workers, bots, frames).await;
    // Nothing of this run may go on into the next: its workers hang up
    // and its control plane stops.
    for w in &workers {
        w.conn.close(0u32.into(), b"done");
    }
    drop(workers);
    drop(cluster);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "  {bots} bots at once persist {:.1}× the frames per second of one bot alone",
        all.0 / one.0
    );
    all
}

fn product_timings(c: &mut attache_control_plane::Config) {
    c.heartbeat_interval = Duration::from_secs(2);
    c.worker_grace = Duration::from_secs(15);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "results_throughput: a load harness; run it with `cargo bench --bench results_throughput`"
        );
        return;
    }
    let bots = env("BOTS", 1000);
    let frames = (env("FRAMES", 100) as u64, env("RATE", 20) as u64);
    let n_workers = env("WORKERS", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let database_url = std::env::var("ATTACHE_TEST_POSTGRES_URL").ok();
        let database = if database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        // The baseline first: the same control plane, one frame per
        // transaction (as before the ingest writer batched them).
        // BASELINE=0 leaves it out (to profile the batched run alone).
        let before = (env("BASELINE", 1) != 0)
            .then(|| run(database_url.as_deref(), true, bots, n_workers, frames));
        let before = match before {
            Some(run) => Some(run.await),
            None => None,
        };
        let after = run(database_url.as_deref(), false, bots, n_workers, frames).await;
        if let Some(before) = before {
            println!(
                "batched: {:.1}× the frames per second of one frame per transaction, ack p99 {:.0} ms against {:.0} ms",
                after.0 / before.0,
                after.2,
                before.2
            );
        }
        println!(
            "results_throughput: {:.0} frames/s, ack p50 {:.0} ms, ack p99 {:.0} ms, bots {bots}, workers {n_workers}, database {database}",
            after.0, after.1, after.2
        );
    });
}
