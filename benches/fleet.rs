//! Load harness: one control plane (PostgreSQL, and Redis when
//! ATTACHE_TEST_REDIS_URL is set) and a fleet of simulated workers over
//! real QUIC with mutual TLS, driving BOTS (10,000) bots through their
//! whole life.
//!
//!     cargo bench --bench fleet
//!
//! The workers run in a second process (this harness again, as its worker
//! half), so the control plane's memory is this process's. Each of WORKERS
//! (500) workers enrolls once with a join token of its own, then speaks
//! the protocol by hand: it takes what it is assigned, reports JOINING and
//! IN_CALL, two participants and a recording, then for MEETING_S (10)
//! seconds a transcript segment and a speaker change every second and a
//! recording chunk every two, then the recording's totals and ENDED
//! (MEETING_ENDED). Bots are created through GraphQL at CREATE_RATE (1,000)
//! a second, by clients with at most CREATE_CONCURRENCY (256) requests open
//! at once. The last line is
//!
//!     fleet: 10000 bots, 500 workers, create p99 C ms, assign p99 D ms, F frames/s, cp rss R MiB, lost L
//!
//! where assign is createBot's request to the Assign reaching the worker,
//! and lost counts bots that did not end MEETING_ENDED or whose
//! acknowledged transcript segments are not all stored.

/// The binary's allocator (`src/main.rs`), so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod sim;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attache_protocol::{
    Assignment, BotReport, BotStatus, ControlMsg, Load, ResultBody, ResultFrame, StatusReason,
    TranscriptSegment, WorkerMsg, encode_frame, read_frame, write_frame,
};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use sha2::Digest;
use support::*;
use tokio::sync::mpsc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * 0.99) as usize]
}

