//! The W3C `traceparent` of the request that created a bot, so dispatch
//! (on whichever replica, however much later) continues the same trace.
//! Null where no traces are exported, and for bots created before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bots {
    Table,
    TraceParent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .add_column(string_null(Bots::TraceParent))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .drop_column(Bots::TraceParent)
                .to_owned(),
        )
        .await
    }
}
