use sea_orm::entity::prelude::*;

use super::names::Stored;
use crate::keys::KeyProviderKind;

/// One generation of a tenant's bot keys: a secret, wrapped by `provider`
/// under a key made for this generation alone (`provider_key_id`), from
/// which (with the tenant key) the key that wraps its bots' data keys is
/// derived. Retired when an erasure starts the next one; destroyed (the
/// provider key deleted, the wrapped secret dropped) once no bot is left
/// on it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bot_key_generations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i32,
    pub provider: Stored<KeyProviderKind>,
    pub provider_key_id: String,
    /// `None` once destroyed.
    pub wrapped_secret: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
    pub destroyed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
