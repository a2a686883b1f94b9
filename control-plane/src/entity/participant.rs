use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "participants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    /// A keyed hash of the platform's id for this person (or of their name
    /// where it has none), to match their arrival and departure; the clear
    /// id in rows an older version stored, until they are sealed.
    pub participant_key: String,
    /// Empty once sealed.
    pub name: String,
    pub joined_at: DateTimeUtc,
    pub left_at: Option<DateTimeUtc>,
    /// The platform's id and the name, sealed with the bot's data key;
    /// `None` in rows stored in the clear by an older version.
    pub participant_id_sealed: Option<Vec<u8>>,
    pub name_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
