//! Keys outside the process: each stored tenant key says which key
//! provider (`local`, `vault`, `kms`) and which of its keys wrapped it, so a
//! rotation or a change of provider can move keys one at a time; and the
//! platform's own key (download links, the operators' identity-provider
//! secret), wrapped like a tenant's. Keys stored before this migration were
//! wrapped by the local master key file: `local`, key id unknown.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantKeys {
    Table,
    Provider,
    ProviderKeyId,
    RewrappedAt,
}

#[derive(DeriveIden)]
enum PlatformKeys {
    Table,
    Id,
    WrappedKey,
    Provider,
    ProviderKeyId,
    CreatedAt,
    RewrappedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds them one at a time.
        m.alter_table(
            Table::alter()
                .table(TenantKeys::Table)
                .add_column(string_len(TenantKeys::Provider, 16).default("local"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(TenantKeys::Table)
                .add_column(string_len_null(TenantKeys::ProviderKeyId, 2048))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(TenantKeys::Table)
                .add_column(timestamp_with_time_zone_null(TenantKeys::RewrappedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PlatformKeys::Table)
                .col(string_len(PlatformKeys::Id, 36).primary_key())
                .col(binary(PlatformKeys::WrappedKey))
                .col(string_len(PlatformKeys::Provider, 16))
                .col(string_len_null(PlatformKeys::ProviderKeyId, 2048))
                .col(timestamp_with_time_zone(PlatformKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(PlatformKeys::RewrappedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(PlatformKeys::Table).to_owned())
            .await?;
        for col in [
            TenantKeys::RewrappedAt,
            TenantKeys::ProviderKeyId,
            TenantKeys::Provider,
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
