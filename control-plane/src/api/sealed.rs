//! Opening a bot's sealed rows (transcript text, chat) for the API.
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

/// The key a bot's sealed rows open with; `None` if it never had one (it
/// was never dispatched, so nothing of it is sealed).
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

/// One sealed text field, opened with its bot's key and field context.
pub(crate) fn open_text(
    key: Option<&DataKey>,
    ctx: &[u8],
    sealed: &[u8],
) -> Result<String, ApiError> {
    let key = key.ok_or_else(|| ApiError::internal("a sealed row of a bot with no key"))?;
    let plain = key.open(ctx, sealed).map_err(ApiError::internal)?;
    String::from_utf8(plain).map_err(ApiError::internal)
}
