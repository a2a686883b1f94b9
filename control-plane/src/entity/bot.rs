use attache_protocol::{BotStatus, Platform};
use sea_orm::entity::prelude::*;

use super::names::Stored;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub region: String,
    pub meeting_url: String,
    pub platform: Stored<Platform>,
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
    /// The bot's data key, sealed with its tenant's key; made at dispatch.
    pub data_key: Option<Vec<u8>>,
    /// This bot's transcription override (JSON), if it has one.
    pub transcription: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