fn main() {
    if std::env::var_os("ATTACHE_FLEET_ROLE").is_some() {
        return workers_half();
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet: a load harness; run it with `cargo bench --bench fleet`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(control_plane_half());
}

/// What one bot's worker saw: when its Assign came, and how many of its
/// transcript segments were acknowledged.
struct BotSeen {
    assigned_ms: u64,
    acked_segments: u64,
}

async fn control_plane_half() {
    let bots = env("BOTS", 10_000);
    let n_workers = env("WORKERS", 500);
    let rate = env("CREATE_RATE", 1000).max(1);
    let Ok(pg) = std::env::var("ATTACHE_TEST_POSTGRES_URL") else {
        panic!(
            "the fleet run needs PostgreSQL: set ATTACHE_TEST_POSTGRES_URL (scripts/services.sh start_postgres)"
        );
    };
    let db = own_postgres_database(&pg, "fleet");
    let redis = std::env::var("ATTACHE_TEST_REDIS_URL").ok();
    println!(
        "fleet: PostgreSQL{}; {bots} bots over {n_workers} workers, created at {rate}/s",
        if redis.is_some() { " and Redis" } else { "" }
    );
    let cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        redis_url: redis,
        create_bot_limit: Some((1_000_000, 1_000_000)),
        api_limit: Some((1_000_000, 1_000_000)),
        // The product's own timings, not the tests' short ones.
        tweak: Some(|c| {
            c.heartbeat_interval = Duration::from_secs(2);
            c.worker_grace = Duration::from_secs(15);
        }),
        ..Default::default()
    })
    .await;
    let api = cluster.tenant("fleet").await;

    // The workers' half: one join token each.
    let dir = temp_dir("fleet");
    let mut tokens = String::new();
    for _ in 0..n_workers {
        tokens += &cluster.token().await;
        tokens.push('\n');
    }
    std::fs::write(dir.join("tokens"), tokens).unwrap();
    let capacity = (bots / n_workers + 1) as u32 * 2;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("ATTACHE_FLEET_ROLE", "workers")
        .env("ATTACHE_FLEET_CP", cluster.quic.to_string())
        .env("ATTACHE_FLEET_DIR", &dir)
        .env("ATTACHE_FLEET_CAPACITY", capacity.to_string())
        .env("BOTS", bots.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let enrolled = Instant::now();
    for line in lines.by_ref() {
        if line.unwrap() == "ready" {
            break;
        }
    }
    println!(
        "  {n_workers} workers enrolled and connected in {:.1} s",
        enrolled.elapsed().as_secs_f64()
    );

    // Bots, at the creation rate, from clients with at most
    // CREATE_CONCURRENCY (256) requests open at once, as a client's
    // connection pool holds them. A create is timed from when it was due,
    // so waiting for a free connection counts.
    let created: Arc<Mutex<Vec<(String, u64, f64)>>> = Arc::default();
    let open = Arc::new(tokio::sync::Semaphore::new(env("CREATE_CONCURRENCY", 256)));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(bots);
    for i in 0..bots {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        let (api, created, open) = (api.clone(), created.clone(), open.clone());
        let url = cluster.meeting(&format!("fleet-{i}"), "");
        tasks.push(tokio::spawn(async move {
            let (sent_ms, t0) = (unix_ms(), Instant::now());
            let _slot = open.acquire().await.unwrap();
            let id = api.create_bot(&url, "Fleet Bot").await;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            created.lock().unwrap().push((id, sent_ms, ms));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "  {bots} bots created in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // The workers' half reports once every bot has ended.
    let mut seen: HashMap<String, BotSeen> = HashMap::new();
    let (mut frames, mut first_ms, mut last_ms) = (0u64, 0u64, 0u64);
    for line in lines {
        let line = line.unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["bot", id, assigned, segments] => {
                seen.insert(
                    id.to_string(),
                    BotSeen {
                        assigned_ms: assigned.parse().unwrap(),
                        acked_segments: segments.parse().unwrap(),
                    },
                );
            }
            ["frames", n, first, last] => {
                frames = n.parse().unwrap();
                first_ms = first.parse().unwrap();
                last_ms = last.parse().unwrap();
            }
            _ => println!("  workers: {line}"),
        }
    }
    assert!(child.wait().unwrap().success(), "the workers' half failed");

    let created = created.lock().unwrap().clone();
    let create_p99 = p99(created.iter().map(|c| c.2).collect());
    // Assign latency by when the bot was created: a wait that comes with
    // the load shows in every tenth, a transient in one.
    let waits: Vec<(u64, f64)> = created
        .iter()
        .filter_map(|(id, sent, _)| {
            seen.get(id)
                .map(|s| (*sent, s.assigned_ms.saturating_sub(*sent) as f64))
        })
        .collect();
    let first_sent = waits.iter().map(|w| w.0).min().unwrap_or(0);
    let last_sent = waits
        .iter()
        .map(|w| w.0)
        .max()
        .unwrap_or(0)
        .max(first_sent + 1);
    let mut tenths: Vec<Vec<f64>> = vec![Vec::new(); 10];
    for (sent, ms) in &waits {
        let i = ((sent - first_sent) * 10 / (last_sent - first_sent + 1)) as usize;
        tenths[i.min(9)].push(*ms);
    }
    let by_tenth: Vec<String> = tenths
        .into_iter()
        .map(|mut t| format!("{:.0}/{:.0}", median(&mut t), p99(t)))
        .collect();
    println!(
        "  assign p50/p99 ms by tenth of the creation: {}",
        by_tenth.join(" ")
    );
    let assign_p99 = p99(waits.iter().map(|w| w.1).collect());
    let per_second = frames as f64 / ((last_ms - first_ms).max(1) as f64 / 1000.0);

    // What is stored against what the workers were told was stored.
    let conn = Database::connect(&db).await.unwrap();
    let rows = |sql: &'static str| {
        let conn = conn.clone();
        async move {
            conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .unwrap()
        }
    };
    let mut lost = 0usize;
    let ended = rows("SELECT id, status, status_reason FROM bots").await;
    for r in &ended {
        let status: String = r.try_get("", "status").unwrap();
        let reason: Option<String> = r.try_get("", "status_reason").unwrap();
        if status != "ENDED" || reason.as_deref() != Some("MEETING_ENDED") {
            lost += 1;
        }
    }
    let stored: HashMap<String, i64> =
        rows("SELECT bot_id, count(*) AS n FROM transcript_segments GROUP BY bot_id")
            .await
            .iter()
            .map(|r| {
                (
                    r.try_get("", "bot_id").unwrap(),
                    r.try_get("", "n").unwrap(),
                )
            })
            .collect();
    for (id, s) in &seen {
        if stored.get(id).copied().unwrap_or(0) < s.acked_segments as i64 {
            lost += 1;
        }
    }
    lost += bots.saturating_sub(seen.len());
    let metrics = cluster.metrics().await;
    for l in metrics.lines().filter(|l| {
        l.starts_with("attache_control_plane_fleet_leases_expired_total")
            || l.starts_with("attache_control_plane_ingest_batch_frames_sum")
            || l.starts_with("attache_control_plane_ingest_batch_frames_count")
            || l.starts_with("attache_control_plane_dispatch_entries_total")
            || l.starts_with("attache_control_plane_bus_notices_total")
    }) {
        println!("  {l}");
    }
    let rss = |field: &str| {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    println!(
        "  control plane: rss {} MiB now, {} MiB at most",
        rss("VmRSS:"),
        rss("VmHWM:")
    );
    println!(
        "fleet: {bots} bots, {n_workers} workers, create p99 {create_p99:.0} ms, assign p99 {assign_p99:.0} ms, {per_second:.0} frames/s, cp rss {} MiB, lost {lost}",
        rss("VmHWM:")
    );
}

/// The workers' half: enrolls every worker, says `ready`, runs what each
/// is assigned, and once BOTS bots have ended prints what it saw.
fn workers_half() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cp: std::net::SocketAddr = std::env::var("ATTACHE_FLEET_CP").unwrap().parse().unwrap();
        let dir = PathBuf::from(std::env::var("ATTACHE_FLEET_DIR").unwrap());
        let capacity = env("ATTACHE_FLEET_CAPACITY", 40) as u32;
        let bots = env("BOTS", 10_000);
        let meeting = Duration::from_secs(env("MEETING_S", 10) as u64);
        let tokens: Vec<String> = std::fs::read_to_string(dir.join("tokens"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        // Enrolled once each, a few at a time.
        let mut dirs = Vec::new();
        for chunk in tokens.chunks(16) {
            let mut batch = Vec::new();
            for t in chunk {
                let d = dir.join(format!("w{}", dirs.len() + batch.len()));
                batch.push((
                    d.clone(),
                    tokio::spawn({
                        let t = t.clone();
                        async move { sim::enroll(cp, Some(t), &d).await }
                    }),
                ));
            }
            for (d, task) in batch {
                task.await.unwrap();
                dirs.push(d);
            }
        }
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, u64, u64, u64, u64, u64)>();
        for d in &dirs {
            worker(cp, d, capacity, meeting, done_tx.clone()).await;
        }
        println!("ready");
        std::io::stdout().flush().unwrap();
        let (mut frames, mut first, mut last) = (0, u64::MAX, 0);
        let mut out = String::new();
        for _ in 0..bots {
            // A bot never assigned or never finished is missing from the
            // report, and counted as lost.
            let next = tokio::time::timeout(Duration::from_secs(180), done_rx.recv()).await;
            let Ok(Some((id, assigned, segments, n, f, l))) = next else {
                println!("not every bot finished");
                break;
            };
            out += &format!("bot {id} {assigned} {segments}\n");
            frames += n;
            first = first.min(f);
            last = last.max(l);
        }
        out += &format!("frames {frames} {first} {last}\n");
        print!("{out}");
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    });
}

/// Each bot's line of the report: id, when assigned, segments acked,
/// frames acked, first frame sent and last ack (unix ms).
type Done = mpsc::UnboundedSender<(String, u64, u64, u64, u64, u64)>;

/// A bot's lease generation and where its acknowledgements go.
type AckWatch = (u64, tokio::sync::watch::Sender<u64>);

/// One simulated worker: its control stream, heartbeats listing what it
/// runs, and a task per assigned bot.
async fn worker(
    cp: std::net::SocketAddr,
    dir: &Path,
    capacity: u32,
    meeting: Duration,
    done: Done,
) {
    let (conn, mut send, mut recv) = sim::connect(cp, dir, capacity, vec![]).await;
    let running: Arc<Mutex<HashMap<(uuid::Uuid, u64), BotStatus>>> = Arc::default();
    let acks: Arc<Mutex<HashMap<uuid::Uuid, AckWatch>>> = Arc::default();
    {
        let running = running.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let bots: Vec<BotReport> = running
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(&(bot_id, generation), &status)| BotReport {
                        bot_id,
                        generation,
                        status,
                    })
                    .collect();
                let hb = WorkerMsg::Heartbeat {
                    load: Load {
                        active_bots: bots.len() as u32,
                        capacity,
                        rss_mib: 0,
                        draining: false,
                    },
                    bots,
                };
                if write_frame(&mut send, &hb).await.is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Ok(Some(m)) = read_frame::<ControlMsg, _>(&mut recv).await {
            match m {
                // The sweep repeats an Assign not yet taken up: one life
                // per lease, as a real worker keeps.
                ControlMsg::Assign(a) if acks.lock().unwrap().contains_key(&a.bot_id) => {}
                ControlMsg::Assign(a) => {
                    let assigned = unix_ms();
                    let (tx, rx) = tokio::sync::watch::channel(0);
                    acks.lock().unwrap().insert(a.bot_id, (a.generation, tx));
                    running
                        .lock()
                        .unwrap()
                        .insert((a.bot_id, a.generation), BotStatus::Joining);
                    tokio::spawn(bot(
                        conn.clone(),
                        *a,
                        meeting,
                        rx,
                        running.clone(),
                        assigned,
                        done.clone(),
                    ));
                }
                ControlMsg::Ack {
                    bot_id,
                    generation,
                    seq,
                } => {
                    if let Some((g, tx)) = acks.lock().unwrap().get(&bot_id)
                        && *g == generation
                    {
                        tx.send_replace(seq);
                    }
                }
                _ => {}
            }
        }
    });
}

