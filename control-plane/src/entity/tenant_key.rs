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
    /// The tenant's erasable secret, wrapped by `secret_provider` under a
    /// key made for this tenant alone (`secret_key_id`); the tenant key in
    /// use is derived from `wrapped_key` and it, so destroying that one
    /// provider key (a tenant's erasure) leaves no copy of this row able to
    /// make it. `None` on keys made before erasure existed.
    pub secret_wrapped: Option<Vec<u8>>,
    pub secret_provider: Option<Stored<KeyProviderKind>>,
    pub secret_key_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
