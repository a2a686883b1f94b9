//! What the sweep's tests build on: the stores of each fixture (SQLite
//! and a local directory; PostgreSQL and S3 when they run), tenants, bots
//! with everything a meeting leaves, webhook deliveries, and what is left
//! of them after a sweep.

use attache_protocol::{BotStatus, StatusReason};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use super::super::*;
use crate::config::Config;
use crate::entity::names::{Isolation, RecordingStatus, Stored};
use crate::entity::{
    bot, bot_event, bot_warning, chat_message, participant, recording, speaker_segment, tenant,
    transcript_segment, webhook_attempt, webhook_delivery, webhook_endpoint,
};
use crate::objects::{ObjectStoreConfig, Objects, S3Config};
use crate::store::{NewBot, Transition};

pub(super) struct Fixture {
    pub(super) label: &'static str,
    pub(super) store: Store,
    /// The deployment's stores, as the sweep gets them.
    pub(super) stores: ObjectStores,
    /// The default store, where these bots keep their objects.
    pub(super) objects: Objects,
    pub(super) _dir: tempfile::TempDir,
}

/// The deployment's stores with `store` as the default.
pub(super) async fn open_stores(
    dir: &std::path::Path,
    store: ObjectStoreConfig,
) -> (ObjectStores, Objects) {
    let mut config = Config::local(dir);
    config.object_store = Some(store);
    let stores = ObjectStores::open(&config, b"k".to_vec()).await.unwrap();
    let objects = stores.named(None).unwrap().clone();
    (stores, objects)
}

