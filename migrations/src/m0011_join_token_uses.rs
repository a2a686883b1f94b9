//! Join tokens that several workers may enroll with (`max_uses`), so an
//! autoscaled group of workers can share one token from a secret until it
//! expires. `uses` counts enrollments; a token enrolled with before this
//! migration counts as used once. `used_at` and `used_by_worker` now name
//! the latest enrollment.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    MaxUses,
    Uses,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(JoinTokens::Table)
                .add_column(integer(JoinTokens::MaxUses).default(1))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(JoinTokens::Table)
                .add_column(integer(JoinTokens::Uses).default(0))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::update()
                .table(JoinTokens::Table)
                .value(JoinTokens::Uses, 1)
                .and_where(Expr::col(JoinTokens::UsedAt).is_not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [JoinTokens::Uses, JoinTokens::MaxUses] {
            m.alter_table(
                Table::alter()
                    .table(JoinTokens::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
