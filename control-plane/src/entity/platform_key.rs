use sea_orm::entity::prelude::*;

use super::names::Stored;
use crate::keys::KeyProviderKind;

/// The platform's own key (one row, id `platform`), wrapped like a
/// tenant's.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "platform_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub wrapped_key: Vec<u8>,
    pub provider: Stored<KeyProviderKind>,
    pub provider_key_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub rewrapped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
