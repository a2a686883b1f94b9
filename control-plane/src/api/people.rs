//! Members, invitations, API keys, sign-in settings, policy overrides,
//! retention and the audit log; and the operator's tenants and fleet.
//!
//! Every field asks the guard first. Role changes go through one more
//! rule: nobody gives (or takes away) a role they could not give
//! ([`Role::may_assign`]), and the last owner stays.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use attache_tenant_policy::{
    Action, Decision, Override, Role, validate_region, validate_tenant_name,
};
use chrono::{DateTime, Utc};

use super::ApiError;
use super::schema::{guard, guard_signed_in};
use crate::audit::{self, note_target};
use crate::entity::{api_key, invitation, tenant};
use crate::store::{MemberRow, now};

const MAX_NAME: usize = 100;
const MAX_KEY_DAYS: i32 = 3650;
const MAX_RETENTION_DAYS: i32 = 3650;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role")]
pub(crate) enum GqlRole {
    Owner,
    Admin,
    Developer,
    Viewer,
    Auditor,
}

impl GqlRole {
    pub(crate) fn role(self) -> Role {
        match self {
            GqlRole::Owner => Role::Owner,
            GqlRole::Admin => Role::Admin,
            GqlRole::Developer => Role::Developer,
            GqlRole::Viewer => Role::Viewer,
            GqlRole::Auditor => Role::Auditor,
        }
    }

    pub(crate) fn of(r: Role) -> GqlRole {
        match r {
            Role::Owner => GqlRole::Owner,
            Role::Admin => GqlRole::Admin,
            Role::Developer => GqlRole::Developer,
            Role::Viewer => GqlRole::Viewer,
            Role::Auditor => GqlRole::Auditor,
        }
    }

    fn stored(s: &str) -> Result<GqlRole, ApiError> {
        Role::parse(s)
            .map(GqlRole::of)
            .ok_or_else(|| ApiError::internal(format!("stored role {s}")))
    }
}

/// The tenant actions a policy override can name.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PolicyAction")]
pub(crate) enum GqlAction {
    ReadTenant,
    ReadBots,
    CreateBot,
    LeaveBot,
    ReadWebhooks,
    ManageWebhooks,
    ManageSettings,
    ReadMembers,
    ManageMembers,
    ReadApiKeys,
    ManageApiKeys,
    ReadAudit,
    ManageSso,
    ManagePolicy,
}

impl GqlAction {
    fn action(self) -> Action {
        match self {
            GqlAction::ReadTenant => Action::ReadTenant,
            GqlAction::ReadBots => Action::ReadBots,
            GqlAction::CreateBot => Action::CreateBot,
            GqlAction::LeaveBot => Action::LeaveBot,
            GqlAction::ReadWebhooks => Action::ReadWebhooks,
            GqlAction::ManageWebhooks => Action::ManageWebhooks,
            GqlAction::ManageSettings => Action::ManageSettings,
            GqlAction::ReadMembers => Action::ReadMembers,
            GqlAction::ManageMembers => Action::ManageMembers,
            GqlAction::ReadApiKeys => Action::ReadApiKeys,
            GqlAction::ManageApiKeys => Action::ManageApiKeys,
            GqlAction::ReadAudit => Action::ReadAudit,
            GqlAction::ManageSso => Action::ManageSso,
            GqlAction::ManagePolicy => Action::ManagePolicy,
        }
    }

