//! Load harness: memory each added sandbox bot costs on an edge worker.
//!
//!     cargo bench --bench bot_memory
//!
//! Runs an `attache edge-worker` process (capacity 10), puts 1, 5 and 10
//! bots into sandbox meetings where the host speaks (so every bot captures
//! and encodes audio), and after each step sums the proportional
//! set size (PSS, so shared pages are counted once) of the worker and every
//! process in its process group: the shared Chromium, its GPU/network
//! helpers and one renderer per bot context. Prints the total and the cost
//! per added bot.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::*;

/// Sum of `Pss:` over every process whose process group is `pgid`, in KiB,
/// with the process count; and the same split by kind of process (the
/// worker, Chromium's browser process, and each `--type=` of helper).
fn group_pss_kib(pgid: i32) -> (u64, usize) {
    let (total, procs, _) = group_pss_by_kind(pgid);
    (total, procs)
}

fn group_pss_by_kind(pgid: i32) -> (u64, usize, std::collections::BTreeMap<String, (u64, usize)>) {
    let mut kinds = std::collections::BTreeMap::new();
    let mut total = 0;
    let mut procs = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name: state ppid pgrp ...
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let pgrp: i32 = after
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        if pgrp != pgid {
            continue;
        }
        if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            let pss = rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
            total += pss;
            procs += 1;
            let cmdline = String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
            )
            .into_owned();
            // Chromium rewrites its command line into one space-separated
            // string; the worker's own names the chromium binary as a flag.
            let mut args = cmdline.split(['\0', ' ']);
            let program = args.next().unwrap_or_default();
            let kind = match args.find_map(|a| a.strip_prefix("--type=")) {
                Some(t) => t.to_string(),
                None if program.ends_with("attache") => "worker".to_string(),
                None => "browser".to_string(),
            };
            let e = kinds.entry(kind).or_insert((0, 0));
            e.0 += pss;
            e.1 += 1;
        }
    }
    (total, procs, kinds)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bot_memory: a load harness; run it with `cargo bench --bench bot_memory`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = Cluster::start().await;
        let worker = cluster.spawn_worker_process_with_capacity(10).await;
        let pgid = worker.pgid();
        let api = cluster.tenant("memory").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (idle, n) = group_pss_kib(pgid);
        println!("worker idle (no browser yet): {:.0} MiB PSS in {n} processes", idle as f64 / 1024.0);
        let mut bots = Vec::new();
        let mut previous: Option<(usize, u64)> = None;
        for target in [1usize, 5, 10] {
            while bots.len() < target {
                let url = cluster.meeting(&format!("mem{}", bots.len()), "admission=open&script=demo-loop");
                bots.push(api.create_bot(&url, "Memory Bot").await);
            }
            for id in &bots {
                api.wait_status(id, "IN_CALL", Duration::from_secs(60)).await;
            }
            // Let pages settle before reading.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (pss, procs) = group_pss_kib(pgid);
            let mib = pss as f64 / 1024.0;
            match previous {
                None => println!("{target:>2} bot:  {mib:.0} MiB PSS in {procs} processes (the first bot also starts Chromium)"),
                Some((n0, p0)) => println!(
                    "{target:>2} bots: {mib:.0} MiB PSS in {procs} processes; {:.0} MiB per added bot",
                    (pss - p0) as f64 / 1024.0 / (target - n0) as f64
                ),
            }
            previous = Some((target, pss));
            let (_, _, kinds) = group_pss_by_kind(pgid);
            let split: Vec<String> = kinds
                .iter()
                .map(|(k, (kib, n))| format!("{k} {:.0} MiB/{n}", *kib as f64 / 1024.0))
                .collect();
            println!("        by process: {}", split.join(", "));
        }
        for id in &bots {
            api.leave(id).await;
        }
        drop(worker);
    });
}