pub(super) fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// SQLite with a local directory, and PostgreSQL with S3 when they run.
pub(super) async fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let (stores, objects) = open_stores(
        dir.path(),
        ObjectStoreConfig::Local {
            dir: dir.path().join("objects"),
        },
    )
    .await;
    out.push(Fixture {
        label: "sqlite+local",
        store,
        stores,
        objects,
        _dir: dir,
    });
    if let (Some(pg), Some(s3)) = (
        env("ATTACHE_TEST_POSTGRES_URL"),
        env("ATTACHE_TEST_S3_ENDPOINT"),
    ) {
        let name = format!("attache_rt_{}", uuid::Uuid::new_v4().simple());
        let server = Store::open(&pg).await.unwrap();
        server
            .db()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = pg.rsplit_once('/').unwrap();
        let store = Store::open(&format!("{base}/{name}")).await.unwrap();
        store.migrate().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (stores, objects) = open_stores(
            dir.path(),
            ObjectStoreConfig::S3(S3Config {
                bucket: format!(
                    "attache-rt-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                ),
                region: env("ATTACHE_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                endpoint: Some(s3),
                force_path_style: true,
                access_key: env("ATTACHE_TEST_S3_ACCESS_KEY"),
                secret_key: env("ATTACHE_TEST_S3_SECRET_KEY"),
                create_bucket: true,
            }),
        )
        .await;
        out.push(Fixture {
            label: "postgres+s3",
            store,
            stores,
            objects,
            _dir: dir,
        });
    } else {
        eprintln!(
            "postgres+s3 skipped: ATTACHE_TEST_POSTGRES_URL or ATTACHE_TEST_S3_ENDPOINT unset"
        );
    }
    out
}

pub(super) fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub(super) const AS_OF: &str = "2030-03-01T00:00:00Z";

pub(super) fn days_before(d: i64) -> DateTime<Utc> {
    t(AS_OF) - Duration::days(d)
}

pub(super) async fn add_tenant(store: &Store, id: &str) {
    store
        .insert_tenant(tenant::Model {
            id: id.into(),
            name: format!("name-{id}"),
            region: "local".into(),
            created_at: t("2029-01-01T00:00:00Z"),
            retention_days: None,
            isolation: Stored(Isolation::Shared),
            pool: None,
        })
        .await
        .unwrap();
}

pub(super) async fn queued_bot(store: &Store, tenant_id: &str, id: &str) {
    let at = t("2029-06-01T00:00:00Z");
    store
        .scoped(tenant_id)
        .insert_bot(NewBot {
            join_at: at,
            created_at: at,
            object_store: crate::residency::DEFAULT_STORE.to_string(),
            ..crate::store::fixtures::new_bot(id)
        })
        .await
        .unwrap();
}

/// A bot that ended `ended`, with everything a meeting leaves.
pub(super) async fn ended_bot(f: &Fixture, tenant_id: &str, id: &str, ended: DateTime<Utc>) {
    queued_bot(&f.store, tenant_id, id).await;
    let mut tr = Transition::new(id, BotStatus::Ended, Some(StatusReason::LeaveRequested));
    tr.expect_status = Some(BotStatus::Queued);
    tr.at = ended;
    f.store.transition(tr).await.unwrap();
    media(f, tenant_id, id, 3, ended).await;
}

pub(super) async fn media(
    f: &Fixture,
    tenant_id: &str,
    id: &str,
    segments: usize,
    at: DateTime<Utc>,
) {
    let db = f.store.db();
    for i in 0..segments {
        transcript_segment::ActiveModel {
            bot_id: Set(id.into()),
            tenant_id: Set(tenant_id.into()),
            generation: Set(1),
            segment_key: Set(format!("1:{i}")),
            start_ms: Set(i as i64 * 1000),
            end_ms: Set(i as i64 * 1000 + 900),
            speaker: Set(Some("Alice".into())),
            text_sealed: Set(vec![1, 2, 3]),
            confidence: Set(0.9),
            language: Set(Some("en".into())),
            is_final: Set(true),
            updated_at: Set(at),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }
    chat_message::ActiveModel {
        bot_id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        message_key: Set("m1".into()),
        sender: Set(String::new()),
        text: Set(String::new()),
        sent_at: Set(at),
        sender_sealed: Set(Some(vec![1])),
        text_sealed: Set(Some(vec![2])),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    participant::ActiveModel {
        bot_id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        participant_key: Set("alice".into()),
        name: Set("Alice".into()),
        joined_at: Set(at),
        left_at: Set(Some(at)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    speaker_segment::ActiveModel {
        bot_id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        participant_key: Set("alice".into()),
        name: Set("Alice".into()),
        started_at: Set(at),
        ended_at: Set(Some(at)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    bot_warning::ActiveModel {
        bot_id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        code: Set("NO_AUDIO".into()),
        detail: Set("quiet".into()),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    recording::ActiveModel {
        bot_id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        generation: Set(2),
        status: Set(Stored(RecordingStatus::Ready)),
        format: Set(crate::recordings::FORMAT.into()),
        object_key: Set(crate::recordings::final_key(tenant_id, id)),
        size_bytes: Set(3),
        duration_ms: Set(Some(1)),
        sha256: Set(None),
        started_at: Set(at),
        finished_at: Set(Some(at)),
    }
    .insert(db)
    .await
    .unwrap();
    // The recording, the chunks of its lease, and those of an earlier
    // lease that was dispatched again.
    for key in [
        crate::recordings::final_key(tenant_id, id),
        crate::recordings::chunk_key(tenant_id, id, 1, 0),
        crate::recordings::chunk_key(tenant_id, id, 2, 0),
    ] {
        f.objects.put(&key, b"abc".to_vec()).await.unwrap();
    }
}

pub(super) async fn endpoint(store: &Store, tenant_id: &str) -> String {
    let id = format!("ep-{tenant_id}");
    webhook_endpoint::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.into()),
        url: Set("https://example.test/hook".into()),
        event_types: Set("bot.ended".into()),
        secret_sealed: Set(vec![0]),
        enabled: Set(false),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(t("2029-01-01T00:00:00Z")),
    }
    .insert(store.db())
    .await
    .unwrap();
    id
}

pub(super) async fn delivery(
    store: &Store,
    tenant_id: &str,
    bot_id: Option<&str>,
    created: DateTime<Utc>,
    status: &str,
    attempts: usize,
) -> i64 {
    let d = webhook_delivery::ActiveModel {
        webhook_id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
        tenant_id: Set(tenant_id.into()),
        endpoint_id: Set(format!("ep-{tenant_id}")),
        bot_id: Set(bot_id.map(String::from)),
        event_type: Set("bot.ended".into()),
        payload: Set("{}".into()),
        status: Set(status.into()),
        attempts: Set(attempts as i32),
        next_attempt_at: Set(created),
        last_error: Set(None),
        created_at: Set(created),
        delivered_at: Set(None),
        ..Default::default()
    }
    .insert(store.db())
    .await
    .unwrap();
    for _ in 0..attempts {
        webhook_attempt::ActiveModel {
            delivery_id: Set(d.id),
            tenant_id: Set(tenant_id.into()),
            at: Set(created),
            status_code: Set(Some(500)),
            error: Set(None),
            duration_ms: Set(5),
            ..Default::default()
        }
        .insert(store.db())
        .await
        .unwrap();
    }
    d.id
}

/// Rows a bot still has: (segments, chat, participants + speaker turns,
/// recording, events, warnings, the bot).
pub(super) async fn rows(store: &Store, bot_id: &str) -> [u64; 7] {
    let db = store.db();
    [
        transcript_segment::Entity::find()
            .filter(transcript_segment::Column::BotId.eq(bot_id))
            .count(db)
            .await
            .unwrap(),
        chat_message::Entity::find()
            .filter(chat_message::Column::BotId.eq(bot_id))
            .count(db)
            .await
            .unwrap(),
        participant::Entity::find()
            .filter(participant::Column::BotId.eq(bot_id))
            .count(db)
            .await
            .unwrap()
            + speaker_segment::Entity::find()
                .filter(speaker_segment::Column::BotId.eq(bot_id))
                .count(db)
                .await
                .unwrap(),
        recording::Entity::find_by_id(bot_id.to_string())
            .count(db)
            .await
            .unwrap(),
        bot_event::Entity::find()
            .filter(bot_event::Column::BotId.eq(bot_id))
            .count(db)
            .await
            .unwrap(),
        bot_warning::Entity::find()
            .filter(bot_warning::Column::BotId.eq(bot_id))
            .count(db)
            .await
            .unwrap(),
        bot::Entity::find_by_id(bot_id.to_string())
            .count(db)
            .await
            .unwrap(),
    ]
}

pub(super) const ALL: [u64; 7] = [3, 1, 2, 1, 2, 1, 1];

pub(super) async fn objects_of(f: &Fixture, tenant_id: &str, bot_id: &str) -> usize {
    let prefix = bot_prefix(tenant_id, bot_id);
    let mut n = f
        .objects
        .list(&format!("{prefix}chunks/1/"))
        .await
        .unwrap()
        .len()
        + f.objects
            .list(&format!("{prefix}chunks/2/"))
            .await
            .unwrap()
            .len()
        + f.objects
            .list(&format!("{prefix}chunks/9/"))
            .await
            .unwrap()
            .len();
    if f.objects
        .get(&crate::recordings::final_key(tenant_id, bot_id))
        .await
        .unwrap()
        .is_some()
    {
        n += 1;
    }
    n
}

pub(super) async fn deliveries(store: &Store, tenant_id: &str) -> (u64, u64) {
    let db = store.db();
    (
        webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::TenantId.eq(tenant_id))
            .count(db)
            .await
            .unwrap(),
        webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
            .count(db)
            .await
            .unwrap(),
    )
}

pub(super) fn counts(r: &SweepReport) -> Vec<(&'static str, u64)> {
    r.deleted
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (c.as_str(), *n))
        .collect()
}
