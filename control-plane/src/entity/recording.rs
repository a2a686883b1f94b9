use sea_orm::entity::prelude::*;

use super::names::{RecordingStatus, Stored};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recordings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub bot_id: String,
    pub tenant_id: String,
    /// The lease generation whose worker records it.
    pub generation: i64,
    pub status: Stored<RecordingStatus>,
    pub format: String,
    pub object_key: String,
    pub size_bytes: i64,
    pub duration_ms: Option<i64>,
    pub sha256: Option<String>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
