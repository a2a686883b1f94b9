//! Every personal field sealed under its bot's data key: a sealed column
//! beside each field that was stored in the clear (bot names, meeting URLs,
//! participant and speaker names and platform ids, transcript speakers),
//! and a mark on chat messages whose platform id has been replaced by a
//! keyed hash.
//!
//! The clear columns stay (SQLite cannot drop a NOT NULL column in place)
//! and new rows leave them empty. A migration cannot reach the keys, so rows
//! already stored are sealed by the control plane itself, on start and by
//! `attache migrate` (`control-plane/src/sealing/backfill.rs`), which then
//! empties their clear columns.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bots {
    Table,
    MeetingUrlSealed,
    BotNameSealed,
}

#[derive(DeriveIden)]
enum Participants {
    Table,
    ParticipantIdSealed,
    NameSealed,
}

#[derive(DeriveIden)]
enum SpeakerSegments {
    Table,
    ParticipantIdSealed,
    NameSealed,
}

#[derive(DeriveIden)]
enum TranscriptSegments {
    Table,
    SpeakerSealed,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    KeyHashed,
}

/// `(table, column)` of every sealed column added here.
fn sealed_columns() -> Vec<(DynIden, DynIden)> {
    vec![
        (Bots::Table.into_iden(), Bots::MeetingUrlSealed.into_iden()),
        (Bots::Table.into_iden(), Bots::BotNameSealed.into_iden()),
        (
            Participants::Table.into_iden(),
            Participants::ParticipantIdSealed.into_iden(),
        ),
        (
            Participants::Table.into_iden(),
            Participants::NameSealed.into_iden(),
        ),
        (
            SpeakerSegments::Table.into_iden(),
            SpeakerSegments::ParticipantIdSealed.into_iden(),
        ),
        (
            SpeakerSegments::Table.into_iden(),
            SpeakerSegments::NameSealed.into_iden(),
        ),
        (
            TranscriptSegments::Table.into_iden(),
            TranscriptSegments::SpeakerSealed.into_iden(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds them one at a time.
        for (table, col) in sealed_columns() {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(binary_null(col))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(ChatMessages::Table)
                .add_column(boolean(ChatMessages::KeyHashed).default(false))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ChatMessages::Table)
                .drop_column(ChatMessages::KeyHashed)
                .to_owned(),
        )
        .await?;
        for (table, col) in sealed_columns().into_iter().rev() {
            m.alter_table(Table::alter().table(table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
