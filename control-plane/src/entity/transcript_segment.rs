use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "transcript_segments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    pub generation: i64,
    /// `<generation>:<segment id>`: unique per bot.
    pub segment_key: String,
    /// Milliseconds into the recording.
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: Option<String>,
    /// The text, sealed with the bot's data key.
    pub text_sealed: Vec<u8>,
    pub confidence: f64,
    pub language: Option<String>,
    pub is_final: bool,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
