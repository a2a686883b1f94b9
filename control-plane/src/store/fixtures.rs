//! What the store's unit tests start from: a migrated in-memory database
//! with one tenant, and bots to put in it.

use attache_protocol::{BotStatus, Platform};

use super::{NewBot, Store, Transition, now};
use crate::entity::names::{Isolation, Stored};
use crate::entity::tenant;

/// A fresh SQLite store with tenant `t1` (shared, region `local`).
pub(crate) async fn store_with_tenant() -> Store {
    with_tenant(Store::open("sqlite::memory:").await.unwrap()).await
}

/// The same on a PostgreSQL database of its own, made on the server at
/// `ATTACHE_TEST_POSTGRES_URL` (`scripts/test` starts one); `None` when
/// it is unset, unless the suite requires its services.
pub(crate) async fn postgres_store_with_tenant() -> Option<Store> {
    let url = postgres_database().await?;
    Some(with_tenant(Store::open(&url).await.unwrap()).await)
}

/// The URL of a new, empty database on the server at
/// `ATTACHE_TEST_POSTGRES_URL`: nothing else's rows in it, nor its own
/// left elsewhere.
pub(crate) async fn postgres_database() -> Option<String> {
    use sea_orm::ConnectionTrait;
    let url = match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            return None;
        }
    };
    let name = format!("store_{}", uuid::Uuid::new_v4().simple());
    let server = Store::open(&url).await.unwrap();
    server
        .db()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

async fn with_tenant(store: Store) -> Store {
    store.migrate().await.unwrap();
    store
        .insert_tenant(tenant::Model {
            id: "t1".into(),
            name: "acme".into(),
            region: "local".into(),
            created_at: now(),
            retention_days: None,
            isolation: Stored(Isolation::Shared),
            pool: None,
        })
        .await
        .unwrap();
    store
}

/// A bot due now. Its sealed fields are arbitrary bytes: the store keeps
/// them and never opens them.
pub(crate) fn new_bot(id: &str) -> NewBot {
    NewBot {
        key_generation: None,
        trace_parent: None,
        id: id.into(),
        region: "local".into(),
        platform: Platform::GoogleMeet,
        data_key: vec![1],
        meeting_url_sealed: vec![2],
        bot_name_sealed: vec![3],
        join_at: now(),
        join_timeout_ms: 1,
        lobby_timeout_ms: 1,
        max_duration_ms: 1,
        nobody_joined_ms: 1,
        alone_ms: 1,
        silence_ms: 1,
        created_at: now(),
        transcription: None,
        pool: None,
        object_store: "default".into(),
    }
}

/// Leases a queued bot (at `generation`) to `worker`.
pub(crate) fn lease(bot: &str, worker: &str, generation: i64) -> Transition {
    let mut t = Transition::new(bot, BotStatus::Dispatched, None);
    t.expect_status = Some(BotStatus::Queued);
    t.expect_generation = Some(generation);
    t.lease_to = Some(worker.into());
    t
}
