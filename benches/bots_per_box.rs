//! Load harness: how many audio-only bots one machine holds in their calls.
//!
//!     cargo bench --bench bots_per_box
//!
//! Runs one `attache edge-worker` process (the build profile of the bench,
//! release under `cargo bench`) and adds bots in steps (1, 5, 10, … 30;
//! `STEPS=1,2,4` to choose), each in a sandbox meeting of its own that
//! loops its speakers for ever. The bots of a step are created at once;
//! each step is held for a minute (`HOLD_SECS`) and then measured: bots
//! still in their call, their joins (createBot → IN_CALL), audio frames
//! dropped by the worker and frames missing against the wall clock, the
//! CPU of the worker's process group (worker, Chromium, its renderers and
//! helpers, split by kind) and of the machine, and the group's PSS, per
//! bot over the idle worker (Chromium running, no bot) and per bot added
//! since the step before. A step
//! passes when every bot is in its call with no frame dropped or missing;
//! the run stops at the first step that does not.
//!
//! `TRANSCRIBE=1` gives every bot the local speech-to-text engine.
//!
//! The sandbox's speakers are sent from outside the bot's page, as a
//! platform's media server sends them (`speakers=remote`: the sandbox
//! server sends each clip's Opus packets over its own peer connection), so
//! the bot's page only decodes and the worker's figures are the bot's own.
//! `SPEAKERS=page` plays and encodes them in the bot's page instead (a pair
//! of RTCPeerConnections there), as the sandbox does by default.
//!
//! Ends with the largest step that passed, its memory per bot over the
//! idle worker:
//!
//!     bots_per_box: N bots in call of M, join p50 J s, dropped frames D, cpu C cores, pss per added bot P MiB

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use support::*;

/// Frames the page hands over per second of call (20 ms each).
const FRAMES_PER_SEC: f64 = 50.0;
/// Missing frames tolerated per bot and step: those in flight at the
/// hold's two edges.
const EDGE_FRAMES: f64 = 10.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The worker's metrics: a reader of one sample by name (`missing` when
/// it is not there).
async fn worker_metrics(metrics: &str, missing: f64) -> impl Fn(&str) -> f64 {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    move |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(missing)
    }
}

/// What the worker measures it could take more of, and a bot's cost there
/// (it runs with --fixed-capacity, so the bench decides the steps).
async fn measured_room(metrics: &str) -> String {
    let value = worker_metrics(metrics, f64::NAN).await;
    let limit = ["configured", "cpu", "memory", "joins"]
        .into_iter()
        .find(|l| {
            value(&format!(
                "attache_edge_worker_room_limited{{limit=\"{l}\"}} "
            )) == 1.0
        })
        .unwrap_or("?");
    format!(
        "room for {} more (bounded by {limit}), a bot {:.3} cores and {} MiB",
        value("attache_edge_worker_room "),
        value("attache_edge_worker_bot_millicores ") / 1000.0,
        value("attache_edge_worker_bot_memory_mib "),
    )
}

/// The worker's audio counters: frames received, dropped, corrupt.
async fn frame_counters(metrics: &str) -> (f64, f64, f64) {
    let value = worker_metrics(metrics, 0.0).await;
    (
        value("attache_edge_worker_audio_frames_total "),
        value("attache_edge_worker_audio_frames_dropped_total "),
        value("attache_edge_worker_audio_frames_corrupt_total "),
    )
}

/// The worker's transcription latency histogram (utterance ended to its
/// segment sent), as (upper bound in ms, count at or below it).
async fn latency_buckets(metrics: &str) -> Vec<(f64, f64)> {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(
                "attache_edge_worker_transcription_latency_milliseconds_bucket{le=\"",
            )?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which share `q` of the segments between two
/// readings fell, and how many there were.
fn latency_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |c| c.1);
    let at = counts
        .iter()
        .find(|c| c.1 >= q * total)
        .map_or(f64::NAN, |c| c.0);
    (at, total)
}

