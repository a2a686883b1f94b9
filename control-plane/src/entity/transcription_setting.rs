use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "transcription_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// NONE, LOCAL, OPENAI_COMPATIBLE or DEEPGRAM.
    pub provider: String,
    pub endpoint: Option<String>,
    pub model: String,
    pub language: Option<String>,
    /// The provider's API key, sealed with the tenant's key.
    pub api_key_sealed: Option<Vec<u8>>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
