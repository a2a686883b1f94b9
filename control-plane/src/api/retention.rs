//! Retention as the API shows it: the tenant's rule for each data class
//! (with where it comes from: the tenant, its first retention setting, the
//! platform's default), and legal holds on the tenant or one bot.
//!
//! Every field asks the guard for `ManageSettings` first. A hold's reason
//! is sealed with the tenant's key before it is stored. Deleting is the
//! sweeper's (`crate::retention`), never a resolver's.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use attache_tenant_policy::{
    Action, DataClass, retention_plan, retention_rule, validate_retention_days,
};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use crate::AppState;
use crate::audit::note_target;
use crate::entity::legal_hold;
use crate::store::{Scoped, now};

/// Most active holds a tenant may have at once.
const MAX_ACTIVE_HOLDS: usize = 1000;
const MAX_REASON_CHARS: usize = 500;

/// A class of data with its own retention.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "attache_tenant_policy::DataClass")]
pub(crate) enum RetentionClass {
    /// Recordings and every chunk of them in the object store.
    Recordings,
    /// Transcript segments.
    Transcripts,
    /// Chat messages.
    Chat,
    /// Participants and the speaker timeline.
    Participants,
    /// The bot itself: its row, events and warnings. Kept at least as
    /// long as any other data of the bot.
    BotMetadata,
    /// Webhook deliveries and their attempts (once delivered or given up).
    WebhookDeliveries,
}

/// Where a class's rule comes from.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "attache_tenant_policy::RetentionSource")]
pub(crate) enum RetentionSource {
    /// The tenant's rule for this class (`setRetentionPolicy`).
    Tenant,
    /// The tenant's one number for recordings, transcripts and chat
    /// (`setRetention`).
    TenantSettings,
    /// The platform operator's default for the class.
    PlatformDefault,
    /// Nothing is set: kept until deleted.
    Unset,
}

/// How long one class of the tenant's data is kept.
#[derive(SimpleObject)]
pub(crate) struct RetentionRule {
    class: RetentionClass,
    /// Days after a bot ends (for deliveries: after they were queued)
    /// that its data of this class is deleted; null keeps it.
    retention_days: Option<i32>,
    source: RetentionSource,
    /// The platform's default for the class, if the operator set one.
    platform_default_days: Option<i32>,
    /// How long it is really kept: a bot's metadata waits for its
    /// longest-kept data. Null: kept.
    effective_days: Option<i32>,
}

/// Every class's rule, as the tenant's choices and the defaults make it.
async fn rules(scoped: &Scoped<'_>, state: &AppState) -> Result<Vec<RetentionRule>> {
    let tenant = scoped.retention().await.map_err(ApiError::from)?;
    let defaults = state
        .store
        .retention_defaults()
        .await
        .map_err(ApiError::from)?;
    let plan = retention_plan(&tenant, &defaults, &Default::default(), now());
    Ok(DataClass::ALL
        .into_iter()
        .map(|class| {
            let rule = retention_rule(class, &tenant, &defaults);
            RetentionRule {
                class: class.into(),
                retention_days: rule.days.map(|d| d as i32),
                source: rule.source.into(),
                platform_default_days: defaults.0.get(&class).map(|&d| d as i32),
                effective_days: plan.keep_for(class).map(|d| d.num_days() as i32),
            }
        })
        .collect())
}

#[derive(InputObject)]
pub(crate) struct RetentionPolicyInput {
    class: RetentionClass,
    /// 1 to 3650 days; null keeps the class forever, whatever the
    /// platform's default.
    retention_days: Option<i32>,
    /// Drop the tenant's rule for the class: the first retention setting
    /// or the platform's default applies again.
    #[graphql(default = false)]
    use_default: bool,
}

/// Keeps a tenant's data (or one bot's) whatever its retention says,
/// until released.
pub(crate) struct LegalHold {
    row: legal_hold::Model,
    reason: String,
}

#[Object]
impl LegalHold {
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }
    /// The bot it keeps; null: the whole tenant.
    async fn bot_id(&self) -> Option<ID> {
        self.row.bot_id.clone().map(ID)
    }
    async fn reason(&self) -> &str {
        &self.reason
    }
    /// Who set it (`key:…`, `user:…`).
    async fn created_by(&self) -> &str {
        &self.row.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn released_at(&self) -> Option<DateTime<Utc>> {
        self.row.released_at
    }
    async fn released_by(&self) -> Option<&str> {
        self.row.released_by.as_deref()
    }
    /// Whether it still keeps what it covers.
    async fn active(&self) -> bool {
        self.row.released_at.is_none()
    }
}

#[derive(InputObject)]
pub(crate) struct LegalHoldInput {
    /// The bot to keep; omitted: every bot and webhook delivery of the
    /// tenant.
    bot_id: Option<ID>,
    /// Why (a matter or ticket reference); up to 500 characters, stored
    /// sealed.
    reason: String,
}

fn reason_context(hold_id: &str) -> Vec<u8> {
    format!("attache/legal-hold/{hold_id}").into_bytes()
}

