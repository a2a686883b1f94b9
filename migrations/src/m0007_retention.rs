//! Retention that deletes: each tenant's rule per data class, the
//! platform's defaults, legal holds, and the leases that let one replica
//! at a time run a job such as the retention sweep. Indexes for the sweep's
//! reads: a tenant's bots by when they ended, its deliveries by age.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Bots {
    Table,
    TenantId,
    EndedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    TenantId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RetentionPolicies {
    Table,
    TenantId,
    Class,
    RetentionDays,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RetentionDefaults {
    Table,
    Class,
    RetentionDays,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LegalHolds {
    Table,
    Id,
    TenantId,
    BotId,
    ReasonSealed,
    CreatedBy,
    CreatedAt,
    ReleasedAt,
    ReleasedBy,
}

#[derive(DeriveIden)]
enum JobLeases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

fn tenant_fk<T: IntoIden + 'static>(table: T, col: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, col)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A row with no days keeps the class forever, whatever the default.
        m.create_table(
            Table::create()
                .table(RetentionPolicies::Table)
                .col(string_len(RetentionPolicies::TenantId, 36))
                .col(string_len(RetentionPolicies::Class, 32))
                .col(integer_null(RetentionPolicies::RetentionDays))
                .col(timestamp_with_time_zone(RetentionPolicies::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(RetentionPolicies::TenantId)
                        .col(RetentionPolicies::Class),
                )
                .foreign_key(&mut tenant_fk(
                    RetentionPolicies::Table,
                    RetentionPolicies::TenantId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RetentionDefaults::Table)
                .col(string_len(RetentionDefaults::Class, 32).primary_key())
                .col(integer(RetentionDefaults::RetentionDays))
                .col(timestamp_with_time_zone(RetentionDefaults::UpdatedAt))
                .to_owned(),
        )
        .await?;
        // No foreign key to bots: a hold names the bot it keeps, and the
        // bot cannot be swept while it is held.
        m.create_table(
            Table::create()
                .table(LegalHolds::Table)
                .col(string_len(LegalHolds::Id, 36).primary_key())
                .col(string_len(LegalHolds::TenantId, 36))
                .col(string_len_null(LegalHolds::BotId, 36))
                .col(binary(LegalHolds::ReasonSealed))
                .col(text(LegalHolds::CreatedBy))
                .col(timestamp_with_time_zone(LegalHolds::CreatedAt))
                .col(timestamp_with_time_zone_null(LegalHolds::ReleasedAt))
                .col(text_null(LegalHolds::ReleasedBy))
                .foreign_key(&mut tenant_fk(LegalHolds::Table, LegalHolds::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_legal_holds_tenant_active")
                .table(LegalHolds::Table)
                .col(LegalHolds::TenantId)
                .col(LegalHolds::ReleasedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JobLeases::Table)
                .col(string_len(JobLeases::Name, 64).primary_key())
                .col(string_len(JobLeases::Holder, 128))
                .col(timestamp_with_time_zone(JobLeases::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bots_tenant_ended")
                .table(Bots::Table)
                .col(Bots::TenantId)
                .col(Bots::EndedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_tenant_created")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::TenantId)
                .col(WebhookDeliveries::CreatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_webhook_deliveries_tenant_created",
                WebhookDeliveries::Table.into_iden(),
            ),
            ("idx_bots_tenant_ended", Bots::Table.into_iden()),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for t in [
            JobLeases::Table.into_iden(),
            LegalHolds::Table.into_iden(),
            RetentionDefaults::Table.into_iden(),
            RetentionPolicies::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
