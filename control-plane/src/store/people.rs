//! People and access: users, members, invitations, API keys, console
//! sessions and pending sign-ins, identity providers, operators and policy
//! overrides. Tenant-owned rows are reached through [`Scoped`]; the rest is
//! what authentication and sign-in need before a tenant is known.

use attache_tenant_policy::{Action, Decision, Override, Role};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};

use super::{Scoped, Store, now};
use crate::entity::{
    api_key, console_session, identity_provider, invitation, login_state, member, operator,
    policy_override, tenant, user, worker,
};

/// A member with the user behind it.
pub(crate) type MemberRow = (member::Model, user::Model);

impl Store {
    pub(crate) async fn tenants(&self) -> Result<Vec<tenant::Model>, DbErr> {
        tenant::Entity::find()
            .order_by_asc(tenant::Column::Name)
            .all(&self.db)
            .await
    }

    pub(crate) async fn workers(&self) -> Result<Vec<worker::Model>, DbErr> {
        worker::Entity::find()
            .order_by_asc(worker::Column::Region)
            .order_by_asc(worker::Column::Id)
            .all(&self.db)
            .await
    }

    pub(crate) async fn user(&self, id: &str) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find_by_id(id.to_string()).one(&self.db).await
    }

    /// The user with this (verified) address, created on first sign-in.
    pub(crate) async fn signed_in_user(
        &self,
        email: &str,
        name: Option<&str>,
    ) -> Result<user::Model, DbErr> {
        let at = now();
        let email = email.to_lowercase();
        if let Some(u) = user::Entity::find()
            .filter(user::Column::Email.eq(email.clone()))
            .one(&self.db)
            .await?
        {
            let mut a: user::ActiveModel = u.into();
            a.last_sign_in_at = Set(Some(at));
            if let Some(n) = name {
                a.name = Set(Some(n.to_string()));
            }
            return a.update(&self.db).await;
        }
        user::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            email: Set(email),
            name: Set(name.map(str::to_string)),
            created_at: Set(at),
            last_sign_in_at: Set(Some(at)),
        }
        .insert(&self.db)
        .await
    }

    pub(crate) async fn member(&self, id: &str) -> Result<Option<member::Model>, DbErr> {
        member::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn member_of(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<member::Model>, DbErr> {
        member::Entity::find()
            .filter(member::Column::TenantId.eq(tenant_id))
            .filter(member::Column::UserId.eq(user_id))
            .one(&self.db)
            .await
    }

    /// Joins `user` to a tenant: by its open invitation for the user's
    /// address if there is one (with the invited role), else with
    /// `fallback` (a verified domain's default) if given.
    pub(crate) async fn join_tenant(
        &self,
        tenant_id: &str,
        user: &user::Model,
        fallback: Option<Role>,
    ) -> Result<Option<member::Model>, DbErr> {
        let at = now();
        let txn = self.db.begin().await?;
        let invite = invitation::Entity::find()
            .filter(invitation::Column::TenantId.eq(tenant_id))
            .filter(invitation::Column::Email.eq(user.email.clone()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(at))
            .order_by_desc(invitation::Column::CreatedAt)
            .one(&txn)
            .await?;
        let role = match (&invite, fallback) {
            (Some(i), _) => i.role.clone(),
            (None, Some(r)) => r.as_str().to_string(),
            (None, None) => return Ok(None),
        };
        if let Some(i) = invite {
            let mut a: invitation::ActiveModel = i.into();
            a.accepted_at = Set(Some(at));
            a.update(&txn).await?;
        }
        let m = member::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            tenant_id: Set(tenant_id.to_string()),
            user_id: Set(user.id.clone()),
            role: Set(role),
            created_at: Set(at),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Some(m))
    }

    pub(crate) async fn insert_session(&self, s: console_session::Model) -> Result<(), DbErr> {
        console_session::ActiveModel::from(s)
            .reset_all()
            .insert(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn session(&self, id: &str) -> Result<Option<console_session::Model>, DbErr> {
        console_session::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn revoke_session(&self, id: &str) -> Result<(), DbErr> {
        console_session::Entity::update_many()
            .col_expr(console_session::Column::RevokedAt, Expr::value(now()))
            .filter(console_session::Column::Id.eq(id))
            .filter(console_session::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn insert_login_state(&self, s: login_state::Model) -> Result<(), DbErr> {
        // Abandoned sign-ins are swept as new ones start.
        login_state::Entity::delete_many()
            .filter(login_state::Column::ExpiresAt.lt(now()))
            .exec(&self.db)
            .await?;
        login_state::ActiveModel::from(s)
            .reset_all()
            .insert(&self.db)
            .await
            .map(|_| ())
    }

    /// Takes a pending sign-in once: the row is deleted, and only the caller
    /// whose delete removed it gets it back, so a replayed `state` finds
    /// nothing.
    pub(crate) async fn take_login_state(
        &self,
        id: &str,
    ) -> Result<Option<login_state::Model>, DbErr> {
        let Some(row) = login_state::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let deleted = login_state::Entity::delete_many()
            .filter(login_state::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok((deleted.rows_affected == 1 && row.expires_at > now()).then_some(row))
    }

    pub(crate) async fn identity_provider(
        &self,
        domain: &str,
    ) -> Result<Option<identity_provider::Model>, DbErr> {
        identity_provider::Entity::find_by_id(domain.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn put_identity_provider(
        &self,
        p: identity_provider::Model,
    ) -> Result<(), DbErr> {
        identity_provider::Entity::insert(identity_provider::ActiveModel::from(p).reset_all())
            .on_conflict(
                OnConflict::column(identity_provider::Column::Domain)
                    .update_columns([
                        identity_provider::Column::Issuer,
                        identity_provider::Column::ClientId,
                        identity_provider::Column::ClientSecretSealed,
                        identity_provider::Column::AllowedDomains,
                        identity_provider::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn delete_identity_provider(&self, domain: &str) -> Result<bool, DbErr> {
        let r = identity_provider::Entity::delete_by_id(domain.to_string())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    pub(crate) async fn is_operator(&self, email: &str) -> Result<bool, DbErr> {
        Ok(operator::Entity::find_by_id(email.to_lowercase())
            .one(&self.db)
            .await?
            .is_some())
    }

    pub(crate) async fn add_operator(&self, email: &str) -> Result<(), DbErr> {
        operator::Entity::insert(operator::ActiveModel {
            email: Set(email.to_lowercase()),
            created_at: Set(now()),
        })
        .on_conflict_do_nothing()
        .exec(&self.db)
        .await
        .map(|_| ())
    }

    pub(crate) async fn remove_operator(&self, email: &str) -> Result<bool, DbErr> {
        let r = operator::Entity::delete_by_id(email.to_lowercase())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    /// A tenant's policy overrides; rows naming roles or actions this build
    /// does not know are skipped (and logged).
    pub(crate) async fn policy_overrides(&self, tenant_id: &str) -> Result<Vec<Override>, DbErr> {
        let rows = policy_override::Entity::find()
            .filter(policy_override::Column::TenantId.eq(tenant_id))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let o = Override {
                    role: Role::parse(&r.role)?,
                    action: Action::parse(&r.action)?,
                    effect: Decision::parse(&r.effect)?,
                };
                Some(o)
            })
            .collect())
    }
}

impl Scoped<'_> {
    pub(crate) async fn members(&self) -> Result<Vec<MemberRow>, DbErr> {
        let rows = member::Entity::find()
            .filter(member::Column::TenantId.eq(self.tenant_id.clone()))
            .find_also_related(user::Entity)
            .order_by_asc(member::Column::CreatedAt)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(m, u)| u.map(|u| (m, u)))
            .collect())
    }

    pub(crate) async fn member(&self, id: &str) -> Result<Option<MemberRow>, DbErr> {
        let row = member::Entity::find_by_id(id.to_string())
            .filter(member::Column::TenantId.eq(self.tenant_id.clone()))
            .find_also_related(user::Entity)
            .one(self.db)
            .await?;
        Ok(row.and_then(|(m, u)| u.map(|u| (m, u))))
    }

    pub(crate) async fn count_owners(&self) -> Result<u64, DbErr> {
        member::Entity::find()
            .filter(member::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(member::Column::Role.eq(Role::Owner.as_str()))
            .count(self.db)
            .await
    }

    pub(crate) async fn set_member_role(&self, id: &str, role: Role) -> Result<(), DbErr> {
        member::Entity::update_many()
            .col_expr(member::Column::Role, Expr::value(role.as_str()))
            .filter(member::Column::Id.eq(id))
            .filter(member::Column::TenantId.eq(self.tenant_id.clone()))
            .exec(self.db)
            .await
            .map(|_| ())
    }

    /// Removes a member, and in the same transaction revokes every console
    /// session and API key that came from the membership.
    pub(crate) async fn remove_member(&self, id: &str) -> Result<bool, DbErr> {
        let at = now();
        let txn = self.db.begin().await?;
        let removed = member::Entity::delete_many()
            .filter(member::Column::Id.eq(id))
            .filter(member::Column::TenantId.eq(self.tenant_id.clone()))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Ok(false);
        }
        console_session::Entity::update_many()
            .col_expr(console_session::Column::RevokedAt, Expr::value(at))
            .filter(console_session::Column::MemberId.eq(id))
            .filter(console_session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(at))
            .filter(api_key::Column::MemberId.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    pub(crate) async fn invitations(&self) -> Result<Vec<invitation::Model>, DbErr> {
        invitation::Entity::find()
            .filter(invitation::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .order_by_desc(invitation::Column::CreatedAt)
            .all(self.db)
            .await
    }

    pub(crate) async fn invite(
        &self,
        email: &str,
        role: Role,
        invited_by: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<invitation::Model, DbErr> {
        let txn = self.db.begin().await?;
        // A new invitation replaces an open one for the same address.
        invitation::Entity::update_many()
            .col_expr(invitation::Column::RevokedAt, Expr::value(now()))
            .filter(invitation::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(invitation::Column::Email.eq(email))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let row = invitation::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            tenant_id: Set(self.tenant_id.clone()),
            email: Set(email.to_string()),
            role: Set(role.as_str().to_string()),
            invited_by: Set(invited_by.to_string()),
            created_at: Set(now()),
            expires_at: Set(expires_at),
            accepted_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(row)
    }

    pub(crate) async fn revoke_invitation(&self, id: &str) -> Result<bool, DbErr> {
        let r = invitation::Entity::update_many()
            .col_expr(invitation::Column::RevokedAt, Expr::value(now()))
            .filter(invitation::Column::Id.eq(id))
            .filter(invitation::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    pub(crate) async fn api_keys(&self) -> Result<Vec<api_key::Model>, DbErr> {
        api_key::Entity::find()
            .filter(api_key::Column::TenantId.eq(self.tenant_id.clone()))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(self.db)
            .await
    }

    pub(crate) async fn api_key(&self, id: &str) -> Result<Option<api_key::Model>, DbErr> {
        api_key::Entity::find_by_id(id.to_string())
            .filter(api_key::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    pub(crate) async fn revoke_api_key(&self, id: &str) -> Result<bool, DbErr> {
        let r = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now()))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    pub(crate) async fn set_override(&self, o: Override) -> Result<(), DbErr> {
        policy_override::Entity::insert(policy_override::ActiveModel {
            tenant_id: Set(self.tenant_id.clone()),
            role: Set(o.role.as_str().to_string()),
            action: Set(o.action.as_str().to_string()),
            effect: Set(o.effect.as_str().to_string()),
            updated_at: Set(now()),
        })
        .on_conflict(
            OnConflict::columns([
                policy_override::Column::TenantId,
                policy_override::Column::Role,
                policy_override::Column::Action,
            ])
            .update_columns([
                policy_override::Column::Effect,
                policy_override::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(self.db)
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete_override(&self, role: Role, action: Action) -> Result<bool, DbErr> {
        let r = policy_override::Entity::delete_many()
            .filter(policy_override::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(policy_override::Column::Role.eq(role.as_str()))
            .filter(policy_override::Column::Action.eq(action.as_str()))
            .exec(self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    pub(crate) async fn set_retention(&self, days: Option<i32>) -> Result<(), DbErr> {
        tenant::Entity::update_many()
            .col_expr(tenant::Column::RetentionDays, Expr::value(days))
            .filter(tenant::Column::Id.eq(self.tenant_id.clone()))
            .exec(self.db)
            .await
            .map(|_| ())
    }
}
