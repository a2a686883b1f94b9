//! Members and invitations of a tenant, and the roles they hold.
//!
//! Every field asks the guard first. Role changes go through one more
//! rule: nobody gives (or takes away) a role they could not give
//! ([`Role::may_assign`], checked by [`may_give`]), and the last owner
//! stays.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use attache_tenant_policy::{Action, Role};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use crate::audit::note_target;
use crate::entity::invitation;
use crate::store::{MemberRow, Scoped, now};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role", remote = "attache_tenant_policy::Role")]
pub(crate) enum GqlRole {
    Owner,
    Admin,
    Developer,
    Viewer,
    Auditor,
}

/// A role as stored in a row; a name we do not know is our own fault.
pub(crate) fn stored_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| ApiError::internal(format!("stored role {s}")))
}

impl GqlRole {
    pub(crate) fn stored(s: &str) -> Result<GqlRole, ApiError> {
        stored_role(s).map(GqlRole::from)
    }
}

#[derive(SimpleObject)]
pub(crate) struct Member {
    #[graphql(owned)]
    pub(crate) id: ID,
    email: String,
    name: Option<String>,
    role: GqlRole,
    joined_at: DateTime<Utc>,
    last_sign_in_at: Option<DateTime<Utc>>,
}

impl Member {
    pub(crate) fn of((m, u): MemberRow) -> Result<Member, ApiError> {
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
    #[graphql(owned)]
    pub(crate) id: ID,
    email: String,
    role: GqlRole,
    invited_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Invitation {
    pub(crate) fn of(i: invitation::Model) -> Result<Invitation, ApiError> {
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

pub(crate) fn check_email(email: &str) -> Result<String, ApiError> {
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

/// The caller's own role may give (or take away) `target`.
pub(crate) fn may_give(ctx: &Context<'_>, target: Role) -> Result<(), ApiError> {
    let principal = ctx.data_unchecked::<crate::access::Principal>();
    match principal.role() {
        Some(r) if r == target || r.may_assign(target) => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

/// A member of the caller's tenant, with the role they hold, when the
/// caller could give that role; NOT_FOUND or FORBIDDEN otherwise.
async fn manageable_member(
    ctx: &Context<'_>,
    scoped: &Scoped<'_>,
    id: &str,
) -> Result<(MemberRow, Role), ApiError> {
    let (m, u) = scoped.member(id).await?.ok_or(ApiError::NotFound)?;
    let current = stored_role(&m.role)?;
    may_give(ctx, current)?;
    Ok(((m, u), current))
}

#[derive(Default)]
pub(crate) struct MembersQuery;

#[Object]
impl MembersQuery {
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
}

#[derive(Default)]
pub(crate) struct MembersMutation;

#[Object]
impl MembersMutation {
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
        let role = Role::from(role);
        let email = check_email(&email)?;
        note_target(ctx, format!("invitation:{email}"));
        may_give(ctx, role)?;
        let ttl = chrono::Duration::from_std(state.config.invitation_ttl).unwrap_or_default();
        let row = scoped
            .invite(&email, role, &p.actor.label(), now() + ttl)
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
        let (state, _, scoped) = guard(ctx, Action::ManageMembers)?;
        let role = Role::from(role);
        note_target(ctx, format!("member:{}", id.0));
        let ((m, u), current) = manageable_member(ctx, &scoped, &id).await?;
        may_give(ctx, role)?;
        if current == Role::Owner
            && role != Role::Owner
            && scoped.count_owners().await.map_err(ApiError::from)? <= 1
        {
            return Err(ApiError::BadInput("a tenant keeps at least one owner".into()).into());
        }
        scoped
            .set_member_role(&id, role)
            .await
            .map_err(ApiError::from)?;
        // The member's keys may now be above what they could issue.
        state.policies.credentials().changed().await;
        let mut m = m;
        m.role = role.as_str().to_string();
        Ok(Member::of((m, u))?)
    }

    /// Removes a member. Their console sessions and the API keys they
    /// issued stop working at once.
    async fn remove_member(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (state, _, scoped) = guard(ctx, Action::ManageMembers)?;
        note_target(ctx, format!("member:{}", id.0));
        let (_, current) = manageable_member(ctx, &scoped, &id).await?;
        if current == Role::Owner && scoped.count_owners().await.map_err(ApiError::from)? <= 1 {
            return Err(ApiError::BadInput("a tenant keeps at least one owner".into()).into());
        }
        if !scoped.remove_member(&id).await.map_err(ApiError::from)? {
            return Err(ApiError::NotFound.into());
        }
        state.policies.credentials().changed().await;
        Ok(true)
    }
}
