//! API keys of a tenant: listing them, issuing one and revoking one.
//!
//! Every field asks the guard first. A key's secret is returned once, by
//! `createApiKey`; only its hash is stored, and nothing here may return
//! it again. A key never gets a role higher than its issuer could give.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use attache_tenant_policy::{Action, Role};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use super::members::{GqlRole, may_give, stored_role};
use crate::audit::note_target;
use crate::entity::api_key;
use crate::store::now;

const MAX_NAME: usize = 100;
const MAX_KEY_DAYS: i32 = 3650;

/// An API key as listed: never its secret.
#[derive(SimpleObject)]
pub(crate) struct ApiKey {
    #[graphql(owned)]
    pub(crate) id: ID,
    /// What the key starts with (`atk_<id>_`), to recognise it.
    prefix: String,
    name: String,
    role: GqlRole,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// Neither revoked nor expired.
    active: bool,
}

impl ApiKey {
    pub(crate) fn of(k: api_key::Model) -> Result<ApiKey, ApiError> {
        let at = now();
        Ok(ApiKey {
            prefix: format!("atk_{}_", k.id),
            active: k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > at),
            id: ID(k.id),
            name: k.name,
            role: GqlRole::stored(&k.role)?,
            created_at: k.created_at,
            created_by: k.created_by,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        })
    }
}

/// A new key: its secret is shown here, once.
#[derive(SimpleObject)]
pub(crate) struct CreatedApiKey {
    api_key: ApiKey,
    secret: String,
}

#[derive(Default)]
pub(crate) struct ApiKeysQuery;

#[Object]
impl ApiKeysQuery {
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let (_, _, scoped) = guard(ctx, Action::ReadApiKeys)?;
        let rows = scoped.api_keys().await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(ApiKey::of).collect::<Result<_, _>>()?)
    }
}

#[derive(Default)]
pub(crate) struct ApiKeysMutation;

#[Object]
impl ApiKeysMutation {
    /// Issues an API key with a role no higher than the caller could give,
    /// expiring after `expiresInDays` (no expiry if null). A key issued from
    /// a console session belongs to that membership and dies with it.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: GqlRole,
        expires_in_days: Option<i32>,
    ) -> Result<CreatedApiKey> {
        let (state, p, _) = guard(ctx, Action::ManageApiKeys)?;
        let role = Role::from(role);
        if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(ApiError::BadInput("name must be 1 to 100 characters".into()).into());
        }
        may_give(ctx, role)?;
        let expires = match expires_in_days {
            None => None,
            Some(d) if (1..=MAX_KEY_DAYS).contains(&d) => {
                Some(now() + chrono::Duration::days(d.into()))
            }
            Some(_) => {
                return Err(ApiError::BadInput(format!(
                    "expiresInDays must be between 1 and {MAX_KEY_DAYS}"
                ))
                .into());
            }
        };
        let actor = p.actor.label();
        let (row, secret) = crate::auth::mint_api_key(
            &p.tenant_id,
            name.trim(),
            role,
            expires,
            Some((&actor, p.member_id.as_deref())),
        );
        note_target(ctx, format!("api_key:{}", row.id));
        state
            .store
            .insert_api_key(row.clone())
            .await
            .map_err(ApiError::from)?;
        Ok(CreatedApiKey {
            api_key: ApiKey::of(row)?,
            secret,
        })
    }

    /// Revokes a key; it is refused from the next request on.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let (state, _, scoped) = guard(ctx, Action::ManageApiKeys)?;
        note_target(ctx, format!("api_key:{}", id.0));
        let key = scoped
            .api_key(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let role = stored_role(&key.role)?;
        may_give(ctx, role)?;
        scoped.revoke_api_key(&id).await.map_err(ApiError::from)?;
        state.policies.credentials().changed().await;
        let key = scoped
            .api_key(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(ApiKey::of(key)?)
    }
}