async fn open_hold(
    state: &AppState,
    tenant_id: &str,
    row: legal_hold::Model,
) -> Result<LegalHold, ApiError> {
    let key = state.keys.tenant_key(tenant_id).await?;
    let plain = key
        .open(&reason_context(&row.id), &row.reason_sealed)
        .map_err(ApiError::internal)?;
    let reason = String::from_utf8(plain).map_err(ApiError::internal)?;
    Ok(LegalHold { row, reason })
}

#[derive(Default)]
pub(crate) struct RetentionPolicyQuery;

#[Object]
impl RetentionPolicyQuery {
    /// The rule of every data class, and where it comes from.
    async fn retention_policy(&self, ctx: &Context<'_>) -> Result<Vec<RetentionRule>> {
        let (state, _, scoped) = guard(ctx, Action::ManageSettings)?;
        rules(&scoped, state).await
    }

    /// The tenant's legal holds, newest first; released ones too if asked.
    async fn legal_holds(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_released: bool,
    ) -> Result<Vec<LegalHold>> {
        let (state, principal, scoped) = guard(ctx, Action::ManageSettings)?;
        let rows = scoped
            .legal_holds(include_released)
            .await
            .map_err(ApiError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(open_hold(state, &principal.tenant_id, row).await?);
        }
        Ok(out)
    }
}

#[derive(Default)]
pub(crate) struct RetentionPolicyMutation;

#[Object]
impl RetentionPolicyMutation {
    /// How long one class of the tenant's data is kept.
    async fn set_retention_policy(
        &self,
        ctx: &Context<'_>,
        input: RetentionPolicyInput,
    ) -> Result<RetentionRule> {
        let (state, principal, scoped) = guard(ctx, Action::ManageSettings)?;
        let class = DataClass::from(input.class);
        note_target(ctx, format!("retention:{}", class.as_str()));
        if input.use_default {
            if input.retention_days.is_some() {
                return Err(ApiError::BadInput(
                    "retentionDays and useDefault exclude each other".into(),
                )
                .into());
            }
            scoped
                .clear_retention_class(class)
                .await
                .map_err(ApiError::from)?;
        } else {
            let days = input
                .retention_days
                .map(|d| validate_retention_days(d.into()))
                .transpose()
                .map_err(|e| ApiError::BadInput(format!("retentionDays: {e}")))?;
            scoped
                .set_retention_class(class, days)
                .await
                .map_err(ApiError::from)?;
        }
        tracing::info!(tenant_id = %principal.tenant_id, class = class.as_str(), "retention policy changed");
        let rule = rules(&scoped, state)
            .await?
            .into_iter()
            .find(|r| DataClass::from(r.class) == class)
            .ok_or(ApiError::Internal)?;
        Ok(rule)
    }

    /// Keeps the whole tenant's data, or one bot's, from every deletion by
    /// retention until released.
    async fn set_legal_hold(&self, ctx: &Context<'_>, input: LegalHoldInput) -> Result<LegalHold> {
        let (state, principal, scoped) = guard(ctx, Action::ManageSettings)?;
        let bot_id = input.bot_id.map(|b| b.0);
        note_target(
            ctx,
            match &bot_id {
                Some(b) => format!("legal_hold:bot:{b}"),
                None => "legal_hold:tenant".to_string(),
            },
        );
        let reason = input.reason.trim().to_string();
        if reason.is_empty()
            || reason.chars().count() > MAX_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            return Err(ApiError::BadInput(format!(
                "reason must be 1 to {MAX_REASON_CHARS} characters on one line"
            ))
            .into());
        }
        if let Some(b) = &bot_id
            && scoped.bot(b).await.map_err(ApiError::from)?.is_none()
        {
            return Err(ApiError::NotFound.into());
        }
        if scoped
            .legal_holds(false)
            .await
            .map_err(ApiError::from)?
            .len()
            >= MAX_ACTIVE_HOLDS
        {
            return Err(ApiError::BadInput(format!(
                "a tenant may have {MAX_ACTIVE_HOLDS} active holds at most"
            ))
            .into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let key = state
            .keys
            .tenant_key(&principal.tenant_id)
            .await
            .map_err(ApiError::from)?;
        let sealed = key.seal(&reason_context(&id), reason.as_bytes());
        let row = scoped
            .insert_legal_hold(id.clone(), bot_id.clone(), sealed, principal.actor.label())
            .await
            .map_err(ApiError::from)?;
        note_target(
            ctx,
            match &bot_id {
                Some(b) => format!("legal_hold:{id} bot:{b}"),
                None => format!("legal_hold:{id} tenant"),
            },
        );
        tracing::info!(tenant_id = %principal.tenant_id, hold = %id, bot_id = bot_id.as_deref().unwrap_or("*"), "legal hold set");
        Ok(LegalHold { row, reason })
    }

    /// Releases a hold: what it kept follows its retention again, from
    /// the next sweep. Releasing a released hold changes nothing.
    async fn release_legal_hold(&self, ctx: &Context<'_>, id: ID) -> Result<LegalHold> {
        let (state, principal, scoped) = guard(ctx, Action::ManageSettings)?;
        note_target(ctx, format!("legal_hold:{}", id.0));
        let row = scoped
            .release_legal_hold(&id, &principal.actor.label())
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        tracing::info!(tenant_id = %principal.tenant_id, hold = %id.0, "legal hold released");
        Ok(open_hold(state, &principal.tenant_id, row).await?)
    }
}