/// A bot's result stream as a worker keeps it: every frame until it is
/// acknowledged, written again on a fresh stream when the control plane
/// stopped the stream (it could not persist a frame) or stays silent.
struct Replaying {
    conn: quinn::Connection,
    stream: Option<quinn::SendStream>,
    unacked: Vec<(u64, Vec<u8>)>,
    acked: tokio::sync::watch::Receiver<u64>,
}

impl Replaying {
    async fn write(&mut self, seq: u64, bytes: Vec<u8>) {
        let acked = *self.acked.borrow();
        self.unacked.retain(|(s, _)| *s > acked);
        self.unacked.push((seq, bytes));
        if self.stream.is_none() {
            return self.replay().await;
        }
        let last = &self.unacked.last().expect("just pushed").1;
        if self
            .stream
            .as_mut()
            .expect("open")
            .write_all(last)
            .await
            .is_err()
        {
            self.replay().await;
        }
    }

    /// Everything not acknowledged, on a fresh stream.
    async fn replay(&mut self) {
        for attempt in 0..50u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let Ok(mut stream) = self.conn.open_uni().await else {
                continue;
            };
            let acked = *self.acked.borrow();
            let mut ok = true;
            for (_, bytes) in self.unacked.iter().filter(|(s, _)| *s > acked) {
                if stream.write_all(bytes).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                self.stream = Some(stream);
                return;
            }
        }
        self.stream = None;
    }
}