    fn of(a: Action) -> Option<GqlAction> {
        Some(match a {
            Action::ReadTenant => GqlAction::ReadTenant,
            Action::ReadBots => GqlAction::ReadBots,
            Action::CreateBot => GqlAction::CreateBot,
            Action::LeaveBot => GqlAction::LeaveBot,
            Action::ReadWebhooks => GqlAction::ReadWebhooks,
            Action::ManageWebhooks => GqlAction::ManageWebhooks,
            Action::ManageSettings => GqlAction::ManageSettings,
            Action::ReadMembers => GqlAction::ReadMembers,
            Action::ManageMembers => GqlAction::ManageMembers,
            Action::ReadApiKeys => GqlAction::ReadApiKeys,
            Action::ManageApiKeys => GqlAction::ManageApiKeys,
            Action::ReadAudit => GqlAction::ReadAudit,
            Action::ManageSso => GqlAction::ManageSso,
            Action::ManagePolicy => GqlAction::ManagePolicy,
            Action::ManageTenants | Action::ReadFleet => return None,
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PolicyEffect")]
pub(crate) enum GqlEffect {
    Allow,
    Deny,
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

#[derive(SimpleObject)]
pub(crate) struct Member {
    id: ID,
    email: String,
    name: Option<String>,
    role: GqlRole,
    joined_at: DateTime<Utc>,
    last_sign_in_at: Option<DateTime<Utc>>,
}

impl Member {
    fn of((m, u): MemberRow) -> Result<Member, ApiError> {
        Ok(Member {
            id: ID(m.id),
            email: u.email,
            name: u.name,
            role: GqlRole::stored(&m.role)?,
            joined_at: m.created_at,
            last_sign_in_at: u.last_sign_in_at,
        })
    }
}

#[derive(SimpleObject)]
pub(crate) struct Invitation {
    id: ID,
    email: String,
    role: GqlRole,
    invited_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Invitation {
    fn of(i: invitation::Model) -> Result<Invitation, ApiError> {
        Ok(Invitation {
            id: ID(i.id),
            email: i.email,
            role: GqlRole::stored(&i.role)?,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        })
    }
}

/// An API key as listed: never its secret.
#[derive(SimpleObject)]
pub(crate) struct ApiKey {
    id: ID,
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
    fn of(k: api_key::Model) -> Result<ApiKey, ApiError> {
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

#[derive(SimpleObject)]
pub(crate) struct AuditEntry {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: Option<String>,
    /// `ok`, or the error code the action ended with (`FORBIDDEN`, …).
    outcome: String,
    hash: String,
}

impl From<audit::Entry> for AuditEntry {
    fn from(e: audit::Entry) -> AuditEntry {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            hash: e.hash,
        }
    }
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

#[derive(SimpleObject)]
pub(crate) struct PolicyOverride {
    role: GqlRole,
    action: GqlAction,
    effect: GqlEffect,
}

#[derive(SimpleObject)]
pub(crate) struct TenantSettings {
    /// Days an ended bot's transcript, chat and recording are kept; null
    /// keeps them until deleted.
    retention_days: Option<i32>,
}

#[derive(SimpleObject)]
pub(crate) struct TenantSummary {
    id: ID,
    name: String,
    region: String,
    created_at: DateTime<Utc>,
    members: u64,
}

#[derive(SimpleObject)]
pub(crate) struct FleetWorker {
    id: ID,
    hostname: String,
    /// `connected`, `reconnecting`, `lost`, or `revoked`.
    state: String,
    draining: bool,
    capacity: i32,
    active_bots: i32,
    rss_mib: i32,
    /// The worker's software version, as it said when it connected; null
    /// while it has no link to the replica answering.
    software_version: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub(crate) struct Region {
    name: String,
    workers: Vec<FleetWorker>,
    capacity: i32,
    active_bots: i32,
}

#[derive(SimpleObject)]
pub(crate) struct CreatedTenant {
    tenant: TenantSummary,
    /// The owner's invitation: they sign in through the tenant's identity
    /// provider once it is set.
    owner_invitation: Invitation,
}

fn check_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 320
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(ApiError::BadInput(format!(
            "{email:?} is not an email address"
        )))
    }
}

/// How the audit log names a policy override.
fn policy_target(role: GqlRole, action: GqlAction) -> String {
    format!(
        "policy:{}:{}",
        role.role().as_str(),
        action.action().as_str()
    )
}

fn may_give(ctx: &Context<'_>, target: Role) -> Result<(), ApiError> {
    let principal = ctx.data_unchecked::<crate::access::Principal>();
    match principal.role() {
        Some(r) if r == target || r.may_assign(target) => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

#[derive(Default)]
pub(crate) struct PeopleQuery;

#[Object]
impl PeopleQuery {
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
            role: p.role().map(GqlRole::of),
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

    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Member>> {
        let (_, _, scoped) = guard(ctx, Action::ReadMembers)?;
        let rows = scoped.members().await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Member::of).collect::<Result<_, _>>()?)
    }

    /// Open invitations, newest first.
    async fn invitations(&self, ctx: &Context<'_>) -> Result<Vec<Invitation>> {
        let (_, _, scoped) = guard(ctx, Action::ReadMembers)?;
        let rows = scoped.invitations().await.map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(Invitation::of)
            .collect::<Result<_, _>>()?)
    }

    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let (_, _, scoped) = guard(ctx, Action::ReadApiKeys)?;
        let rows = scoped.api_keys().await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(ApiKey::of).collect::<Result<_, _>>()?)
    }

    /// The caller's audit trail (the tenant's, or the platform's for the
    /// operator), newest first; `before` pages back by sequence number.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>> {
        let (state, p, _) = guard(ctx, Action::ReadAudit)?;
        if !(1..=500).contains(&first) {
            return Err(ApiError::BadInput("first must be between 1 and 500".into()).into());
        }
        let trail = p.audit_tenant();
        let rows = audit::page(state.store.db(), trail.as_deref(), before, first as u64)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

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

    async fn policy_overrides(&self, ctx: &Context<'_>) -> Result<Vec<PolicyOverride>> {
        let (state, p, _) = guard(ctx, Action::ManagePolicy)?;
        let rows = state
            .store
            .policy_overrides(&p.tenant_id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .filter_map(|o| {
                Some(PolicyOverride {
                    role: GqlRole::of(o.role),
                    action: GqlAction::of(o.action)?,
                    effect: match o.effect {
                        Decision::Allow => GqlEffect::Allow,
                        Decision::Deny => GqlEffect::Deny,
                    },
                })
            })
            .collect())
    }

    async fn tenant_settings(&self, ctx: &Context<'_>) -> Result<TenantSettings> {
        let (_, _, scoped) = guard(ctx, Action::ManageSettings)?;
        let t = scoped
            .tenant()
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(TenantSettings {
            retention_days: t.retention_days,
        })
    }
}

#[derive(Default)]
pub(crate) struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Invites someone by email with a role. They join when they first sign
    /// in through the tenant's identity provider with that (verified)
    /// address. A new invitation replaces an open one for the address.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        email: String,
        role: GqlRole,
    ) -> Result<Invitation> {
        let (state, p, scoped) = guard(ctx, Action::ManageMembers)?;
        let email = check_email(&email)?;
        note_target(ctx, format!("invitation:{email}"));
        may_give(ctx, role.role())?;
        let ttl = chrono::Duration::from_std(state.config.invitation_ttl).unwrap_or_default();
        let row = scoped
            .invite(&email, role.role(), &p.actor.label(), now() + ttl)
            .await
            .map_err(ApiError::from)?;
        Ok(Invitation::of(row)?)
    }

    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (_, _, scoped) = guard(ctx, Action::ManageMembers)?;
        note_target(ctx, format!("invitation:{}", id.0));
        if !scoped
            .revoke_invitation(&id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound.into());
        }
        Ok(true)
    }

