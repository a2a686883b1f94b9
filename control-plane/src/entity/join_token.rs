use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "join_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub secret_hash: String,
    pub region: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// The latest enrollment, and the worker it enrolled.
    pub used_at: Option<DateTimeUtc>,
    pub used_by_worker: Option<String>,
    /// The dedicated pool the worker it enrolls joins; `None`: shared.
    pub pool: Option<String>,
    /// How many workers may enroll with it.
    pub max_uses: i32,
    /// How many have.
    pub uses: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
