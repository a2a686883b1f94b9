use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    /// A tenant id, or `platform` for the operators' provider.
    pub domain: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_sealed: Vec<u8>,
    /// Comma-separated email domains whose verified users join as viewers.
    pub allowed_domains: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
