//! Erasure: the jobs that erase a bot, a participant or a tenant, and the
//! generations of each tenant's bot keys. A bot's data key is wrapped under
//! its tenant's current generation, whose secret sits under a key of its
//! own at the key provider; an erasure moves the tenant's other bots onto a
//! new generation and destroys the old one's provider key, so no copy of
//! the database taken before it opens the erased data again.
//!
//! Neither table has a foreign key to `tenants`: a tenant's erasure job and
//! the record of its destroyed generations outlive the tenant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bots {
    Table,
    KeyGeneration,
}

#[derive(DeriveIden)]
enum TenantKeys {
    Table,
    SecretWrapped,
    SecretProvider,
    SecretKeyId,
}

#[derive(DeriveIden)]
enum ErasureJobs {
    Table,
    Id,
    TenantId,
    Subject,
    SubjectId,
    NameSealed,
    NameSalt,
    NameHash,
    Status,
    StatusReason,
    Progress,
    Certificate,
    RequestedBy,
    RequestedAt,
    StartedAt,
    CompletedAt,
    Holder,
    LeaseUntil,
    Attempts,
}

#[derive(DeriveIden)]
enum BotKeyGenerations {
    Table,
    TenantId,
    Generation,
    Provider,
    ProviderKeyId,
    WrappedSecret,
    CreatedAt,
    RetiredAt,
    DestroyedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // `None`: wrapped under the tenant key itself, as before generations.
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .add_column(integer_null(Bots::KeyGeneration))
                .to_owned(),
        )
        .await?;
        // The tenant's erasable secret, mixed into its key: `None` on keys
        // made before erasure (and by `attache admin tenant-key` before
        // first use).
        for col in [
            ColumnDef::new(TenantKeys::SecretWrapped)
                .binary()
                .null()
                .to_owned(),
            ColumnDef::new(TenantKeys::SecretProvider)
                .string_len(16)
                .null()
                .to_owned(),
            ColumnDef::new(TenantKeys::SecretKeyId)
                .text()
                .null()
                .to_owned(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(TenantKeys::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(ErasureJobs::Table)
                .col(string_len(ErasureJobs::Id, 36).primary_key())
                .col(string_len(ErasureJobs::TenantId, 36))
                .col(string_len(ErasureJobs::Subject, 16))
                .col(string_len_null(ErasureJobs::SubjectId, 64))
                .col(binary_null(ErasureJobs::NameSealed))
                .col(string_len_null(ErasureJobs::NameSalt, 64))
                .col(string_len_null(ErasureJobs::NameHash, 64))
                .col(string_len(ErasureJobs::Status, 16))
                .col(text_null(ErasureJobs::StatusReason))
                .col(text_null(ErasureJobs::Progress))
                .col(text_null(ErasureJobs::Certificate))
                .col(text(ErasureJobs::RequestedBy))
                .col(timestamp_with_time_zone(ErasureJobs::RequestedAt))
                .col(timestamp_with_time_zone_null(ErasureJobs::StartedAt))
                .col(timestamp_with_time_zone_null(ErasureJobs::CompletedAt))
                .col(string_len_null(ErasureJobs::Holder, 128))
                .col(timestamp_with_time_zone_null(ErasureJobs::LeaseUntil))
                .col(integer(ErasureJobs::Attempts).default(0))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_erasure_jobs_tenant_requested")
                .table(ErasureJobs::Table)
                .col(ErasureJobs::TenantId)
                .col(ErasureJobs::RequestedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_erasure_jobs_status")
                .table(ErasureJobs::Table)
                .col(ErasureJobs::Status)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BotKeyGenerations::Table)
                .col(string_len(BotKeyGenerations::TenantId, 36))
                .col(integer(BotKeyGenerations::Generation))
                .col(string_len(BotKeyGenerations::Provider, 16))
                .col(text(BotKeyGenerations::ProviderKeyId))
                .col(binary_null(BotKeyGenerations::WrappedSecret))
                .col(timestamp_with_time_zone(BotKeyGenerations::CreatedAt))
                .col(timestamp_with_time_zone_null(BotKeyGenerations::RetiredAt))
                .col(timestamp_with_time_zone_null(
                    BotKeyGenerations::DestroyedAt,
                ))
                .primary_key(
                    Index::create()
                        .col(BotKeyGenerations::TenantId)
                        .col(BotKeyGenerations::Generation),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(BotKeyGenerations::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ErasureJobs::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .drop_column(Bots::KeyGeneration)
                .to_owned(),
        )
        .await?;
        for col in [
            TenantKeys::SecretWrapped,
            TenantKeys::SecretProvider,
            TenantKeys::SecretKeyId,
        ] {
            m.alter_table(
                Table::alter()
                    .table(TenantKeys::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
