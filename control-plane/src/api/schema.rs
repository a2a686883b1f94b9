//! The public GraphQL contract, first version: the roots composed from
//! each domain's objects, and the schema built with its limits.
//!
//! Nothing here resolves a field. The order of the objects below is the
//! order of the fields in the published schema, so a domain whose fields
//! sit apart there contributes more than one object.

use async_graphql::{MergedObject, MergedSubscription, Schema};

use super::api_keys::{ApiKeysMutation, ApiKeysQuery};
use super::audit_log::AuditLogQuery;
use super::bots::{BotQuery, CreateBotMutation, LeaveBotMutation};
use super::erasure::{ErasureMutation, ErasureQuery};
use super::limits::RateLimiter;
use super::members::{MembersMutation, MembersQuery};
use super::node::NodeQuery;
use super::platform::{PlatformMutation, PlatformQuery};
use super::policy::{PolicyMutation, PolicyQuery};
use super::retention::{RetentionPolicyMutation, RetentionPolicyQuery};
use super::settings::{
    RetentionMutation, RetentionQuery, TranscriptionSettingsMutation, TranscriptionSettingsQuery,
};
use super::sign_in::{IdentityProviderMutation, IdentityProviderQuery, MeQuery, ViewerQuery};
use super::subscriptions::{ActivitySubscription, BotSubscription};
use super::webhooks::{WebhookMutation, WebhookQuery};
use crate::AppState;

pub(crate) type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

const MAX_COMPLEXITY: usize = 500;

#[derive(MergedObject, Default)]
pub(crate) struct QueryRoot(
    ViewerQuery,
    WebhookQuery,
    TranscriptionSettingsQuery,
    BotQuery,
    MeQuery,
    MembersQuery,
    ApiKeysQuery,
    AuditLogQuery,
    IdentityProviderQuery,
    PolicyQuery,
    RetentionQuery,
    RetentionPolicyQuery,
    ErasureQuery,
    PlatformQuery,
    NodeQuery,
);

#[derive(MergedObject, Default)]
pub(crate) struct MutationRoot(
    CreateBotMutation,
    TranscriptionSettingsMutation,
    WebhookMutation,
    LeaveBotMutation,
    MembersMutation,
    ApiKeysMutation,
    IdentityProviderMutation,
    PolicyMutation,
    RetentionMutation,
    RetentionPolicyMutation,
    ErasureMutation,
    PlatformMutation,
);

#[derive(MergedSubscription, Default)]
pub(crate) struct SubscriptionRoot(BotSubscription, ActivitySubscription);

pub(crate) fn build_schema(state: AppState) -> AppSchema {
    let limiter = RateLimiter::new(
        state.config.create_bot_per_minute,
        state.config.create_bot_burst,
    )
    .shared("create_bot", &state.bus, &state.metrics);
    let introspection = state.config.introspection;
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .data(limiter)
    .data(state.audit.clone())
    .data(state)
    .extension(crate::audit::AuditMutations)
    .extension(super::checks::Checks)
    // Data queries get the tighter bound from the checks.
    .limit_depth(super::checks::INTROSPECTION_DEPTH)
    .limit_complexity(MAX_COMPLEXITY);
    if !introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The schema in SDL, for clients and for the authorization matrix.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .finish()
    .sdl()
}
