//! What a bot hears and sees: auto-leave rules per bot, participants, the
//! speaker timeline, chat, recordings and warnings.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bots {
    Table,
    Id,
    NobodyJoinedMs,
    AloneMs,
    SilenceMs,
}

#[derive(DeriveIden)]
enum Participants {
    Table,
    Id,
    BotId,
    TenantId,
    ParticipantKey,
    Name,
    JoinedAt,
    LeftAt,
}

#[derive(DeriveIden)]
enum SpeakerSegments {
    Table,
    Id,
    BotId,
    TenantId,
    ParticipantKey,
    Name,
    StartedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    Id,
    BotId,
    TenantId,
    MessageKey,
    Sender,
    Text,
    SentAt,
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    BotId,
    TenantId,
    Generation,
    Status,
    Format,
    ObjectKey,
    SizeBytes,
    DurationMs,
    Sha256,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum BotWarnings {
    Table,
    Id,
    BotId,
    TenantId,
    Code,
    Detail,
    At,
}

fn bot_fk<T: IntoIden + 'static>(table: T, col: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, col)
        .to(Bots::Table, Bots::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds them one at a time.
        for (col, default) in [
            (Bots::NobodyJoinedMs, 600_000i64),
            (Bots::AloneMs, 60_000),
            (Bots::SilenceMs, 900_000),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Bots::Table)
                    .add_column(big_integer(col).default(default))
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(Participants::Table)
                .col(big_pk_auto(Participants::Id))
                .col(string_len(Participants::BotId, 36))
                .col(string_len(Participants::TenantId, 36))
                .col(string_len(Participants::ParticipantKey, 256))
                .col(text(Participants::Name))
                .col(timestamp_with_time_zone(Participants::JoinedAt))
                .col(timestamp_with_time_zone_null(Participants::LeftAt))
                .foreign_key(&mut bot_fk(Participants::Table, Participants::BotId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_participants_bot")
                .table(Participants::Table)
                .col(Participants::BotId)
                .col(Participants::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SpeakerSegments::Table)
                .col(big_pk_auto(SpeakerSegments::Id))
                .col(string_len(SpeakerSegments::BotId, 36))
                .col(string_len(SpeakerSegments::TenantId, 36))
                .col(string_len(SpeakerSegments::ParticipantKey, 256))
                .col(text(SpeakerSegments::Name))
                .col(timestamp_with_time_zone(SpeakerSegments::StartedAt))
                .col(timestamp_with_time_zone_null(SpeakerSegments::EndedAt))
                .foreign_key(&mut bot_fk(SpeakerSegments::Table, SpeakerSegments::BotId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_speaker_segments_bot")
                .table(SpeakerSegments::Table)
                .col(SpeakerSegments::BotId)
                .col(SpeakerSegments::StartedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ChatMessages::Table)
                .col(big_pk_auto(ChatMessages::Id))
                .col(string_len(ChatMessages::BotId, 36))
                .col(string_len(ChatMessages::TenantId, 36))
                .col(string_len(ChatMessages::MessageKey, 256))
                .col(text(ChatMessages::Sender))
                .col(text(ChatMessages::Text))
                .col(timestamp_with_time_zone(ChatMessages::SentAt))
                .foreign_key(&mut bot_fk(ChatMessages::Table, ChatMessages::BotId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_chat_messages_bot_key")
                .table(ChatMessages::Table)
                .col(ChatMessages::BotId)
                .col(ChatMessages::MessageKey)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Recordings::Table)
                .col(string_len(Recordings::BotId, 36).primary_key())
                .col(string_len(Recordings::TenantId, 36))
                .col(big_integer(Recordings::Generation))
                .col(string_len(Recordings::Status, 16))
                .col(string_len(Recordings::Format, 64))
                .col(text(Recordings::ObjectKey))
                .col(big_integer(Recordings::SizeBytes))
                .col(big_integer_null(Recordings::DurationMs))
                .col(string_len_null(Recordings::Sha256, 64))
                .col(timestamp_with_time_zone(Recordings::StartedAt))
                .col(timestamp_with_time_zone_null(Recordings::FinishedAt))
                .foreign_key(&mut bot_fk(Recordings::Table, Recordings::BotId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_recordings_tenant")
                .table(Recordings::Table)
                .col(Recordings::TenantId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_recordings_status")
                .table(Recordings::Table)
                .col(Recordings::Status)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BotWarnings::Table)
                .col(big_pk_auto(BotWarnings::Id))
                .col(string_len(BotWarnings::BotId, 36))
                .col(string_len(BotWarnings::TenantId, 36))
                .col(string_len(BotWarnings::Code, 32))
                .col(text(BotWarnings::Detail))
                .col(timestamp_with_time_zone(BotWarnings::At))
                .foreign_key(&mut bot_fk(BotWarnings::Table, BotWarnings::BotId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_bot_warnings_bot")
                .table(BotWarnings::Table)
                .col(BotWarnings::BotId)
                .col(BotWarnings::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            BotWarnings::Table.into_iden(),
            Recordings::Table.into_iden(),
            ChatMessages::Table.into_iden(),
            SpeakerSegments::Table.into_iden(),
            Participants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        for col in [Bots::NobodyJoinedMs, Bots::AloneMs, Bots::SilenceMs] {
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
