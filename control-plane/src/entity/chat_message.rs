use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    pub message_key: String,
    pub sender: String,
    pub text: String,
    pub sent_at: DateTimeUtc,
    /// Sealed with the bot's data key (rows from before sealing have the
    /// plaintext columns instead).
    pub sender_sealed: Option<Vec<u8>>,
    pub text_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
