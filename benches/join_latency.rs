//! Load harness: time from `createBot` to IN_CALL for sandbox bots, through
//! the public API, with a real edge worker and Chromium.
//!
//!     cargo bench --bench join_latency
//!
//! Prints the median (and spread) of N sequential bots (`RUNS`, 10) after
//! a first one, from the stored event times (createdAt → IN_CALL event),
//! and the median of each step.
//! The sandbox host admits at once, so host reaction time is not counted.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use support::*;

fn at(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("join_latency: a load harness; run it with `cargo bench --bench join_latency`");
        return;
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cluster = Cluster::start().await;
        // As `attache edge-worker` runs: Chromium started with the worker,
        // contexts made ahead (`BROWSER_ON_DEMAND=1`: with the first bot).
        let on_demand = std::env::var("BROWSER_ON_DEMAND").is_ok_and(|v| v == "1");
        if on_demand {
            cluster.add_worker(1).await;
        } else {
            cluster
                .add_worker_with(1, "local", None, |w| w.browser_at_start = true)
                .await;
            // A worker starts before its bots: its spare contexts are made.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while metric(
                &cluster.worker_metrics_text(0).await,
                "attache_edge_worker_spare_pages ",
            ) < 1.0
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let api = cluster.tenant("bench").await;
        let steps = ["DISPATCHED", "JOINING", "WAITING_ROOM", "IN_CALL"];
        let mut totals = Vec::new();
        let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
        // One bot first so Chromium's start-up is measured apart.
        for i in 0..=runs {
            let url = cluster.meeting(&format!("bench{i}"), "admit_after_ms=0");
            let id = api.create_bot(&url, "Bench Bot").await;
            let bot = api
                .wait_status(&id, "IN_CALL", Duration::from_secs(60))
                .await;
            let events = bot["events"].as_array().unwrap();
            let created = at(&bot["createdAt"]);
            let time_of = |s: &str| at(&events.iter().find(|e| e["status"] == s).unwrap()["at"]);
            let total = (time_of("IN_CALL") - created).num_milliseconds() as f64;
            if i == 0 {
                let browser = if on_demand {
                    "includes starting Chromium"
                } else {
                    "Chromium started with the worker"
                };
                println!("first bot ({browser}): {total:.0} ms");
            } else {
                totals.push(total);
                // A lobby the host answers at once may never be seen.
                let mut prev = created;
                for (k, s) in steps.iter().enumerate() {
                    if let Some(e) = events.iter().find(|e| e["status"] == *s) {
                        let t = at(&e["at"]);
                        per_step[k].push((t - prev).num_milliseconds() as f64);
                        prev = t;
                    }
                }
            }
            api.leave(&id).await;
            api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
        }
        let mut sorted = totals.clone();
        let med = median(&mut sorted);
        println!(
            "createBot -> IN_CALL over {runs} bots: median {med:.0} ms, min {:.0} ms, max {:.0} ms",
            sorted.first().unwrap(),
            sorted.last().unwrap()
        );
        for (k, s) in steps.iter().enumerate() {
            if !per_step[k].is_empty() {
                let n = per_step[k].len();
                println!(
                    "  step to {s:<12} median {:.0} ms ({n} of {runs} bots)",
                    median(&mut per_step[k])
                );
            }
        }
    });
}
