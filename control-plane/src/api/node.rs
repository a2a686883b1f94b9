//! Relay's global object identification: the `Node` interface, and
//! `node(id:)` / `nodes(ids:)` to refetch any object by its id alone.
//!
//! Every id the API hands out is already unique across types (random
//! 128-bit ids; API keys 64-bit), so ids are not rewritten: `node` looks in
//! each type the caller's tenant has. Like everything else it is scoped to
//! the caller's tenant (another tenant's id is NOT_FOUND, or null in
//! `nodes`) and asks the guard for the found type's own read action.

use async_graphql::{Context, ID, Interface, Object, Result};
use attache_tenant_policy::Action;

use super::api_keys::ApiKey;
use super::bots::Bot;
use super::error::ApiError;
use super::guard::{guard, guard_any};
use super::members::{Invitation, Member};
use super::webhooks::WebhookEndpoint;
use crate::store::Scoped;

/// Most ids one `nodes` call may ask for.
const MAX_IDS: usize = 100;

/// An object that can be fetched again by its id.
// One per lookup, returned at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub(crate) enum Node {
    Bot(Bot),
    WebhookEndpoint(WebhookEndpoint),
    Member(Member),
    Invitation(Invitation),
    ApiKey(ApiKey),
}

/// What may be looked up, and the action that reads it.
const KINDS: [(Action, Kind); 5] = [
    (Action::ReadBots, Kind::Bot),
    (Action::ReadWebhooks, Kind::WebhookEndpoint),
    (Action::ReadMembers, Kind::Member),
    (Action::ReadMembers, Kind::Invitation),
    (Action::ReadApiKeys, Kind::ApiKey),
];

#[derive(Clone, Copy)]
enum Kind {
    Bot,
    WebhookEndpoint,
    Member,
    Invitation,
    ApiKey,
}

impl Kind {
    async fn load(self, scoped: &Scoped<'_>, id: &str) -> Result<Option<Node>, ApiError> {
        Ok(match self {
            Kind::Bot => scoped.bot(id).await?.map(|b| Node::Bot(Bot(b))),
            Kind::WebhookEndpoint => scoped
                .webhook_endpoint(id)
                .await?
                .map(|e| Node::WebhookEndpoint(WebhookEndpoint(e))),
            Kind::Member => match scoped.member(id).await? {
                Some(m) => Some(Node::Member(Member::of(m)?)),
                None => None,
            },
            Kind::Invitation => {
                match scoped.invitations().await?.into_iter().find(|i| i.id == id) {
                    Some(i) => Some(Node::Invitation(Invitation::of(i)?)),
                    None => None,
                }
            }
            Kind::ApiKey => match scoped.api_key(id).await? {
                Some(k) => Some(Node::ApiKey(ApiKey::of(k)?)),
                None => None,
            },
        })
    }
}

/// The object with this id in the caller's tenant, if any. Every type is
/// looked in, so that an object of the caller's own tenant that its role
/// may not read is FORBIDDEN rather than seeming absent.
async fn find(ctx: &Context<'_>, id: &str) -> Result<Option<Node>, ApiError> {
    let actions: Vec<Action> = KINDS.iter().map(|(a, _)| *a).collect();
    let scoped = guard_any(ctx, &actions)?;
    for (action, kind) in KINDS {
        if let Some(node) = kind.load(&scoped, id).await? {
            guard(ctx, action)?;
            return Ok(Some(node));
        }
    }
    Ok(None)
}

#[derive(Default)]
pub(crate) struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object of the caller's tenant by its id; NOT_FOUND for an id of
    /// no object there (another tenant's included).
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Node> {
        Ok(find(ctx, &id).await?.ok_or(ApiError::NotFound)?)
    }

    /// Several objects by id, in the order asked; null where an id names no
    /// object of the caller's tenant. At most 100 ids.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > MAX_IDS {
            return Err(ApiError::BadInput(format!("at most {MAX_IDS} ids")).into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(find(ctx, id).await?);
        }
        Ok(out)
    }
}
