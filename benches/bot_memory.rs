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
/// with the process count.
fn group_pss_kib(pgid: i32) -> (u64, usize) {
    let total = group_usage(pgid).total();
    (total.pss_kib, total.procs)
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
            println!("        by process: {}", group_usage(pgid).pss_split());
        }
        for id in &bots {
            api.leave(id).await;
        }
        drop(worker);
    });
}
