//! Load harness: time from `createBot` to IN_CALL for sandbox bots, through
//! the public API, with a real edge worker and Chromium.
//!
//!     cargo bench --bench join_latency
//!
//! Prints the median (and spread) of N sequential bots, from the stored
//! event times (createdAt → IN_CALL event), and the median of each step.
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
        cluster.add_worker(1).await;
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
                println!("first bot (includes starting Chromium): {total:.0} ms");
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
