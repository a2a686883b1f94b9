use sea_orm::entity::prelude::*;

use super::names::{Isolation, Stored};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub region: String,
    pub created_at: DateTimeUtc,
    /// Days ended bots' transcripts, chat and recordings are kept.
    pub retention_days: Option<i32>,
    /// `SHARED`: the workers of its region; `DEDICATED`: only the workers
    /// of `pool`.
    pub isolation: Stored<Isolation>,
    /// The worker pool of a dedicated tenant; `None` for a shared one.
    pub pool: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
