use attache_protocol::{BotStatus, Platform};
use sea_orm::entity::prelude::*;

use super::names::{QueueReason, Stored};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub region: String,
    /// Empty once sealed: the URL is in `meeting_url_sealed`.
    pub meeting_url: String,
    pub platform: Stored<Platform>,
    /// Empty once sealed: the name is in `bot_name_sealed`.
    pub bot_name: String,
    pub status: Stored<BotStatus>,
    pub status_reason: Option<String>,
    pub join_at: DateTimeUtc,
    pub join_timeout_ms: i64,
    pub lobby_timeout_ms: i64,
    pub max_duration_ms: i64,
    pub nobody_joined_ms: i64,
    pub alone_ms: i64,
    pub silence_ms: i64,
    /// The worker holding the current lease, if any.
    pub worker_id: Option<String>,
    /// Bumped on every new lease; the compare-and-swap point of every change.
    pub lease_generation: i64,
    /// Highest result sequence number persisted for the current generation.
    pub last_result_seq: i64,
    pub leave_requested: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    /// The bot's data key, wrapped under its tenant's bot-key generation
    /// `key_generation` (or, where that is `None`, the tenant key itself);
    /// made with the bot (bots created before that got theirs at their
    /// first dispatch).
    pub data_key: Option<Vec<u8>>,
    /// This bot's transcription override (JSON), if it has one.
    pub transcription: Option<String>,
    /// The worker pool the bot must run on (its tenant is dedicated), or
    /// `None`: the shared workers of `region`.
    pub pool: Option<String>,
    /// The object store that keeps its recordings, chosen when it was
    /// created (`crate::residency`); `None` on bots older than residency:
    /// the default store.
    pub object_store: Option<String>,
    /// When it last entered the queue (created, or taken back from a
    /// worker); `None` on older rows: `created_at`.
    pub queued_at: Option<DateTimeUtc>,
    /// Why a due, queued bot is still waiting; `None` otherwise.
    pub queue_reason: Option<Stored<QueueReason>>,
    /// Sealed with the bot's data key (see `crate::sealing`); `None` only
    /// for rows stored in the clear by an older version, not sealed yet.
    pub meeting_url_sealed: Option<Vec<u8>>,
    pub bot_name_sealed: Option<Vec<u8>>,
    /// The generation of its tenant's bot keys `data_key` is wrapped under
    /// (`crate::keys::generations`).
    pub key_generation: Option<i32>,
    /// The W3C `traceparent` of the request that created the bot.
    pub trace_parent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
