use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    /// A keyed hash of the platform's message id once `key_hashed` (the id
    /// can hold the sender and the text: see `adapter/probe.js`).
    pub message_key: String,
    /// Empty once sealed.
    pub sender: String,
    pub text: String,
    pub sent_at: DateTimeUtc,
    /// Sealed with the bot's data key (rows from before sealing have the
    /// plaintext columns instead).
    pub sender_sealed: Option<Vec<u8>>,
    pub text_sealed: Option<Vec<u8>>,
    /// `message_key` is a keyed hash, and the sealed columns are bound to
    /// it; false in rows an older version stored.
    pub key_hashed: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
