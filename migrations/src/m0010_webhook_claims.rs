//! What several control-plane replicas share in the database: a claim on
//! each webhook attempt, so one replica sends it (`claimed_until`, set by
//! compare-and-swap before the attempt and cleared by its outcome; a
//! replica that dies mid-attempt leaves the delivery to the others once the
//! claim runs out), and the operator's request that a worker drain
//! (`drain_requested_at`), which whichever replica holds its link carries
//! out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    ClaimedUntil,
}

#[derive(DeriveIden)]
enum Workers {
    Table,
    DrainRequestedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WebhookDeliveries::Table)
                .add_column(timestamp_with_time_zone_null(
                    WebhookDeliveries::ClaimedUntil,
                ))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Workers::Table)
                .add_column(timestamp_with_time_zone_null(Workers::DrainRequestedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Workers::Table)
                .drop_column(Workers::DrainRequestedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(WebhookDeliveries::Table)
                .drop_column(WebhookDeliveries::ClaimedUntil)
                .to_owned(),
        )
        .await
    }
}
