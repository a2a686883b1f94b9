//! What the store's unit tests start from: a migrated in-memory database
//! with one tenant, and bots to put in it.

use attache_protocol::{BotStatus, Platform};

use super::{NewBot, Store, Transition, now};
use crate::entity::names::{Isolation, Stored};
use crate::entity::tenant;

/// A fresh SQLite store with tenant `t1` (shared, region `local`).
pub(crate) async fn store_with_tenant() -> Store {
    let store = Store::open("sqlite::memory:").await.unwrap();
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
