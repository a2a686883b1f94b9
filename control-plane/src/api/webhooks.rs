//! Webhooks as the API shows them: a tenant's endpoints, their deliveries
//! and attempts, the notices the platform leaves the tenant, and the
//! mutations that register, delete and re-enable endpoints.
//!
//! Every field asks the guard first. An endpoint's signing secret is
//! returned once, by `createWebhookEndpoint`, and is stored only sealed:
//! nothing else here may ever show it.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use super::paging::page_size;
use crate::entity::{tenant_notice, webhook_attempt, webhook_delivery, webhook_endpoint};

/// Most deliveries listed at once for an endpoint.
const MAX_DELIVERIES: i32 = 500;

/// Where a tenant receives events.
pub(crate) struct WebhookEndpoint(pub(crate) webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn event_types(&self) -> Vec<String> {
        self.0.event_types.split(',').map(String::from).collect()
    }
    /// False once it kept failing (see `disabledReason`); pending events
    /// wait and go again when it is enabled.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// Since when every delivery has failed; null while it works.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Its events, newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> Result<Vec<WebhookDelivery>> {
        let (_, _, scoped) = guard(ctx, Action::ReadWebhooks)?;
        let first = page_size(first.unwrap_or(50), MAX_DELIVERIES)?;
        let rows = scoped
            .webhook_deliveries(&self.0.id, first)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(WebhookDelivery).collect())
    }
}

/// One event for one endpoint and every attempt to deliver it.
pub(crate) struct WebhookDelivery(webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// The `webhook-id` header: the same on every attempt.
    async fn id(&self) -> ID {
        ID(self.0.webhook_id.clone())
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn bot_id(&self) -> Option<ID> {
        self.0.bot_id.clone().map(ID)
    }
    /// PENDING, DELIVERED or FAILED (given up after the retry period).
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == "PENDING").then_some(self.0.next_attempt_at)
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// The JSON body sent.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
    async fn attempt_log(&self, ctx: &Context<'_>) -> Result<Vec<WebhookAttempt>> {
        let (_, _, scoped) = guard(ctx, Action::ReadWebhooks)?;
        let rows = scoped
            .webhook_attempts(self.0.id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(WebhookAttempt::from).collect())
    }
}

#[derive(SimpleObject)]
pub(crate) struct WebhookAttempt {
    at: DateTime<Utc>,
    /// The HTTP status, if a response came.
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(a: webhook_attempt::Model) -> Self {
        WebhookAttempt {
            at: a.at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(InputObject)]
pub(crate) struct CreateWebhookEndpointInput {
    /// https URL (plain http and private addresses only where the
    /// deployment allows them).
    url: String,
    /// Any of `bot.status_changed`, `bot.ended`, `recording.ready`,
    /// `transcript.ready`, `webhook_endpoint.disabled`, and, only if named
    /// here, `participant.joined`, `participant.left` and `chat.message`
    /// (they carry names and words); omitted: the first five.
    event_types: Option<Vec<String>>,
}

pub(crate) struct CreatedWebhookEndpoint {
    endpoint: webhook_endpoint::Model,
    secret: String,
}

#[Object]
impl CreatedWebhookEndpoint {
    async fn endpoint(&self) -> WebhookEndpoint {
        WebhookEndpoint(self.endpoint.clone())
    }
    /// The signing secret (`whsec_…`), shown this once.
    async fn secret(&self) -> &str {
        &self.secret
    }
}

/// Something the platform tells a tenant (an endpoint disabled, say).
#[derive(SimpleObject)]
pub(crate) struct Notice {
    kind: String,
    message: String,
    at: DateTime<Utc>,
}

impl From<tenant_notice::Model> for Notice {
    fn from(n: tenant_notice::Model) -> Self {
        Notice {
            kind: n.kind,
            message: n.message,
            at: n.at,
        }
    }
}

#[derive(Default)]
pub(crate) struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The tenant's webhook endpoints, oldest first.
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let (_, _, scoped) = guard(ctx, Action::ReadWebhooks)?;
        let rows = scoped.webhook_endpoints().await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(WebhookEndpoint).collect())
    }

    /// What the platform told the tenant (a webhook endpoint disabled, …),
    /// newest first.
    async fn notices(&self, ctx: &Context<'_>) -> Result<Vec<Notice>> {
        let (_, _, scoped) = guard(ctx, Action::ReadWebhooks)?;
        let rows = scoped.notices().await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Notice::from).collect())
    }
}

#[derive(Default)]
pub(crate) struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers a webhook endpoint. The signing secret is in the answer,
    /// and only there.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreatedWebhookEndpoint> {
        let (state, principal, scoped) = guard(ctx, Action::ManageWebhooks)?;
        crate::audit::note_target(ctx, "webhook_endpoint");
        let url = crate::webhooks::check_url(&input.url, state.config.webhook_allow_private)
            .map_err(ApiError::BadInput)?;
        let default = crate::store::EVENT_TYPES;
        let all: Vec<&str> = default
            .iter()
            .chain(crate::store::OPT_IN_EVENT_TYPES.iter())
            .copied()
            .collect();
        let event_types = match input.event_types {
            None => default.iter().map(|s| s.to_string()).collect(),
            Some(v) if v.is_empty() => {
                return Err(ApiError::BadInput("eventTypes must not be empty".into()).into());
            }
            Some(mut v) => {
                if let Some(bad) = v.iter().find(|t| !all.contains(&t.as_str())) {
                    return Err(ApiError::BadInput(format!(
                        "unknown event type {bad:?}; known: {}",
                        all.join(", ")
                    ))
                    .into());
                }
                v.sort();
                v.dedup();
                v
            }
        };
        let secret = crate::webhooks::new_secret();
        let id = uuid::Uuid::new_v4().to_string();
        let secret_sealed = crate::webhooks::seal_secret(state, &principal.tenant_id, &id, &secret)
            .await
            .map_err(ApiError::internal)?;
        let endpoint = scoped
            .insert_webhook_endpoint(
                id,
                crate::store::EndpointInput {
                    url: url.to_string(),
                    event_types,
                    secret_sealed,
                },
            )
            .await
            .map_err(ApiError::from)?;
        tracing::info!(tenant_id = %principal.tenant_id, endpoint_id = %endpoint.id, "webhook endpoint created");
        Ok(CreatedWebhookEndpoint { endpoint, secret })
    }

    /// Deletes a webhook endpoint and its undelivered events.
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (_, _, scoped) = guard(ctx, Action::ManageWebhooks)?;
        crate::audit::note_target(ctx, format!("webhook_endpoint:{}", id.0));
        if !scoped
            .delete_webhook_endpoint(&id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound.into());
        }
        Ok(true)
    }

    /// Turns a disabled endpoint back on; its waiting events go again.
    async fn enable_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let (_, _, scoped) = guard(ctx, Action::ManageWebhooks)?;
        crate::audit::note_target(ctx, format!("webhook_endpoint:{}", id.0));
        if !scoped
            .enable_webhook_endpoint(&id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound.into());
        }
        let e = scoped
            .webhook_endpoint(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(WebhookEndpoint(e))
    }
}
