//! The key a bot's sealed rows open with, for the API (the fields and their
//! contexts are `crate::sealing`'s).
//!
//! The key is fetched through the guard, so nothing is opened for a caller
//! who may not read bots; and what is opened is only ever returned to that
//! caller, never logged.

use async_graphql::Context;
use attache_protocol::DataKey;
use attache_tenant_policy::Action;

use super::error::ApiError;
use super::guard::guard;
use crate::entity::bot;

/// The key a bot's sealed rows open with; `None` if it never had one (an
/// older version created it and never dispatched it, so nothing of it is
/// sealed).
pub(crate) async fn bot_key(
    ctx: &Context<'_>,
    b: &bot::Model,
) -> Result<Option<DataKey>, ApiError> {
    let (state, _, _) = guard(ctx, Action::ReadBots)?;
    state
        .keys
        .existing_bot_key(b)
        .await
        .map_err(ApiError::internal)
}