/// Seconds from createBot to IN_CALL, once the bot is in its call.
async fn join_secs(api: &Api, id: &str, within: Duration) -> Option<f64> {
    let deadline = Instant::now() + within;
    loop {
        let b = api.bot(id).await;
        if b["status"] == "IN_CALL" {
            let at = |v: &serde_json::Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            let created = at(&b["createdAt"]);
            let joined = b["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["status"] == "IN_CALL")
                .map(|e| at(&e["at"]))?;
            return Some((joined - created).num_milliseconds() as f64 / 1000.0);
        }
        if b["endedAt"].is_string() || Instant::now() > deadline {
            println!(
                "  bot {id} not in its call: {} {}",
                b["status"], b["statusReason"]
            );
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Step {
    bots: usize,
    in_call: usize,
    join_p50: f64,
    dropped: f64,
    cpu: f64,
    pss_kib: u64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bots_per_box: a load harness; run it with `cargo bench --bench bots_per_box`");
        return;
    }
    let steps: Vec<usize> = std::env::var("STEPS")
        .unwrap_or_else(|_| "1,5,10,15,20,25,30".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let hold = Duration::from_secs(env_or("HOLD_SECS", 60));
    let transcribe = std::env::var("TRANSCRIBE").is_ok_and(|v| v == "1");
    let speakers = std::env::var("SPEAKERS").unwrap_or_else(|_| "remote".into());
    let top = *steps.iter().max().expect("at least one step");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Heartbeats as in production: a loaded box is not a lost worker.
        let cluster = Cluster::start_with(Options {
            tweak: Some(|c| {
                c.heartbeat_interval = Duration::from_secs(2);
                c.worker_grace = Duration::from_secs(15);
            }),
            ..Options::default()
        })
        .await;
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        // `MAX_JOINING` and `CHROMIUM_ARGS` (space-separated, without
        // dashes) are passed on to the worker, to measure them.
        let mut flags = vec!["--metrics-addr".to_string(), metrics.clone()];
        if let Ok(n) = std::env::var("MAX_JOINING") {
            flags.extend(["--max-joining".to_string(), n]);
        }
        for arg in std::env::var("CHROMIUM_ARGS").unwrap_or_default().split_whitespace() {
            flags.extend(["--chromium-arg".to_string(), arg.to_string()]);
        }
        println!("worker flags: {}", flags.join(" "));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let worker = cluster
            .spawn_worker_process_args(temp_dir("box-worker"), top as u32, &[], &flags)
            .await;
        let pgid = worker.pgid();
        let api = cluster.tenant("box").await;
        // The worker starts Chromium as it starts; bots are added once it
        // runs, and memory is counted from the worker idle with it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Not serving yet: no text.
            let text = match reqwest::get(format!("http://{metrics}/metrics")).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let started = text.contains("attache_edge_worker_browser_starts_total ")
                && metric(&text, "attache_edge_worker_browser_starts_total ") >= 1.0;
            if started || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = group_usage(pgid).total().pss_kib;
        println!("idle worker: pss {:.0} MiB", idle as f64 / 1024.0);
        let mut bots: Vec<String> = Vec::new();
        let mut joins: Vec<f64> = Vec::new();
        let mut passed: Option<Step> = None;
        let mut last_pss = (0usize, idle);
        let mut attempted = 0;
        println!(
            "bots_per_box: steps {steps:?}, each held {} s, transcription {}, speakers {speakers}",
            hold.as_secs(),
            if transcribe { "local" } else { "off" }
        );
        for &target in &steps {
            attempted = target;
            let joining0 = (group_usage(pgid), Instant::now());
            let mut added = Vec::new();
            while bots.len() + added.len() < target {
                let n = bots.len() + added.len();
                let url = cluster.meeting(
                    &format!("box{n}"),
                    &format!("admission=open&script=demo-loop&speakers={speakers}"),
                );
                let transcription = if transcribe { json!({"provider": "LOCAL"}) } else { json!({"provider": "NONE"}) };
                let d = api
                    .gql(
                        "mutation($u: String!, $t: BotTranscriptionInput) { createBot(input: {meetingUrl: $u, botName: \"Box Bot\", transcription: $t}) { id } }",
                        json!({ "u": url, "t": transcription }),
                    )
                    .await;
                added.push(d["createBot"]["id"].as_str().unwrap().to_string());
            }
            let waits = added
                .iter()
                .map(|id| join_secs(&api, id, Duration::from_secs(180)));
            let step_joins: Vec<Option<f64>> = futures::future::join_all(waits).await;
            let mut step_joined: Vec<f64> = step_joins.iter().flatten().copied().collect();
            joins.extend(step_joined.iter().copied());
            // What the joins cost (the bots already in calls included).
            let joining1 = group_usage(pgid);
            let joining_secs = joining0.1.elapsed().as_secs_f64();
            let core_secs =
                ticks_to_cores(joining1.total().cpu_ticks - joining0.0.total().cpu_ticks, 1.0);
            println!(
                "        joining {} bots: {joining_secs:.1} s, {:.2} core-seconds a join; by process: {}",
                added.len(),
                core_secs / added.len().max(1) as f64,
                joining1.cpu_split_since(&joining0.0, joining_secs)
            );
            bots.extend(added);
            let max_join = step_joined.iter().copied().fold(0.0, f64::max);
            let step_p50 = median(&mut step_joined);
            // Pages settle before the hold.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (frames0, dropped0, corrupt0) = frame_counters(&metrics).await;
            let latency0 = latency_buckets(&metrics).await;
            let group0 = group_usage(pgid);
            let threads0 = thread_ticks(pgid);
            let machine0 = machine_ticks();
            let t0 = Instant::now();
            tokio::time::sleep(hold).await;
            let secs = t0.elapsed().as_secs_f64();
            let group1 = group_usage(pgid);
            let threads1 = thread_ticks(pgid);
            let machine1 = machine_ticks();
            let (frames1, dropped1, corrupt1) = frame_counters(&metrics).await;
            let latency1 = latency_buckets(&metrics).await;
            let mut in_call = 0;
            let mut left = std::collections::BTreeMap::<String, usize>::new();
            for id in &bots {
                let b = api.bot(id).await;
                if b["status"] == "IN_CALL" {
                    in_call += 1;
                } else {
                    // With the last event's words: what the page showed.
                    let detail = b["events"]
                        .as_array()
                        .and_then(|e| e.last())
                        .map_or(String::new(), |e| e["detail"].to_string());
                    *left
                        .entry(format!("{} {} {detail}", b["status"], b["statusReason"]))
                        .or_default() += 1;
                }
            }
            for (how, n) in &left {
                println!("  {n} bot(s) out of their call: {how}");
            }
            let cpu = ticks_to_cores(
                group1.total().cpu_ticks - group0.total().cpu_ticks,
                secs,
            );
            let machine = (machine1.0 - machine0.0) as f64 / (machine1.1 - machine0.1) as f64
                * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let dropped = dropped1 - dropped0 + corrupt1 - corrupt0;
            let expected = bots.len() as f64 * FRAMES_PER_SEC * secs;
            let received = frames1 - frames0;
            let missing = (expected - received - EDGE_FRAMES * bots.len() as f64).max(0.0);
            let pss = group1.total().pss_kib;
            let per_bot = (pss as f64 - idle as f64) / 1024.0 / target as f64;
            let since_last =
                (pss as f64 - last_pss.1 as f64) / 1024.0 / (target - last_pss.0) as f64;
            last_pss = (target, pss);
            println!(
                "{target:>2} bots: {in_call} in call, join p50 {step_p50:.1} s max {max_join:.1} s, \
                 frames {:.1}/s per bot, dropped {dropped:.0}, missing {missing:.0}, \
                 cpu {cpu:.2} cores ({:.3} per bot), machine {machine:.2} cores, \
                 pss {:.0} MiB ({per_bot:.0} MiB per bot over the idle worker, \
                 {since_last:.0} MiB per bot added since the last step)",
                received / secs / bots.len() as f64,
                cpu / target as f64,
                pss as f64 / 1024.0,
            );
            println!("        cpu by process: {}", group1.cpu_split_since(&group0, secs));
            println!("        pss by process: {}", group1.pss_split());
            println!(
                "        cpu by thread: {}",
                top_threads(&threads0, &threads1, secs, 12)
            );
            println!("        worker measured: {}", measured_room(&metrics).await);
            if transcribe {
                let (p50, segments) = latency_quantile(&latency0, &latency1, 0.5);
                let (p99, _) = latency_quantile(&latency0, &latency1, 0.99);
                println!(
                    "        transcription: {segments:.0} segments ({:.1} per bot a minute), \
                     utterance end to segment p50 under {:.1} s, p99 under {:.1} s",
                    segments / target as f64 / secs * 60.0,
                    p50 / 1000.0,
                    p99 / 1000.0
                );
            }
            if in_call < target || dropped > 0.0 || missing > 0.0 {
                println!("        step failed: not every bot held its call with all its audio");
                break;
            }
            passed = Some(Step {
                bots: target,
                in_call,
                join_p50: median(&mut joins.clone()),
                dropped,
                cpu,
                pss_kib: pss,
            });
        }
        for id in &bots {
            api.leave(id).await;
        }
        drop(worker);
        let (n, j, d, c, p) = match &passed {
            Some(s) => {
                let per_added = (s.pss_kib as f64 - idle as f64) / 1024.0 / s.bots as f64;
                (s.in_call, s.join_p50, s.dropped, s.cpu, per_added)
            }
            None => (0, f64::NAN, f64::NAN, f64::NAN, f64::NAN),
        };
        println!(
            "bots_per_box: {n} bots in call of {attempted}, join p50 {j:.1} s, dropped frames {d:.0}, cpu {c:.2} cores, pss per added bot {p:.0} MiB"
        );
    });
}
