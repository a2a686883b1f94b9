//! Residency and isolation: a tenant is `SHARED` (the workers of its home
//! region) or `DEDICATED` (a worker pool of its own, named in the pool's
//! join tokens and certificates). A bot carries what it was placed with
//! (its pool and the object store that keeps its recordings), when it last
//! entered the queue and why it is still waiting there.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Isolation,
    Pool,
}

#[derive(DeriveIden)]
enum Bots {
    Table,
    Status,
    Region,
    Pool,
    ObjectStore,
    QueuedAt,
    QueueReason,
    JoinAt,
}

#[derive(DeriveIden)]
enum Workers {
    Table,
    Pool,
}

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    Pool,
}

const POOL_LEN: u32 = 32;
const STORE_LEN: u32 = 80;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds them one at a time.
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(string_len(Tenants::Isolation, 16).default("SHARED"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(string_len_null(Tenants::Pool, POOL_LEN))
                .to_owned(),
        )
        .await?;
        for col in [
            string_len_null(Bots::Pool, POOL_LEN),
            string_len_null(Bots::ObjectStore, STORE_LEN),
            timestamp_with_time_zone_null(Bots::QueuedAt),
            string_len_null(Bots::QueueReason, 32),
        ] {
            let mut col = col;
            m.alter_table(
                Table::alter()
                    .table(Bots::Table)
                    .add_column(&mut col)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Workers::Table)
                .add_column(string_len_null(Workers::Pool, POOL_LEN))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(JoinTokens::Table)
                .add_column(string_len_null(JoinTokens::Pool, POOL_LEN))
                .to_owned(),
        )
        .await?;
        // Dispatch reads the queue one region (and pool) at a time.
        m.create_index(
            Index::create()
                .name("idx_bots_queue")
                .table(Bots::Table)
                .col(Bots::Status)
                .col(Bots::Region)
                .col(Bots::Pool)
                .col(Bots::JoinAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_bots_queue")
                .table(Bots::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(JoinTokens::Table)
                .drop_column(JoinTokens::Pool)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Workers::Table)
                .drop_column(Workers::Pool)
                .to_owned(),
        )
        .await?;
        for col in [
            Bots::QueueReason,
            Bots::QueuedAt,
            Bots::ObjectStore,
            Bots::Pool,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Bots::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [Tenants::Pool, Tenants::Isolation] {
            m.alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
