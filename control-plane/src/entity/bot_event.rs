use attache_protocol::BotStatus;
use sea_orm::entity::prelude::*;

use super::names::Stored;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bot_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    pub generation: i64,
    pub status: Stored<BotStatus>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
