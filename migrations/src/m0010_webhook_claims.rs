//! A claim on each webhook attempt, so that with several control-plane
//! replicas one sends it: `claimed_until` is set by compare-and-swap before
//! the attempt and cleared by its outcome; a replica that dies mid-attempt
//! leaves the delivery to the others once the claim runs out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    ClaimedUntil,
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
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WebhookDeliveries::Table)
                .drop_column(WebhookDeliveries::ClaimedUntil)
                .to_owned(),
        )
        .await
    }
}