    /// Changes a member's role. Takes effect on their next request, for
    /// their console session and their keys alike.
    async fn set_member_role(&self, ctx: &Context<'_>, id: ID, role: GqlRole) -> Result<Member> {
        let (_, _, scoped) = guard(ctx, Action::ManageMembers)?;
        note_target(ctx, format!("member:{}", id.0));
        let (m, u) = scoped
            .member(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let current = Role::parse(&m.role).ok_or_else(|| ApiError::internal("stored role"))?;
        may_give(ctx, current)?;
        may_give(ctx, role.role())?;
        if current == Role::Owner
            && role.role() != Role::Owner
            && scoped.count_owners().await.map_err(ApiError::from)? <= 1
        {
            return Err(ApiError::BadInput("a tenant keeps at least one owner".into()).into());
        }
        scoped
            .set_member_role(&id, role.role())
            .await
            .map_err(ApiError::from)?;
        let mut m = m;
        m.role = role.role().as_str().to_string();
        Ok(Member::of((m, u))?)
    }

    /// Removes a member. Their console sessions and the API keys they
    /// issued stop working at once.
    async fn remove_member(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (_, _, scoped) = guard(ctx, Action::ManageMembers)?;
        note_target(ctx, format!("member:{}", id.0));
        let (m, _) = scoped
            .member(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let current = Role::parse(&m.role).ok_or_else(|| ApiError::internal("stored role"))?;
        may_give(ctx, current)?;
        if current == Role::Owner && scoped.count_owners().await.map_err(ApiError::from)? <= 1 {
            return Err(ApiError::BadInput("a tenant keeps at least one owner".into()).into());
        }
        if !scoped.remove_member(&id).await.map_err(ApiError::from)? {
            return Err(ApiError::NotFound.into());
        }
        Ok(true)
    }

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
        if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(ApiError::BadInput("name must be 1 to 100 characters".into()).into());
        }
        may_give(ctx, role.role())?;
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
            role.role(),
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
        let (_, _, scoped) = guard(ctx, Action::ManageApiKeys)?;
        note_target(ctx, format!("api_key:{}", id.0));
        let key = scoped
            .api_key(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let role = Role::parse(&key.role).ok_or_else(|| ApiError::internal("stored role"))?;
        may_give(ctx, role)?;
        scoped.revoke_api_key(&id).await.map_err(ApiError::from)?;
        let key = scoped
            .api_key(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(ApiKey::of(key)?)
    }

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

    /// Grants or denies a role an action in this tenant, over the defaults.
    /// A denial reaches the roles that inherit it (admin and owner inherit
    /// developer, which inherits viewer).
    async fn set_policy_override(
        &self,
        ctx: &Context<'_>,
        role: GqlRole,
        action: GqlAction,
        effect: GqlEffect,
    ) -> Result<PolicyOverride> {
        let (state, p, scoped) = guard(ctx, Action::ManagePolicy)?;
        note_target(ctx, policy_target(role, action));
        let o = Override {
            role: role.role(),
            action: action.action(),
            effect: match effect {
                GqlEffect::Allow => Decision::Allow,
                GqlEffect::Deny => Decision::Deny,
            },
        };
        o.validate()
            .map_err(|e| ApiError::BadInput(e.to_string()))?;
        scoped.set_override(o).await.map_err(ApiError::from)?;
        state.policies.invalidate(&p.tenant_id);
        Ok(PolicyOverride {
            role,
            action,
            effect,
        })
    }

    async fn delete_policy_override(
        &self,
        ctx: &Context<'_>,
        role: GqlRole,
        action: GqlAction,
    ) -> Result<bool> {
        let (state, p, scoped) = guard(ctx, Action::ManagePolicy)?;
        note_target(ctx, policy_target(role, action));
        let removed = scoped
            .delete_override(role.role(), action.action())
            .await
            .map_err(ApiError::from)?;
        state.policies.invalidate(&p.tenant_id);
        Ok(removed)
    }

    /// How long ended bots' transcripts, chat and recordings are kept (null:
    /// until deleted).
    async fn set_retention(&self, ctx: &Context<'_>, days: Option<i32>) -> Result<TenantSettings> {
        let (_, _, scoped) = guard(ctx, Action::ManageSettings)?;
        note_target(ctx, "retention");
        if let Some(d) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&d)
        {
            return Err(ApiError::BadInput(format!(
                "days must be between 1 and {MAX_RETENTION_DAYS}"
            ))
            .into());
        }
        scoped.set_retention(days).await.map_err(ApiError::from)?;
        Ok(TenantSettings {
            retention_days: days,
        })
    }
}

#[derive(Default)]
pub(crate) struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// Every tenant (operator only).
    async fn tenants(&self, ctx: &Context<'_>) -> Result<Vec<TenantSummary>> {
        let (state, _, _) = guard(ctx, Action::ManageTenants)?;
        let rows = state.store.tenants().await.map_err(ApiError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for t in rows {
            out.push(summary(state, t).await?);
        }
        Ok(out)
    }

    /// Regions with their workers and load (operator only).
    async fn regions(&self, ctx: &Context<'_>) -> Result<Vec<Region>> {
        let (state, _, _) = guard(ctx, Action::ReadFleet)?;
        let workers = state.store.workers().await.map_err(ApiError::from)?;
        let live = state.links.views();
        let mut regions: Vec<Region> = Vec::new();
        for w in workers {
            let view = live.get(&w.id);
            let connected = view.is_some_and(|v| v.connected);
            let draining = view.is_some_and(|v| v.draining);
            let load = view.map(|v| v.load);
            let state_name = if w.revoked_at.is_some() {
                "revoked".to_string()
            } else if connected {
                "connected".to_string()
            } else {
                w.state.as_str().to_string()
            };
            let worker = FleetWorker {
                id: ID(w.id.clone()),
                hostname: w.hostname.clone(),
                state: state_name,
                draining,
                capacity: load
                    .as_ref()
                    .map(|l| l.capacity as i32)
                    .unwrap_or(w.capacity),
                active_bots: load.as_ref().map(|l| l.active_bots as i32).unwrap_or(0),
                rss_mib: load.as_ref().map(|l| l.rss_mib as i32).unwrap_or(0),
                software_version: view
                    .filter(|v| v.connected)
                    .map(|v| v.software_version.clone()),
                last_seen_at: w.last_seen_at,
            };
            match regions.iter_mut().find(|r| r.name == w.region) {
                Some(r) => r.workers.push(worker),
                None => regions.push(Region {
                    name: w.region.clone(),
                    workers: vec![worker],
                    capacity: 0,
                    active_bots: 0,
                }),
            }
        }
        for r in &mut regions {
            let live: Vec<&FleetWorker> = r
                .workers
                .iter()
                .filter(|w| w.state == "connected")
                .collect();
            r.capacity = live.iter().map(|w| w.capacity).sum();
            r.active_bots = live.iter().map(|w| w.active_bots).sum();
        }
        Ok(regions)
    }
}

async fn summary(state: &crate::AppState, t: tenant::Model) -> Result<TenantSummary, ApiError> {
    let members = state.store.scoped(&t.id).members().await?.len() as u64;
    Ok(TenantSummary {
        id: ID(t.id),
        name: t.name,
        region: t.region,
        created_at: t.created_at,
        members,
    })
}

#[derive(Default)]
pub(crate) struct PlatformMutation;

#[Object]
impl PlatformMutation {
    /// Creates a tenant and invites its first owner (operator only).
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        name: String,
        region: String,
        owner_email: String,
    ) -> Result<CreatedTenant> {
        let (state, p, _) = guard(ctx, Action::ManageTenants)?;
        note_target(ctx, format!("tenant:{name}"));
        validate_tenant_name(&name).map_err(|e| ApiError::BadInput(e.to_string()))?;
        validate_region(&region).map_err(|e| ApiError::BadInput(e.to_string()))?;
        let email = check_email(&owner_email)?;
        if state
            .store
            .tenant_by_name(&name)
            .await
            .map_err(ApiError::from)?
            .is_some()
        {
            return Err(
                ApiError::BadInput(format!("a tenant named {name:?} already exists")).into(),
            );
        }
        let t = state
            .store
            .insert_tenant(tenant::Model {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                region,
                created_at: now(),
                retention_days: None,
            })
            .await
            .map_err(ApiError::from)?;
        note_target(ctx, format!("tenant:{}", t.id));
        let ttl = chrono::Duration::from_std(state.config.invitation_ttl).unwrap_or_default();
        let invite = state
            .store
            .scoped(&t.id)
            .invite(&email, Role::Owner, &p.actor.label(), now() + ttl)
            .await
            .map_err(ApiError::from)?;
        Ok(CreatedTenant {
            tenant: summary(state, t).await?,
            owner_invitation: Invitation::of(invite)?,
        })
    }
}
