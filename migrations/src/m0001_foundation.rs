//! Tenants, API keys, bots and their events, workers, join tokens and leases.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Region,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    SecretHash,
    Role,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Bots {
    Table,
    Id,
    TenantId,
    Region,
    MeetingUrl,
    Platform,
    BotName,
    Status,
    StatusReason,
    JoinAt,
    JoinTimeoutMs,
    LobbyTimeoutMs,
    MaxDurationMs,
    WorkerId,
    LeaseGeneration,
    LastResultSeq,
    LeaveRequested,
    CreatedAt,
    UpdatedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum BotEvents {
    Table,
    Id,
    BotId,
    TenantId,
    Generation,
    Status,
    Reason,
    Detail,
    At,
}

#[derive(DeriveIden)]
enum Workers {
    Table,
    Id,
    Region,
    Hostname,
    CertFingerprint,
    Capacity,
    State,
    EnrolledAt,
    LastSeenAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    Id,
    SecretHash,
    Region,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    UsedByWorker,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    BotId,
    Generation,
    WorkerId,
    GrantedAt,
    ReleasedAt,
    Outcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .col(string_len(Tenants::Id, 36).primary_key())
                .col(string_len_uniq(Tenants::Name, 128))
                .col(string_len(Tenants::Region, 64))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(string_len(ApiKeys::Id, 32).primary_key())
                .col(string_len(ApiKeys::TenantId, 36))
                .col(string_len(ApiKeys::Name, 128))
                .col(string_len(ApiKeys::SecretHash, 64))
                .col(string_len(ApiKeys::Role, 32))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_api_keys_tenant")
                .table(ApiKeys::Table)
                .col(ApiKeys::TenantId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Workers::Table)
                .col(string_len(Workers::Id, 64).primary_key())
                .col(string_len(Workers::Region, 64))
                .col(string_len(Workers::Hostname, 255))
                .col(string_len(Workers::CertFingerprint, 64))
                .col(integer(Workers::Capacity))
                .col(string_len(Workers::State, 16))
                .col(timestamp_with_time_zone(Workers::EnrolledAt))
                .col(timestamp_with_time_zone_null(Workers::LastSeenAt))
                .col(timestamp_with_time_zone_null(Workers::RevokedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Bots::Table)
                .col(string_len(Bots::Id, 36).primary_key())
                .col(string_len(Bots::TenantId, 36))
                .col(string_len(Bots::Region, 64))
                .col(text(Bots::MeetingUrl))
                .col(string_len(Bots::Platform, 16))
                .col(string_len(Bots::BotName, 128))
                .col(string_len(Bots::Status, 16))
                .col(string_len_null(Bots::StatusReason, 32))
                .col(timestamp_with_time_zone(Bots::JoinAt))
                .col(big_integer(Bots::JoinTimeoutMs))
                .col(big_integer(Bots::LobbyTimeoutMs))
                .col(big_integer(Bots::MaxDurationMs))
                .col(string_len_null(Bots::WorkerId, 64))
                .col(big_integer(Bots::LeaseGeneration))
                .col(big_integer(Bots::LastResultSeq))
                .col(boolean(Bots::LeaveRequested))
                .col(timestamp_with_time_zone(Bots::CreatedAt))
                .col(timestamp_with_time_zone(Bots::UpdatedAt))
                .col(timestamp_with_time_zone_null(Bots::EndedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Bots::Table, Bots::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bots_tenant_created")
                .table(Bots::Table)
                .col(Bots::TenantId)
                .col(Bots::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bots_status_join_at")
                .table(Bots::Table)
                .col(Bots::Status)
                .col(Bots::JoinAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bots_worker")
                .table(Bots::Table)
                .col(Bots::WorkerId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BotEvents::Table)
                .col(big_pk_auto(BotEvents::Id))
                .col(string_len(BotEvents::BotId, 36))
                .col(string_len(BotEvents::TenantId, 36))
                .col(big_integer(BotEvents::Generation))
                .col(string_len(BotEvents::Status, 16))
                .col(string_len_null(BotEvents::Reason, 32))
                .col(text_null(BotEvents::Detail))
                .col(timestamp_with_time_zone(BotEvents::At))
                .foreign_key(
                    ForeignKey::create()
                        .from(BotEvents::Table, BotEvents::BotId)
                        .to(Bots::Table, Bots::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bot_events_bot")
                .table(BotEvents::Table)
                .col(BotEvents::BotId)
                .col(BotEvents::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(JoinTokens::Table)
                .col(string_len(JoinTokens::Id, 32).primary_key())
                .col(string_len(JoinTokens::SecretHash, 64))
                .col(string_len(JoinTokens::Region, 64))
                .col(timestamp_with_time_zone(JoinTokens::CreatedAt))
                .col(timestamp_with_time_zone(JoinTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(JoinTokens::UsedAt))
                .col(string_len_null(JoinTokens::UsedByWorker, 64))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Leases::Table)
                .col(string_len(Leases::BotId, 36))
                .col(big_integer(Leases::Generation))
                .col(string_len(Leases::WorkerId, 64))
                .col(timestamp_with_time_zone(Leases::GrantedAt))
                .col(timestamp_with_time_zone_null(Leases::ReleasedAt))
                .col(string_len_null(Leases::Outcome, 32))
                .primary_key(Index::create().col(Leases::BotId).col(Leases::Generation))
                .foreign_key(
                    ForeignKey::create()
                        .from(Leases::Table, Leases::BotId)
                        .to(Bots::Table, Bots::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_leases_worker_open")
                .table(Leases::Table)
                .col(Leases::WorkerId)
                .col(Leases::ReleasedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Leases::Table.into_iden(),
            JoinTokens::Table.into_iden(),
            BotEvents::Table.into_iden(),
            Bots::Table.into_iden(),
            Workers::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
