//! Load harness: how fast the retention sweep deletes.
//!
//!     cargo bench --bench retention_sweep
//!
//! Seeds BOTS ended bots holding SEGMENTS transcript segments between them
//! and one recording each (its object and a chunk an earlier lease left),
//! straight into the database and the object store (this measures the
//! sweep, not ingest), then sweeps twice as the operator's command does:
//! first with transcripts expired (rows per second), then with recordings
//! expired too (recordings and objects per second). PostgreSQL and
//! SeaweedFS when `ATTACHE_TEST_POSTGRES_URL` and `ATTACHE_TEST_S3_*` are
//! set (`scripts/services.sh`), SQLite and a local directory otherwise.
//! `RETENTION_SEGMENTS` (100000) and `RETENTION_RECORDINGS` (1000) make it
//! smaller; `RETENTION_BATCH` (1000) is the rows per statement.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use attache_control_plane::{Admin, Config, ObjectStoreConfig, Objects};
use attache_tenant_policy::DataClass;
use chrono::{Duration, Utc};
use futures::StreamExt;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Value};
use support::*;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inserts `rows` into `table`, a few hundred per statement.
async fn insert(db: &DatabaseConnection, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) {
    for chunk in rows.chunks(500) {
        let mut q = Query::insert();
        q.into_table(Alias::new(table))
            .columns(columns.iter().map(|c| Alias::new(*c)));
        for r in chunk {
            q.values_panic(r.iter().cloned().map(Into::into));
        }
        db.execute(&q).await.unwrap();
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "retention_sweep: a load harness; run it with `cargo bench --bench retention_sweep`"
        );
        return;
    }
    let segments = env("RETENTION_SEGMENTS", 100_000);
    let bots = env("RETENTION_RECORDINGS", 1_000).max(1);
    let batch = env("RETENTION_BATCH", 1_000) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = temp_dir("retention-bench");
        let mut config = Config::local(&dir);
        config.retention_batch = batch;
        config.retention_budget = 10_000_000;
        let postgres = if std::env::var_os("ATTACHE_TEST_POSTGRES_URL").is_some() {
            fresh_postgres("retention_bench")
        } else {
            None
        };
        config.database_url = postgres.clone();
        let s3 = if std::env::var_os("ATTACHE_TEST_S3_ENDPOINT").is_some() {
            s3_config(&format!("attache-retention-bench-{}", std::process::id()))
        } else {
            None
        };
        if let Some(s3) = &s3 {
            config.object_store = Some(ObjectStoreConfig::S3(s3.clone()));
        }
        println!(
            "database: {}; objects: {}; {segments} transcript segments, {bots} recordings, {batch} rows per statement",
            if postgres.is_some() { "PostgreSQL" } else { "SQLite" },
            if s3.is_some() { "SeaweedFS (S3)" } else { "local directory" },
        );
        let admin = Admin::open(&config).await.unwrap();
        let tenant = admin.create_tenant("bench", "local").await.unwrap().tenant_id;
        let db = Database::connect(config.database_url()).await.unwrap();
        let store = config.object_store.clone().expect("a default store");
        let objects = Objects::open(&store, b"bench".to_vec())
            .await
            .unwrap();

        // Seed: ended bots, their segments, recordings and objects.
        let seeded = Instant::now();
        let ended = Utc::now() - Duration::days(10);
        let ids: Vec<String> = (0..bots).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let bot_rows = ids
            .iter()
            .map(|id| {
                vec![
                    id.clone().into(),
                    tenant.clone().into(),
                    "local".into(),
                    "https://meet.google.com/abc-defg-hij".into(),
                    "GOOGLE_MEET".into(),
                    "Bench Bot".into(),
                    "ENDED".into(),
                    "MEETING_ENDED".into(),
                    ended.into(),
                    1i64.into(),
                    1i64.into(),
                    1i64.into(),
                    2i64.into(),
                    0i64.into(),
                    false.into(),
                    ended.into(),
                    ended.into(),
                    ended.into(),
                ]
            })
            .collect();
        insert(
            &db,
            "bots",
            &[
                "id", "tenant_id", "region", "meeting_url", "platform", "bot_name", "status",
                "status_reason", "join_at", "join_timeout_ms", "lobby_timeout_ms",
                "max_duration_ms", "lease_generation", "last_result_seq", "leave_requested",
                "created_at", "updated_at", "ended_at",
            ],
            bot_rows,
        )
        .await;
        let segment_rows = (0..segments)
            .map(|i| {
                vec![
                    ids[i % bots].clone().into(),
                    tenant.clone().into(),
                    2i64.into(),
                    format!("2:{i}").into(),
                    (i as i64 * 1000).into(),
                    (i as i64 * 1000 + 900).into(),
                    "Alice".into(),
                    vec![0u8; 64].into(),
                    0.9f64.into(),
                    true.into(),
                    ended.into(),
                ]
            })
            .collect();
        insert(
            &db,
            "transcript_segments",
            &[
                "bot_id", "tenant_id", "generation", "segment_key", "start_ms", "end_ms",
                "speaker", "text_sealed", "confidence", "is_final", "updated_at",
            ],
            segment_rows,
        )
        .await;
        let recording_rows = ids
            .iter()
            .map(|id| {
                vec![
                    id.clone().into(),
                    tenant.clone().into(),
                    2i64.into(),
                    "READY".into(),
                    "audio/ogg; codecs=opus".into(),
                    format!("tenants/{tenant}/bots/{id}/recording.ogg").into(),
                    16_384i64.into(),
                    ended.into(),
                    ended.into(),
                ]
            })
            .collect();
        insert(
            &db,
            "recordings",
            &[
                "bot_id", "tenant_id", "generation", "status", "format", "object_key",
                "size_bytes", "started_at", "finished_at",
            ],
            recording_rows,
        )
        .await;
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| {
                [
                    format!("tenants/{tenant}/bots/{id}/recording.ogg"),
                    format!("tenants/{tenant}/bots/{id}/chunks/1/0000000000000000"),
                ]
            })
            .collect();
        let n_objects = keys.len();
        futures::stream::iter(keys)
            .map(|k| {
                let objects = objects.clone();
                async move { objects.put(&k, vec![0u8; 16_384]).await.unwrap() }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        println!(
            "seeded in {:.1} s ({n_objects} objects of 16 KiB)",
            seeded.elapsed().as_secs_f64()
        );

        // Transcripts first, then recordings.
        let as_of = Utc::now();
        admin
            .set_retention_default(DataClass::Transcripts, Some(1))
            .await
            .unwrap();
        let t = Instant::now();
        let r = admin.retention_sweep(as_of).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let rows = r.deleted[&DataClass::Transcripts];
        assert_eq!(rows, segments as u64, "{r:?}");
        println!(
            "transcripts: {rows} segments in {secs:.2} s = {:.0} rows/s",
            rows as f64 / secs
        );

        admin
            .set_retention_default(DataClass::Recordings, Some(1))
            .await
            .unwrap();
        let t = Instant::now();
        let r = admin.retention_sweep(as_of).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let rows = r.deleted[&DataClass::Recordings];
        assert_eq!(rows, bots as u64, "{r:?}");
        assert_eq!(r.objects, n_objects as u64, "{r:?}");
        println!(
            "recordings: {rows} recordings ({} objects) in {secs:.2} s = {:.0} recordings/s, {:.0} objects/s",
            r.objects,
            rows as f64 / secs,
            r.objects as f64 / secs
        );
        let remaining = objects.list(&format!("tenants/{tenant}/bots/")).await.unwrap();
        assert!(
            remaining.is_empty() || s3.is_none(),
            "objects left: {}",
            remaining.len()
        );
    });
}
