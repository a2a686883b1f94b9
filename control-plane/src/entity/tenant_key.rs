use sea_orm::entity::prelude::*;

use super::names::Stored;
use crate::keys::KeyProviderKind;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The tenant's key, wrapped by `provider` under `provider_key_id`.
    pub wrapped_key: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub provider: Stored<KeyProviderKind>,
    /// A key file's fingerprint, a Transit key's name, a KMS key's ARN;
    /// `None` for keys stored before providers were recorded.
    pub provider_key_id: Option<String>,
    pub rewrapped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
