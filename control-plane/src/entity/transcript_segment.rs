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
    /// Only in rows stored in the clear by an older version, not sealed yet;
    /// the speaker is in `speaker_sealed`.
    pub speaker: Option<String>,
    /// The text, sealed with the bot's data key.
    pub text_sealed: Vec<u8>,
    pub confidence: f64,
    pub language: Option<String>,
    pub is_final: bool,
    pub updated_at: DateTimeUtc,
    /// Who spoke, sealed with the bot's data key; `None` when nobody was
    /// named.
    pub speaker_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
