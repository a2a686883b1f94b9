use sea_orm::entity::prelude::*;

/// A legal hold: the whole tenant's data (no bot), or one bot's, is kept
/// whatever its retention says until the hold is released.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "legal_holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub bot_id: Option<String>,
    /// Why, sealed with the tenant's key.
    pub reason_sealed: Vec<u8>,
    /// The actor who set it (`key:…`, `user:…`).
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub released_at: Option<DateTimeUtc>,
    pub released_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
