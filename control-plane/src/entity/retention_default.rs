use sea_orm::entity::prelude::*;

/// The operator's default for one data class.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retention_defaults")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub class: String,
    pub retention_days: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
