use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "speaker_segments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub bot_id: String,
    pub tenant_id: String,
    /// A keyed hash of the platform's id, as in `participants`.
    pub participant_key: String,
    /// Empty once sealed.
    pub name: String,
    pub started_at: DateTimeUtc,
    /// Open while the person is still speaking.
    pub ended_at: Option<DateTimeUtc>,
    /// Sealed as in `participants`.
    pub participant_id_sealed: Option<Vec<u8>>,
    pub name_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
