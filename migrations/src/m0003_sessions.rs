//! Sealed results, transcripts and webhooks: per-tenant keys (wrapped by
//! the deployment's master key) and per-bot data keys (wrapped by the
//! tenant's), sealed chat columns, transcript segments, each tenant's
//! transcription settings, and the webhook endpoints, outbox and attempts.

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
    Id,
    DataKey,
    Transcription,
}

#[derive(DeriveIden)]
enum TenantKeys {
    Table,
    TenantId,
    WrappedKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    SenderSealed,
    TextSealed,
}

#[derive(DeriveIden)]
enum TranscriptSegments {
    Table,
    Id,
    BotId,
    TenantId,
    Generation,
    SegmentKey,
    StartMs,
    EndMs,
    Speaker,
    TextSealed,
    Confidence,
    Language,
    IsFinal,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TranscriptionSettings {
    Table,
    TenantId,
    Provider,
    Endpoint,
    Model,
    Language,
    ApiKeySealed,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    EventTypes,
    SecretSealed,
    Enabled,
    DisabledReason,
    FailingSince,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    TenantId,
    EndpointId,
    BotId,
    EventType,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    TenantId,
    At,
    StatusCode,
    Error,
    DurationMs,
}

#[derive(DeriveIden)]
enum TenantNotices {
    Table,
    Id,
    TenantId,
    Kind,
    Message,
    At,
}

fn fk<T: IntoIden + 'static, U: IntoIden + 'static>(
    table: T,
    col: T,
    to: U,
    to_col: U,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, col)
        .to(to, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TenantKeys::Table)
                .col(string_len(TenantKeys::TenantId, 36).primary_key())
                .col(binary(TenantKeys::WrappedKey))
                .col(timestamp_with_time_zone(TenantKeys::CreatedAt))
                .foreign_key(&mut fk(
                    TenantKeys::Table,
                    TenantKeys::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite adds them one at a time.
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .add_column(binary_null(Bots::DataKey))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Bots::Table)
                .add_column(text_null(Bots::Transcription))
                .to_owned(),
        )
        .await?;
        // Chat is stored sealed from now on; the plaintext columns of
        // m0002 are left empty for new rows.
        for col in [ChatMessages::SenderSealed, ChatMessages::TextSealed] {
            m.alter_table(
                Table::alter()
                    .table(ChatMessages::Table)
                    .add_column(binary_null(col))
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(TranscriptSegments::Table)
                .col(big_pk_auto(TranscriptSegments::Id))
                .col(string_len(TranscriptSegments::BotId, 36))
                .col(string_len(TranscriptSegments::TenantId, 36))
                .col(big_integer(TranscriptSegments::Generation))
                .col(string_len(TranscriptSegments::SegmentKey, 300))
                .col(big_integer(TranscriptSegments::StartMs))
                .col(big_integer(TranscriptSegments::EndMs))
                .col(text_null(TranscriptSegments::Speaker))
                .col(binary(TranscriptSegments::TextSealed))
                .col(double(TranscriptSegments::Confidence))
                .col(string_len_null(TranscriptSegments::Language, 35))
                .col(boolean(TranscriptSegments::IsFinal))
                .col(timestamp_with_time_zone(TranscriptSegments::UpdatedAt))
                .foreign_key(&mut fk(
                    TranscriptSegments::Table,
                    TranscriptSegments::BotId,
                    Bots::Table,
                    Bots::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_transcript_segments_key")
                .table(TranscriptSegments::Table)
                .col(TranscriptSegments::BotId)
                .col(TranscriptSegments::SegmentKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_transcript_segments_time")
                .table(TranscriptSegments::Table)
                .col(TranscriptSegments::BotId)
                .col(TranscriptSegments::StartMs)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TranscriptionSettings::Table)
                .col(string_len(TranscriptionSettings::TenantId, 36).primary_key())
                .col(string_len(TranscriptionSettings::Provider, 32))
                .col(text_null(TranscriptionSettings::Endpoint))
                .col(string_len(TranscriptionSettings::Model, 128))
                .col(string_len_null(TranscriptionSettings::Language, 35))
                .col(binary_null(TranscriptionSettings::ApiKeySealed))
                .col(timestamp_with_time_zone(TranscriptionSettings::UpdatedAt))
                .foreign_key(&mut fk(
                    TranscriptionSettings::Table,
                    TranscriptionSettings::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(string_len(WebhookEndpoints::Id, 36).primary_key())
                .col(string_len(WebhookEndpoints::TenantId, 36))
                .col(text(WebhookEndpoints::Url))
                .col(text(WebhookEndpoints::EventTypes))
                .col(binary(WebhookEndpoints::SecretSealed))
                .col(boolean(WebhookEndpoints::Enabled))
                .col(text_null(WebhookEndpoints::DisabledReason))
                .col(timestamp_with_time_zone_null(
                    WebhookEndpoints::FailingSince,
                ))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .foreign_key(&mut fk(
                    WebhookEndpoints::Table,
                    WebhookEndpoints::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_endpoints_tenant")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::TenantId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(big_pk_auto(WebhookDeliveries::Id))
                .col(string_len(WebhookDeliveries::WebhookId, 40))
                .col(string_len(WebhookDeliveries::TenantId, 36))
                .col(string_len(WebhookDeliveries::EndpointId, 36))
                .col(string_len_null(WebhookDeliveries::BotId, 36))
                .col(string_len(WebhookDeliveries::EventType, 64))
                .col(text(WebhookDeliveries::Payload))
                .col(string_len(WebhookDeliveries::Status, 16))
                .col(integer(WebhookDeliveries::Attempts))
                .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                .col(text_null(WebhookDeliveries::LastError))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::DeliveredAt,
                ))
                .foreign_key(&mut fk(
                    WebhookDeliveries::Table,
                    WebhookDeliveries::EndpointId,
                    WebhookEndpoints::Table,
                    WebhookEndpoints::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_webhook_id")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::WebhookId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(big_pk_auto(WebhookAttempts::Id))
                .col(big_integer(WebhookAttempts::DeliveryId))
                .col(string_len(WebhookAttempts::TenantId, 36))
                .col(timestamp_with_time_zone(WebhookAttempts::At))
                .col(integer_null(WebhookAttempts::StatusCode))
                .col(text_null(WebhookAttempts::Error))
                .col(big_integer(WebhookAttempts::DurationMs))
                .foreign_key(&mut fk(
                    WebhookAttempts::Table,
                    WebhookAttempts::DeliveryId,
                    WebhookDeliveries::Table,
                    WebhookDeliveries::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_attempts_delivery")
                .table(WebhookAttempts::Table)
                .col(WebhookAttempts::DeliveryId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TenantNotices::Table)
                .col(big_pk_auto(TenantNotices::Id))
                .col(string_len(TenantNotices::TenantId, 36))
                .col(string_len(TenantNotices::Kind, 64))
                .col(text(TenantNotices::Message))
                .col(timestamp_with_time_zone(TenantNotices::At))
                .foreign_key(&mut fk(
                    TenantNotices::Table,
                    TenantNotices::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            TenantNotices::Table.into_iden(),
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            TranscriptionSettings::Table.into_iden(),
            TranscriptSegments::Table.into_iden(),
            TenantKeys::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        for col in [ChatMessages::SenderSealed, ChatMessages::TextSealed] {
            m.alter_table(
                Table::alter()
                    .table(ChatMessages::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [Bots::DataKey, Bots::Transcription] {
            m.alter_table(
                Table::alter()
                    .table(Bots::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
