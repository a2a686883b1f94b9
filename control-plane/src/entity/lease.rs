use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub bot_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    pub worker_id: String,
    pub granted_at: DateTimeUtc,
    pub released_at: Option<DateTimeUtc>,
    /// `finished`, `requeued`, `worker_lost` or `cancelled`.
    pub outcome: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
