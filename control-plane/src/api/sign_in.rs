//! Who is asking, and how a tenant's members sign in: `viewer` (the API
//! key's tenant and role), `me` (any signed-in caller, with what they may
//! do), and the tenant's identity provider for console sign-in.
//!
//! `me` is the one field that needs no action, only a signed-in caller;
//! everything else asks the guard for its action first. The identity
//! provider's client secret is write-only: stored sealed, never returned.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, Result, SimpleObject};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::{guard, guard_signed_in};
use super::members::GqlRole;
use crate::access::Actor;
use crate::audit::note_target;
use crate::store::now;

#[derive(SimpleObject)]
pub(crate) struct Tenant {
    id: ID,
    name: String,
    region: String,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub(crate) struct Viewer {
    role: String,
    /// The key asking, when a key asks (not a console session).
    api_key_id: Option<String>,
}

/// Who is asking.
#[derive(SimpleObject)]
pub(crate) struct Me {
    /// As the audit log names it: `user:<email>` or `key:<id>`.
    actor: String,
    /// Null for the operator.
    role: Option<GqlRole>,
    operator: bool,
    tenant_id: Option<ID>,
    tenant_name: Option<String>,
    /// What this caller may do, by policy action name (`create_bot`, …).
    permissions: Vec<String>,
}

/// A tenant's console sign-in. The client secret is write-only.
#[derive(SimpleObject)]
pub(crate) struct IdentityProvider {
    issuer: String,
    client_id: String,
    allowed_domains: Vec<String>,
    /// What to register at the provider as the redirect URI.
    redirect_uri: String,
    /// Where members start signing in.
    sign_in_url: String,
    updated_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub(crate) struct IdentityProviderInput {
    issuer: String,
    client_id: String,
    client_secret: String,
    /// Verified addresses in these domains join as viewers without an
    /// invitation.
    #[graphql(default)]
    allowed_domains: Vec<String>,
}

#[ComplexObject]
impl Viewer {
    /// The tenant the caller acts in (read only when asked for).
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let (_, _, scoped) = guard(ctx, Action::ReadTenant)?;
        let t = scoped
            .tenant()
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(Tenant {
            id: ID(t.id),
            name: t.name,
            region: t.region,
        })
    }
}

#[derive(Default)]
pub(crate) struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Who the API key belongs to.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let (_, principal, _) = guard(ctx, Action::ReadTenant)?;
        Ok(Viewer {
            role: principal
                .role()
                .map(|r| r.as_str())
                .unwrap_or_default()
                .to_string(),
            api_key_id: match &principal.actor {
                Actor::Key { id } => Some(id.clone()),
                Actor::User { .. } => None,
            },
        })
    }
}

#[derive(Default)]
pub(crate) struct MeQuery;

#[Object]
impl MeQuery {
    /// Who is asking and what they may do. Every signed-in caller may ask.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let (state, p) = guard_signed_in(ctx)?;
        let tenant = if p.is_operator() {
            None
        } else {
            state
                .store
                .scoped(&p.tenant_id)
                .tenant()
                .await
                .map_err(ApiError::from)?
        };
        Ok(Me {
            actor: p.actor.label(),
            role: p.role().map(GqlRole::from),
            operator: p.is_operator(),
            tenant_id: tenant.as_ref().map(|t| ID(t.id.clone())),
            tenant_name: tenant.map(|t| t.name),
            permissions: Action::ALL
                .into_iter()
                .filter(|a| p.allows(*a))
                .map(|a| a.as_str().to_string())
                .collect(),
        })
    }
}

#[derive(Default)]
pub(crate) struct IdentityProviderQuery;

#[Object]
impl IdentityProviderQuery {
    async fn identity_provider(&self, ctx: &Context<'_>) -> Result<Option<IdentityProvider>> {
        let (state, p, scoped) = guard(ctx, Action::ManageSso)?;
        let tenant = scoped.tenant().await.map_err(ApiError::from)?;
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let row = state
            .store
            .identity_provider(&p.tenant_id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(|r| IdentityProvider {
            issuer: r.issuer,
            client_id: r.client_id,
            allowed_domains: r
                .allowed_domains
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
            redirect_uri: format!("{}/console/callback", state.public_url),
            sign_in_url: format!("{}/console/login?tenant={}", state.public_url, tenant.name),
            updated_at: r.updated_at,
        }))
    }
}

#[derive(Default)]
pub(crate) struct IdentityProviderMutation;

#[Object]
impl IdentityProviderMutation {
    /// Sets the tenant's identity provider for console sign-in. The client
    /// secret is stored sealed with the tenant's key and never shown again.
    async fn set_identity_provider(
        &self,
        ctx: &Context<'_>,
        input: IdentityProviderInput,
    ) -> Result<bool> {
        let (state, p, _) = guard(ctx, Action::ManageSso)?;
        note_target(ctx, "identity_provider");
        let issuer = crate::webhooks::check_url(&input.issuer, state.config.sso_allow_private)
            .map_err(|e| ApiError::BadInput(format!("issuer: {e}")))?;
        for (field, v) in [
            ("clientId", &input.client_id),
            ("clientSecret", &input.client_secret),
        ] {
            if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
                return Err(
                    ApiError::BadInput(format!("{field} must be 1 to 1024 characters")).into(),
                );
            }
        }
        let mut domains = Vec::new();
        for d in &input.allowed_domains {
            let d = d.trim().to_lowercase();
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.contains('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Err(ApiError::BadInput(format!("{d:?} is not a domain")).into());
            }
            domains.push(d);
        }
        let sealed = state
            .keys
            .seal_idp_secret(&p.tenant_id, &input.client_secret)
            .await
            .map_err(ApiError::internal)?;
        state
            .store
            .put_identity_provider(crate::entity::identity_provider::Model {
                domain: p.tenant_id.clone(),
                issuer: issuer.as_str().trim_end_matches('/').to_string(),
                client_id: input.client_id,
                client_secret_sealed: sealed,
                allowed_domains: domains.join(","),
                updated_at: now(),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(true)
    }

    async fn delete_identity_provider(&self, ctx: &Context<'_>) -> Result<bool> {
        let (state, p, _) = guard(ctx, Action::ManageSso)?;
        note_target(ctx, "identity_provider");
        Ok(state
            .store
            .delete_identity_provider(&p.tenant_id)
            .await
            .map_err(ApiError::from)?)
    }
}