/// One bot's life, as a worker would report it.
async fn bot(
    conn: quinn::Connection,
    a: Assignment,
    meeting: Duration,
    mut acked: tokio::sync::watch::Receiver<u64>,
    running: Arc<Mutex<HashMap<(uuid::Uuid, u64), BotStatus>>>,
    assigned: u64,
    done: Done,
) {
    let mut out = Replaying {
        conn,
        stream: None,
        unacked: Vec::new(),
        acked: acked.clone(),
    };
    let mut seq = 0u64;
    let mut segments = Vec::new();
    let first_sent = unix_ms();
    let mut send = async |body: ResultBody, out: &mut Replaying| {
        seq += 1;
        let f = ResultFrame::seal(
            &a.data_key,
            a.bot_id,
            a.generation,
            seq,
            unix_ms() as i64,
            &body,
        );
        out.write(seq, encode_frame(&f).unwrap()).await;
        seq
    };
    let status = |s: BotStatus, reason: Option<StatusReason>| ResultBody::Status {
        status: s,
        reason,
        detail: None,
    };
    send(status(BotStatus::Joining, None), &mut out).await;
    send(status(BotStatus::InCall, None), &mut out).await;
    running
        .lock()
        .unwrap()
        .insert((a.bot_id, a.generation), BotStatus::InCall);
    for (id, name) in [("p1", "Alice"), ("p2", "Bob")] {
        let joined = ResultBody::ParticipantJoined {
            participant_id: id.into(),
            name: name.into(),
        };
        send(joined, &mut out).await;
    }
    send(
        ResultBody::RecordingStarted {
            format: "ogg/opus".into(),
        },
        &mut out,
    )
    .await;
    let chunk = vec![7u8; 6_000];
    let (mut offset, mut sha) = (0u64, sha2::Sha256::new());
    let seconds = meeting.as_secs().max(1);
    for s in 1..=seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let who = if s % 2 == 0 {
            ("p1", "Alice")
        } else {
            ("p2", "Bob")
        };
        let speaking = ResultBody::SpeakerStarted {
            participant_id: who.0.into(),
            name: who.1.into(),
        };
        send(speaking, &mut out).await;
        let segment = ResultBody::Transcript(TranscriptSegment {
            segment_id: format!("u{s}"),
            start_ms: s * 1000,
            end_ms: s * 1000 + 900,
            speaker: Some(who.1.into()),
            text: "The release candidate passed every test yesterday.".into(),
            confidence: 0.9,
            language: Some("en".into()),
            is_final: true,
        });
        segments.push(send(segment, &mut out).await);
        if s % 2 == 0 {
            let body = ResultBody::RecordingChunk {
                offset,
                bytes: chunk.clone(),
            };
            send(body, &mut out).await;
            offset += chunk.len() as u64;
            sha.update(&chunk);
        }
    }
    send(
        ResultBody::RecordingFinished {
            size_bytes: offset,
            duration_ms: seconds * 1000,
            sha256: hex::encode(sha.finalize()),
        },
        &mut out,
    )
    .await;
    let last = send(
        status(BotStatus::Ended, Some(StatusReason::MeetingEnded)),
        &mut out,
    )
    .await;
    running.lock().unwrap().remove(&(a.bot_id, a.generation));
    // Done once everything is acknowledged (or the control plane never
    // will: counted as not acknowledged).
    let deadline = Instant::now() + Duration::from_secs(300);
    while *acked.borrow() < last && Instant::now() < deadline {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            let _ = acked.wait_for(|s| *s >= last).await;
        })
        .await;
        if waited.is_err() {
            out.replay().await;
        }
    }
    let through = *acked.borrow();
    let segments_acked = segments.iter().filter(|s| **s <= through).count() as u64;
    let _ = done.send((
        a.bot_id.to_string(),
        assigned,
        segments_acked,
        through,
        first_sent,
        unix_ms(),
    ));
}
