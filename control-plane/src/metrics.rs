//! Prometheus metrics of the control plane, named
//! `attache_control_plane_<subsystem>_<name>`. Labels are bounded: statuses
//! and reasons, never tenants or bots.

use attache_protocol::{BotStatus, ErrorCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    pub bots: IntGaugeVec,
    pub transitions: IntCounterVec,
    pub dispatch_latency: Histogram,
    pub workers_connected: IntGauge,
    pub quic_connections: IntGauge,
    pub frames_received: IntCounterVec,
    pub frames_rejected: IntCounterVec,
    pub leases_expired: IntCounterVec,
    pub commands_refused: IntCounterVec,
    pub api_errors: IntCounterVec,
    pub bot_warnings: IntCounterVec,
    pub webhook_attempts: IntCounterVec,
    pub webhook_latency: Histogram,
    pub transcript_segments: IntCounterVec,
    pub retention_deleted: IntCounterVec,
    pub retention_objects_deleted: IntCounter,
    pub retention_sweep_seconds: Histogram,
    pub retention_oldest_expired: IntGauge,
    pub retention_sweeps: IntCounterVec,
    pub erasures: IntCounterVec,
    pub region_queued_bots: IntGaugeVec,
    pub region_workers: IntGaugeVec,
    pub region_capacity: IntGaugeVec,
    pub region_active_bots: IntGaugeVec,
    pub region_free_capacity: IntGaugeVec,
    pub region_bots_per_worker: prometheus::GaugeVec,
    pub redis_degraded: IntGauge,
    pub redis_fallbacks: IntCounterVec,
    pub bus_notices: IntCounterVec,
    pub dispatch_entries: IntCounterVec,
    pub ingest_batch_frames: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let bots = IntGaugeVec::new(
            Opts::new("attache_control_plane_bots", "Bots by lifecycle status"),
            &["status"],
        )
        .expect("metric");
        let transitions = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_bot_transitions_total",
                "Bot lifecycle transitions stored, by target status",
            ),
            &["status"],
        )
        .expect("metric");
        let dispatch_latency = Histogram::with_opts(
            HistogramOpts::new(
                "attache_control_plane_dispatch_latency_seconds",
                "From a bot becoming due to its lease being granted",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("metric");
        let redis_degraded = IntGauge::new(
            "attache_control_plane_redis_degraded",
            "1 while the configured Redis cannot be reached: this replica serves from \
             PostgreSQL alone (dispatch by polling, subscriptions re-read stored history, \
             rate limits per replica); 0 otherwise, and always 0 without Redis",
        )
        .expect("metric");
        let redis_fallbacks = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_redis_fallbacks_total",
                "Operations done without Redis because it could not be reached, by operation",
            ),
            &["operation"],
        )
        .expect("metric");
        let dispatch_entries = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_dispatch_entries_total",
                "Entries of the Redis dispatch streams this replica handled: read new, \
                 claimed from a replica that left them unacknowledged, settled (leased or \
                 no longer queued), put back (no room here), readded (found missing)",
            ),
            &["outcome"],
        )
        .expect("metric");
        let bus_notices = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_bus_notices_total",
                "Notices between replicas (events, commands, dispatch wake-ups): sent, \
                 received from other replicas, or dropped while Redis was unreachable",
            ),
            &["outcome"],
        )
        .expect("metric");
        let ingest_batch_frames = Histogram::with_opts(
            HistogramOpts::new(
                "attache_control_plane_ingest_batch_frames",
                "Result frames persisted per transaction by the ingest writer",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
        )
        .expect("metric");
        let workers_connected = IntGauge::new(
            "attache_control_plane_fleet_workers_connected",
            "Edge workers with a live fleet connection",
        )
        .expect("metric");
        let quic_connections = IntGauge::new(
            "attache_control_plane_fleet_quic_connections",
            "Open QUIC connections on the fleet endpoint (fleet and enrollment)",
        )
        .expect("metric");
        let frames_received = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_fleet_frames_received_total",
                "Frames received from workers, by stream",
            ),
            &["stream"],
        )
        .expect("metric");
        let frames_rejected = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_fleet_frames_rejected_total",
                "Frames from workers refused, by reason",
            ),
            &["reason"],
        )
        .expect("metric");
        let leases_expired = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_fleet_leases_expired_total",
                "Leases taken back from lost workers, by outcome",
            ),
            &["outcome"],
        )
        .expect("metric");
        let commands_refused = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_fleet_commands_refused_total",
                "Commands workers refused, by error code",
            ),
            &["code"],
        )
        .expect("metric");
        let api_errors = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_api_errors_total",
                "GraphQL errors returned, by code",
            ),
            &["code"],
        )
        .expect("metric");
        let bot_warnings = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_bot_warnings_total",
                "Warnings bots reported while running (NO_AUDIO: someone speaks but no audio arrives), by code",
            ),
            &["code"],
        )
        .expect("metric");
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_webhook_attempts_total",
                "Webhook delivery attempts, by outcome (delivered, failed)",
            ),
            &["outcome"],
        )
        .expect("metric");
        let webhook_latency = Histogram::with_opts(
            HistogramOpts::new(
                "attache_control_plane_webhook_delivery_latency_seconds",
                "From an event being stored to its delivery being acknowledged",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0, 86_400.0,
            ]),
        )
        .expect("metric");
        let transcript_segments = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_transcript_segments_total",
                "Transcript segments stored, by kind (partial, final)",
            ),
            &["kind"],
        )
        .expect("metric");
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_retention_deleted_total",
                "Rows the retention sweep deleted because they expired, by data class",
            ),
            &["class"],
        )
        .expect("metric");
        let retention_objects_deleted = IntCounter::new(
            "attache_control_plane_retention_objects_deleted_total",
            "Objects (recordings and their chunks) the retention sweep deleted",
        )
        .expect("metric");
        let retention_sweep_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "attache_control_plane_retention_sweep_seconds",
                "How long one retention sweep took",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
        )
        .expect("metric");
        let retention_oldest_expired = IntGauge::new(
            "attache_control_plane_retention_oldest_expired_seconds",
            "How long past its expiry the oldest expired, unheld item still stored was at the last sweep (0: none)",
        )
        .expect("metric");
        let retention_sweeps = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_retention_sweeps_total",
                "Retention sweeps by outcome (complete, incomplete: budget reached, skipped: another replica held the lease, failed)",
            ),
            &["outcome"],
        )
        .expect("metric");
        let erasures = IntCounterVec::new(
            Opts::new(
                "attache_control_plane_erasures_total",
                "Erasure jobs finished, by subject (BOT, PARTICIPANT, TENANT) and status (DONE, FAILED)",
            ),
            &["subject", "status"],
        )
        .expect("metric");
        // Autoscaling signals per region and pool (`shared`, or a dedicated
        // tenant's), for KEDA's prometheus scaler or an HPA on external
        // metrics: what waits, and the room to take it.
        let region_gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["region", "pool"]).expect("metric")
        };
        let region_queued_bots = region_gauge(
            "attache_control_plane_region_queued_bots",
            "Bots due to join and still queued, per region and pool (read from the database: \
             every replica reports the same number; take the max, not the sum)",
        );
        let region_workers = region_gauge(
            "attache_control_plane_region_workers",
            "Workers connected to this replica, per region and pool (sum over replicas)",
        );
        let region_capacity = region_gauge(
            "attache_control_plane_region_capacity",
            "Bots the connected workers of a region can hold",
        );
        let region_active_bots = region_gauge(
            "attache_control_plane_region_active_bots",
            "Bots the connected workers of a region are running",
        );
        let region_free_capacity = region_gauge(
            "attache_control_plane_region_free_capacity",
            "Room for new bots on a region's connected workers that are not draining",
        );
        let region_bots_per_worker = prometheus::GaugeVec::new(
            Opts::new(
                "attache_control_plane_region_bots_per_worker",
                "Running bots per connected worker, per region and pool",
            ),
            &["region", "pool"],
        )
        .expect("metric");
        for s in ["BOT", "PARTICIPANT", "TENANT"] {
            for o in ["DONE", "FAILED"] {
                erasures.with_label_values(&[s, o]);
            }
        }
        for c in attache_tenant_policy::DataClass::ALL {
            retention_deleted.with_label_values(&[c.as_str()]);
        }
        for o in ["complete", "incomplete", "skipped", "failed"] {
            retention_sweeps.with_label_values(&[o]);
        }
        for o in ["delivered", "failed"] {
            webhook_attempts.with_label_values(&[o]);
        }
        for k in ["partial", "final"] {
            transcript_segments.with_label_values(&[k]);
        }
        for c in [
            Box::new(retention_deleted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(retention_objects_deleted.clone()),
            Box::new(retention_sweep_seconds.clone()),
            Box::new(retention_oldest_expired.clone()),
            Box::new(retention_sweeps.clone()),
            Box::new(erasures.clone()),
            Box::new(region_queued_bots.clone()),
            Box::new(region_workers.clone()),
            Box::new(region_capacity.clone()),
            Box::new(region_active_bots.clone()),
            Box::new(region_free_capacity.clone()),
            Box::new(region_bots_per_worker.clone()),
            Box::new(redis_degraded.clone()),
            Box::new(redis_fallbacks.clone()),
            Box::new(bus_notices.clone()),
            Box::new(dispatch_entries.clone()),
            Box::new(ingest_batch_frames.clone()),
            Box::new(webhook_attempts.clone()),
            Box::new(webhook_latency.clone()),
            Box::new(transcript_segments.clone()),
            Box::new(bot_warnings.clone()),
            Box::new(bots.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(transitions.clone()),
            Box::new(dispatch_latency.clone()),
            Box::new(workers_connected.clone()),
            Box::new(quic_connections.clone()),
            Box::new(frames_received.clone()),
            Box::new(frames_rejected.clone()),
            Box::new(leases_expired.clone()),
            Box::new(commands_refused.clone()),
            Box::new(api_errors.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        // Every series exists from the start, at zero, so dashboards and
        // alerts see a value rather than nothing.
        for s in BotStatus::ALL {
            bots.with_label_values(&[s.as_str()]);
            transitions.with_label_values(&[s.as_str()]);
        }
        for s in ["control", "results"] {
            frames_received.with_label_values(&[s]);
        }
        for c in attache_protocol::WarningCode::ALL {
            bot_warnings.with_label_values(&[c.as_str()]);
        }
        for r in [
            "malformed",
            "stale",
            "unpersisted",
            "invalid",
            "unsealed",
            "enroll_malformed",
        ] {
            frames_rejected.with_label_values(&[r]);
        }
        for c in ErrorCode::ALL {
            frames_rejected.with_label_values(&[c.as_str()]);
            api_errors.with_label_values(&[c.as_str()]);
            commands_refused.with_label_values(&[c.as_str()]);
        }
        for o in ["requeued", "failed"] {
            leases_expired.with_label_values(&[o]);
        }
        for o in ["read", "claimed", "settled", "put_back", "readded"] {
            dispatch_entries.with_label_values(&[o]);
        }
        for o in ["publish", "rate_limit", "dispatch", "credentials"] {
            redis_fallbacks.with_label_values(&[o]);
        }
        for o in ["sent", "received", "dropped"] {
            bus_notices.with_label_values(&[o]);
        }
        Metrics {
            registry,
            bots,
            transitions,
            dispatch_latency,
            workers_connected,
            quic_connections,
            frames_received,
            frames_rejected,
            leases_expired,
            commands_refused,
            api_errors,
            bot_warnings,
            webhook_attempts,
            webhook_latency,
            transcript_segments,
            retention_deleted,
            retention_objects_deleted,
            retention_sweep_seconds,
            retention_oldest_expired,
            retention_sweeps,
            erasures,
            region_queued_bots,
            region_workers,
            region_capacity,
            region_active_bots,
            region_free_capacity,
            region_bots_per_worker,
            redis_degraded,
            redis_fallbacks,
            bus_notices,
            dispatch_entries,
            ingest_batch_frames,
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
