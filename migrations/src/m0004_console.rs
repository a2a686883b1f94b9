//! People and the console: users, tenant members and invitations, console
//! sign-in (sessions, pending OIDC logins, each tenant's identity provider,
//! the platform's operators), per-tenant policy overrides, retention, and
//! the hash-chained audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    RetentionDays,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    MemberId,
    CreatedBy,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    CreatedAt,
    LastSignInAt,
}

#[derive(DeriveIden)]
enum Members {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    TenantId,
    Email,
    Role,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ConsoleSessions {
    Table,
    Id,
    UserId,
    TenantId,
    MemberId,
    Operator,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LoginStates {
    Table,
    Id,
    TenantId,
    Nonce,
    PkceVerifier,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    Domain,
    Issuer,
    ClientId,
    ClientSecretSealed,
    AllowedDomains,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Operators {
    Table,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PolicyOverrides {
    Table,
    TenantId,
    Role,
    Action,
    Effect,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    At,
    TenantId,
    Actor,
    Action,
    Target,
    Outcome,
    PrevHash,
    Hash,
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
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(integer_null(Tenants::RetentionDays))
                .to_owned(),
        )
        .await?;
        for col in [ApiKeys::MemberId, ApiKeys::CreatedBy] {
            m.alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(string_len_null(col, 200))
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string_len(Users::Id, 36).primary_key())
                .col(string_len_uniq(Users::Email, 320))
                .col(text_null(Users::Name))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone_null(Users::LastSignInAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Members::Table)
                .col(string_len(Members::Id, 36).primary_key())
                .col(string_len(Members::TenantId, 36))
                .col(string_len(Members::UserId, 36))
                .col(string_len(Members::Role, 16))
                .col(timestamp_with_time_zone(Members::CreatedAt))
                .foreign_key(&mut fk(
                    Members::Table,
                    Members::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .foreign_key(&mut fk(
                    Members::Table,
                    Members::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .index(
                    Index::create()
                        .name("members_tenant_user")
                        .col(Members::TenantId)
                        .col(Members::UserId)
                        .unique(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Invitations::Table)
                .col(string_len(Invitations::Id, 36).primary_key())
                .col(string_len(Invitations::TenantId, 36))
                .col(string_len(Invitations::Email, 320))
                .col(string_len(Invitations::Role, 16))
                .col(string_len(Invitations::InvitedBy, 200))
                .col(timestamp_with_time_zone(Invitations::CreatedAt))
                .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                .foreign_key(&mut fk(
                    Invitations::Table,
                    Invitations::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invitations_tenant_email")
                .table(Invitations::Table)
                .col(Invitations::TenantId)
                .col(Invitations::Email)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConsoleSessions::Table)
                .col(string_len(ConsoleSessions::Id, 64).primary_key())
                .col(string_len(ConsoleSessions::UserId, 36))
                .col(string_len_null(ConsoleSessions::TenantId, 36))
                .col(string_len_null(ConsoleSessions::MemberId, 36))
                .col(boolean(ConsoleSessions::Operator))
                .col(timestamp_with_time_zone(ConsoleSessions::CreatedAt))
                .col(timestamp_with_time_zone(ConsoleSessions::ExpiresAt))
                .col(timestamp_with_time_zone(ConsoleSessions::LastSeenAt))
                .col(timestamp_with_time_zone_null(ConsoleSessions::RevokedAt))
                .foreign_key(&mut fk(
                    ConsoleSessions::Table,
                    ConsoleSessions::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LoginStates::Table)
                .col(string_len(LoginStates::Id, 64).primary_key())
                .col(string_len_null(LoginStates::TenantId, 36))
                .col(text(LoginStates::Nonce))
                .col(text(LoginStates::PkceVerifier))
                .col(timestamp_with_time_zone(LoginStates::CreatedAt))
                .col(timestamp_with_time_zone(LoginStates::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(IdentityProviders::Table)
                .col(string_len(IdentityProviders::Domain, 36).primary_key())
                .col(text(IdentityProviders::Issuer))
                .col(text(IdentityProviders::ClientId))
                .col(binary(IdentityProviders::ClientSecretSealed))
                .col(text(IdentityProviders::AllowedDomains))
                .col(timestamp_with_time_zone(IdentityProviders::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Operators::Table)
                .col(string_len(Operators::Email, 320).primary_key())
                .col(timestamp_with_time_zone(Operators::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PolicyOverrides::Table)
                .col(string_len(PolicyOverrides::TenantId, 36))
                .col(string_len(PolicyOverrides::Role, 16))
                .col(string_len(PolicyOverrides::Action, 32))
                .col(string_len(PolicyOverrides::Effect, 8))
                .col(timestamp_with_time_zone(PolicyOverrides::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(PolicyOverrides::TenantId)
                        .col(PolicyOverrides::Role)
                        .col(PolicyOverrides::Action),
                )
                .foreign_key(&mut fk(
                    PolicyOverrides::Table,
                    PolicyOverrides::TenantId,
                    Tenants::Table,
                    Tenants::Id,
                ))
                .to_owned(),
        )
        .await?;
        // No foreign key to tenants: the trail outlives what it describes.
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(big_integer(AuditLog::Seq).primary_key())
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string_len_null(AuditLog::TenantId, 36))
                .col(text(AuditLog::Actor))
                .col(text(AuditLog::Action))
                .col(text_null(AuditLog::Target))
                .col(text(AuditLog::Outcome))
                .col(string_len(AuditLog::PrevHash, 64))
                .col(string_len(AuditLog::Hash, 64))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_tenant")
                .table(AuditLog::Table)
                .col(AuditLog::TenantId)
                .col(AuditLog::Seq)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditLog::Table.into_iden(),
            PolicyOverrides::Table.into_iden(),
            Operators::Table.into_iden(),
            IdentityProviders::Table.into_iden(),
            LoginStates::Table.into_iden(),
            ConsoleSessions::Table.into_iden(),
            Invitations::Table.into_iden(),
            Members::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        for col in [ApiKeys::MemberId, ApiKeys::CreatedBy] {
            m.alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .drop_column(Tenants::RetentionDays)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
