//! Prometheus metrics of one edge worker, named `attache_edge_worker_*`,
//! served on `--metrics-addr` when set. Labels are bounded; no bot or tenant
//! ids.

use std::sync::Arc;

use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) struct Metrics {
    registry: Registry,
    pub bots_active: IntGauge,
    pub audio_frames: IntCounter,
    pub audio_frames_corrupt: IntCounter,
    pub audio_frames_dropped: IntCounter,
    pub audio_capture_errors: IntCounter,
    pub no_audio_warnings: IntCounter,
    pub page_stalls: IntCounter,
    pub pages_stalled: IntGauge,
    pub joins_waiting: IntGauge,
    pub browser_starts: IntCounter,
    pub spare_pages: IntGauge,
    pub room: IntGauge,
    pub room_limited: prometheus::IntGaugeVec,
    pub bot_millicores: IntGauge,
    pub bot_mib: IntGauge,
    pub recorded_seconds: IntCounter,
    pub outbox_pending: IntGauge,
    pub link_connected: IntGauge,
    pub link_reconnects: IntCounter,
    pub spool_recovered: IntCounter,
    pub spool_dropped: IntGauge,
    pub transcript_segments: IntCounter,
    pub transcription_errors: IntCounter,
    pub transcription_latency_ms: prometheus::Histogram,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            bots_active: gauge(
                &r,
                "attache_edge_worker_bots_active",
                "Bot sessions running on this worker",
            ),
            audio_frames: counter(
                &r,
                "attache_edge_worker_audio_frames_total",
                "20 ms audio frames captured from meeting pages",
            ),
            audio_frames_corrupt: counter(
                &r,
                "attache_edge_worker_audio_frames_corrupt_total",
                "Frames from a page that did not decode (dropped)",
            ),
            audio_frames_dropped: counter(
                &r,
                "attache_edge_worker_audio_frames_dropped_total",
                "Frames dropped because the encoder fell behind",
            ),
            audio_capture_errors: counter(
                &r,
                "attache_edge_worker_audio_capture_errors_total",
                "In-page capture failures reported by meeting pages",
            ),
            no_audio_warnings: counter(
                &r,
                "attache_edge_worker_no_audio_warnings_total",
                "Bots that saw someone speaking but received no audio for the warning period",
            ),
            page_stalls: counter(
                &r,
                "attache_edge_worker_page_stalls_total",
                "Stalls of a meeting page (no answer or no audio for 2 s); each warned PAGE_STALLED",
            ),
            pages_stalled: gauge(
                &r,
                "attache_edge_worker_pages_stalled",
                "Meeting pages stalled right now",
            ),
            joins_waiting: gauge(
                &r,
                "attache_edge_worker_joins_waiting",
                "Bots waiting for their turn to load their meeting page",
            ),
            browser_starts: counter(
                &r,
                "attache_edge_worker_browser_starts_total",
                "Chromium started: with the worker (or its first bot), and again after it died",
            ),
            spare_pages: gauge(
                &r,
                "attache_edge_worker_spare_pages",
                "Browser contexts made ahead for the next bots' joins",
            ),
            room: gauge(
                &r,
                "attache_edge_worker_room",
                "More bots the worker measures it can take now (at most --capacity; with --fixed-capacity it takes --capacity all the same)",
            ),
            room_limited: {
                let g = prometheus::IntGaugeVec::new(
                    prometheus::Opts::new(
                        "attache_edge_worker_room_limited",
                        "1 for what bounds the worker's room now: configured, cpu, memory or joins",
                    ),
                    &["limit"],
                )
                .expect("metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            bot_millicores: gauge(
                &r,
                "attache_edge_worker_bot_millicores",
                "CPU a bot here was measured to take, in thousandths of a core",
            ),
            bot_mib: gauge(
                &r,
                "attache_edge_worker_bot_memory_mib",
                "Resident memory a bot here was measured to add, in MiB",
            ),
            recorded_seconds: counter(
                &r,
                "attache_edge_worker_recorded_seconds_total",
                "Seconds of audio written to recordings",
            ),
            outbox_pending: gauge(
                &r,
                "attache_edge_worker_outbox_pending_frames",
                "Result frames not yet acknowledged by the control plane",
            ),
            link_connected: gauge(
                &r,
                "attache_edge_worker_link_connected",
                "1 while the fleet link is up",
            ),
            link_reconnects: counter(
                &r,
                "attache_edge_worker_link_reconnects_total",
                "Fleet link losses",
            ),
            spool_recovered: counter(
                &r,
                "attache_edge_worker_spool_recovered_frames_total",
                "Result frames a restarted worker found in its spool and delivered",
            ),
            spool_dropped: gauge(
                &r,
                "attache_edge_worker_spool_dropped_frames",
                "Unacknowledged results dropped because a lease had too many waiting",
            ),
            transcript_segments: counter(
                &r,
                "attache_edge_worker_transcript_segments_total",
                "Final transcript segments produced",
            ),
            transcription_errors: counter(
                &r,
                "attache_edge_worker_transcription_errors_total",
                "Requests to a speech-to-text engine that failed",
            ),
            transcription_latency_ms: {
                let h = prometheus::Histogram::with_opts(
                    prometheus::HistogramOpts::new(
                        "attache_edge_worker_transcription_latency_milliseconds",
                        "From the end of an utterance to its final segment",
                    )
                    .buckets(vec![
                        100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0,
                        64000.0,
                    ]),
                )
                .expect("metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            registry: r,
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("utf-8")
    }
}

/// Serves `/metrics` and `/healthz` on `listener` as a tracked task, until
/// `served` is cancelled. `/healthz` answers 200 `ok`, or `draining` once
/// `shutdown` is: a liveness probe, not a readiness one.
pub(crate) fn serve(
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
    served: CancellationToken,
    tasks: &TaskTracker,
) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { m.render() }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let draining = shutdown.is_cancelled();
                async move { if draining { "draining" } else { "ok" } }
            }),
        );
    tasks.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { served.cancelled().await })
            .await;
    });
}
