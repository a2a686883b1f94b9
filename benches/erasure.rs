//! Load harness: how long erasing a bot takes.
//!
//!     cargo bench --bench erasure
//!
//! Seeds one ended bot with an hour of recording (its 21.6 MB recording
//! and the 1,800 two-second chunks its lease uploaded) and 2,000 transcript
//! segments, straight into the database and the object store, beside
//! `ERASURE_OTHER_BOTS` (100) other bots of the tenant made through the API
//! (whose keys the erasure moves onto a new generation), then asks
//! `eraseBot` and times the job from the request to DONE. PostgreSQL and
//! SeaweedFS when `ATTACHE_TEST_POSTGRES_URL` and `ATTACHE_TEST_S3_*` are
//! set (`scripts/services.sh`), SQLite and a local directory otherwise.
//! The baseline in the same run: erasing a bot with nothing stored.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use attache_control_plane::{ObjectStoreConfig, Objects};
use chrono::Utc;
use futures::StreamExt;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Value};
use serde_json::{Value as Json, json};
use support::*;

const SEGMENTS: usize = 2_000;
const CHUNKS: usize = 1_800;
const CHUNK_BYTES: usize = 12_000;
const RECORDING_BYTES: usize = 21_600_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// An ended bot of `tenant`, with `segments` segments, a recording row and
/// `chunks` chunk objects plus the recording object.
async fn seed(
    db: &DatabaseConnection,
    objects: &Objects,
    tenant: &str,
    segments: usize,
    chunks: usize,
    recording_bytes: usize,
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let ended = Utc::now() - chrono::Duration::minutes(1);
    insert(
        db,
        "bots",
        &[
            "id",
            "tenant_id",
            "region",
            "meeting_url",
            "platform",
            "bot_name",
            "status",
            "status_reason",
            "join_at",
            "join_timeout_ms",
            "lobby_timeout_ms",
            "max_duration_ms",
            "lease_generation",
            "last_result_seq",
            "leave_requested",
            "created_at",
            "updated_at",
            "ended_at",
        ],
        vec![vec![
            id.clone().into(),
            tenant.into(),
            "local".into(),
            String::new().into(),
            "GOOGLE_MEET".into(),
            String::new().into(),
            "ENDED".into(),
            "MEETING_ENDED".into(),
            ended.into(),
            1i64.into(),
            1i64.into(),
            1i64.into(),
            1i64.into(),
            0i64.into(),
            false.into(),
            ended.into(),
            ended.into(),
            ended.into(),
        ]],
    )
    .await;
    let rows = (0..segments)
        .map(|i| {
            vec![
                id.clone().into(),
                tenant.into(),
                1i64.into(),
                format!("1:{i}").into(),
                (i as i64 * 1800).into(),
                (i as i64 * 1800 + 1500).into(),
                Option::<String>::None.into(),
                vec![0u8; 96].into(),
                0.9f64.into(),
                true.into(),
                ended.into(),
            ]
        })
        .collect();
    insert(
        db,
        "transcript_segments",
        &[
            "bot_id",
            "tenant_id",
            "generation",
            "segment_key",
            "start_ms",
            "end_ms",
            "speaker",
            "text_sealed",
            "confidence",
            "is_final",
            "updated_at",
        ],
        rows,
    )
    .await;
    let prefix = format!("tenants/{tenant}/bots/{id}");
    insert(
        db,
        "recordings",
        &[
            "bot_id",
            "tenant_id",
            "generation",
            "status",
            "format",
            "object_key",
            "size_bytes",
            "started_at",
            "finished_at",
        ],
        vec![vec![
            id.clone().into(),
            tenant.into(),
            1i64.into(),
            "READY".into(),
            "audio/ogg; codecs=opus".into(),
            format!("{prefix}/recording.ogg").into(),
            (recording_bytes as i64).into(),
            ended.into(),
            ended.into(),
        ]],
    )
    .await;
    if recording_bytes > 0 {
        objects
            .put(
                &format!("{prefix}/recording.ogg"),
                vec![0u8; recording_bytes],
            )
            .await
            .unwrap();
    }
    futures::stream::iter(0..chunks)
        .map(|i| {
            let objects = objects.clone();
            let key = format!("{prefix}/chunks/1/{i:016}");
            async move { objects.put(&key, vec![0u8; CHUNK_BYTES]).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    id
}

/// Erases `bot` and waits for DONE: the time taken and the certificate.
async fn erase(api: &Api, bot: &str) -> (Duration, Json) {
    let t = Instant::now();
    let job = api
        .gql(
            "mutation($id: ID!) { eraseBot(id: $id) { id } }",
            json!({ "id": bot }),
        )
        .await["eraseBot"]["id"]
        .clone();
    loop {
        let j = api
            .gql(
                "query($id: ID!) { erasureJob(id: $id) { status statusReason certificate } }",
                json!({ "id": job }),
            )
            .await["erasureJob"]
            .clone();
        match j["status"].as_str() {
            Some("DONE") => {
                let elapsed = t.elapsed();
                let doc: Json = serde_json::from_str(j["certificate"].as_str().unwrap()).unwrap();
                use base64::Engine;
                let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(doc["payload"].as_str().unwrap())
                    .unwrap();
                return (elapsed, serde_json::from_slice(&payload).unwrap());
            }
            Some("FAILED") => panic!("erasure failed: {j}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("erasure: a load harness; run it with `cargo bench --bench erasure`");
        return;
    }
    let others = env("ERASURE_OTHER_BOTS", 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let postgres = if std::env::var_os("ATTACHE_TEST_POSTGRES_URL").is_some() {
            fresh_postgres("erasure_bench")
        } else {
            None
        };
        let s3 = if std::env::var_os("ATTACHE_TEST_S3_ENDPOINT").is_some() {
            s3_config(&format!("attache-erasure-bench-{}", std::process::id()))
        } else {
            None
        };
        let cluster = Cluster::start_with(Options {
            database_url: postgres.clone(),
            object_store: s3.clone().map(ObjectStoreConfig::S3),
            api_limit: Some((1_000_000, 1_000_000)),
            create_bot_limit: Some((1_000_000, 1_000_000)),
            ..Default::default()
        })
        .await;
        println!(
            "database: {}; objects: {}; {SEGMENTS} segments, {CHUNKS} chunks and a {} MB recording; {others} other bots",
            if postgres.is_some() { "PostgreSQL" } else { "SQLite" },
            if s3.is_some() { "SeaweedFS (S3)" } else { "local directory" },
            RECORDING_BYTES / 1_000_000,
        );
        let t = cluster.admin.create_tenant("bench", "local").await.unwrap();
        let api = Api::new(&cluster.http, &t.api_key);
        for i in 0..others {
            api.create_bot(&cluster.meeting(&format!("later-{i}"), ""), "Other")
                .await;
        }
        let url = postgres.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", cluster.dir.join("cp").join("attache.db").display())
        });
        let db = Database::connect(&url).await.unwrap();
        let store = match &s3 {
            Some(s) => ObjectStoreConfig::S3(s.clone()),
            None => ObjectStoreConfig::Local {
                dir: cluster.dir.join("cp").join("objects"),
            },
        };
        let objects = Objects::open(&store, b"bench".to_vec()).await.unwrap();

        let empty = seed(&db, &objects, &t.tenant_id, 0, 0, 0).await;
        let seeded = Instant::now();
        let full = seed(&db, &objects, &t.tenant_id, SEGMENTS, CHUNKS, RECORDING_BYTES).await;
        println!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());

        let (base, _) = erase(&api, &empty).await;
        let (took, cert) = erase(&api, &full).await;
        assert_eq!(cert["removed"]["transcripts"], SEGMENTS as u64, "{cert:#}");
        assert_eq!(cert["objects"]["deleted"], (CHUNKS + 1) as u64, "{cert:#}");
        let left = objects
            .list(&format!("tenants/{}/bots/{full}/", t.tenant_id))
            .await
            .unwrap();
        assert!(left.is_empty(), "{} objects left", left.len());
        println!(
            "baseline: an empty bot erased in {} ms (with {} bots' keys moved)",
            base.as_millis(),
            others
        );
        println!(
            "erasure: a bot with an hour of recording ({} objects) and {SEGMENTS} segments erased in {} ms = {:.1}× the empty bot",
            CHUNKS + 1,
            took.as_millis(),
            took.as_secs_f64() / base.as_secs_f64()
        );
    });
}
