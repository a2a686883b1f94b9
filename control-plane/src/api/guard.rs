//! The one authorization check. Every resolver calls [`guard`] (or, for
//! `me` alone, [`guard_signed_in`]) before any other work: it checks the
//! caller's role for the action and hands back the tenant-scoped store,
//! the only door to a tenant's data.
//!
//! Nothing in the API may read or change data without going through here
//! first, and nothing here may widen what a principal is allowed.

use async_graphql::Context;
use attache_tenant_policy::Action;

use super::error::ApiError;
use crate::AppState;
use crate::access::Principal;
use crate::store::Scoped;

/// The caller is signed in and their role allows `action`; the store comes
/// back scoped to their own tenant.
pub(crate) fn guard<'a>(
    ctx: &Context<'a>,
    action: Action,
) -> Result<(&'a AppState, &'a Principal, Scoped<'a>), ApiError> {
    let (state, principal) = guard_signed_in(ctx)?;
    if !principal.allows(action) {
        return Err(ApiError::Forbidden);
    }
    Ok((state, principal, state.store.scoped(&principal.tenant_id)))
}

/// The caller's role allows at least one of `actions`: for a lookup whose
/// object type is known only once it is found (`node`), which then asks
/// [`guard`] for that type's own action.
pub(crate) fn guard_any<'a>(ctx: &Context<'a>, actions: &[Action]) -> Result<Scoped<'a>, ApiError> {
    let (state, principal) = guard_signed_in(ctx)?;
    if !actions.iter().any(|a| principal.allows(*a)) {
        return Err(ApiError::Forbidden);
    }
    Ok(state.store.scoped(&principal.tenant_id))
}

/// The part of the guard that needs no action: a caller is signed in. Only
/// `me` stops here.
pub(crate) fn guard_signed_in<'a>(
    ctx: &Context<'a>,
) -> Result<(&'a AppState, &'a Principal), ApiError> {
    let state = ctx.data_unchecked::<AppState>();
    let principal = ctx
        .data_opt::<Principal>()
        .ok_or(ApiError::Unauthenticated)?;
    Ok((state, principal))
}
