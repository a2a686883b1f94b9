use sea_orm::entity::prelude::*;

/// A tenant's rule for one data class.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retention_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// A `DataClass` name (`transcripts`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub class: String,
    /// `None`: kept forever, whatever the platform's default.
    pub retention_days: Option<i32>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
