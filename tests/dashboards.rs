//! Dashboards and alerts may only use metrics the services really export.

mod support;

use std::collections::BTreeSet;

use support::Cluster;

/// `attache_…` identifiers in a text, with histogram suffixes folded.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("attache_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let mut name = &text[start..end];
        for suffix in ["_bucket", "_count", "_sum"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
            }
        }
        out.insert(name.to_string());
        i = end;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_dashboard_or_alert_uses_is_exported() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    let worker = cluster.worker_metrics_text(0).await;
    let text = cluster.metrics().await + worker.as_str();
    assert!(
        text.contains("attache_edge_worker_audio_frames_total"),
        "{text}"
    );
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    assert!(
        exported.contains("attache_control_plane_bots"),
        "{exported:?}"
    );
    // The autoscaling signals of the worker's region: one worker, room for
    // its one bot, nothing queued (once its first heartbeat is in).
    let want = [
        (
            "attache_control_plane_region_workers{pool=\"shared\",region=\"local\"}",
            "1",
        ),
        (
            "attache_control_plane_region_capacity{pool=\"shared\",region=\"local\"}",
            "1",
        ),
        (
            "attache_control_plane_region_free_capacity{pool=\"shared\",region=\"local\"}",
            "1",
        ),
        (
            "attache_control_plane_region_queued_bots{pool=\"shared\",region=\"local\"}",
            "0",
        ),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = cluster.metrics().await;
        let got: Vec<Option<&str>> = want
            .iter()
            .map(|(series, _)| {
                text.lines()
                    .find_map(|l| l.strip_prefix(series))
                    .map(str::trim)
            })
            .collect();
        if want.iter().zip(&got).all(|((_, w), g)| Some(*w) == *g) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{want:?}: {got:?} in {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<serde_json::Value>(&text).expect("dashboard is valid JSON");
        }
        let used = referenced(&text);
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{} uses metrics nobody exports: {missing:?}",
            path.display()
        );
        checked += used.len();
    }
    assert!(
        checked >= 8,
        "the dashboards reference the service's metrics"
    );
}
