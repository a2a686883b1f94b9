//! The public GraphQL contract, first version.
//!
//! Every resolver starts with [`guard`]: it checks the principal's role for
//! the action and hands back the tenant-scoped store, the only door to data.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, Enum, ID, InputObject, MergedObject, Object, Result, Schema, SimpleObject,
    Subscription,
};
use attache_protocol::{BotStatus as WireStatus, parse_meeting_url};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};
use futures::Stream;

use super::ApiError;
use super::media::{
    AutoLeave, AutoLeaveInput, BotWarning, ChatMessage, Participant, Recording, SpeakerSegment,
};
use super::people::{PeopleMutation, PeopleQuery, PlatformMutation, PlatformQuery};
use super::sessions::{
    BotTranscriptionInput, CreateWebhookEndpointInput, CreatedWebhookEndpoint, Notice,
    TranscriptSegment, TranscriptionProviderKind, TranscriptionSettings,
    TranscriptionSettingsInput, WebhookEndpoint, bot_key, decode_segment_cursor,
    encode_segment_cursor, open_chat,
};
use crate::AppState;
use crate::access::Principal;
use crate::entity::{bot, bot_event};
use crate::store::{NewBot, Scoped, now};
use crate::transcription::{BotChoice, Kind, valid_language};

pub(crate) type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

const DEFAULT_BOT_NAME: &str = "Attaché Notetaker";
const MAX_BOT_NAME: usize = 100;
const MAX_PAGE: i32 = 100;
const MAX_JOIN_AHEAD_DAYS: i64 = 90;

pub(crate) fn build_schema(state: AppState) -> AppSchema {
    let limiter = super::limits::RateLimiter::new(
        state.config.create_bot_per_minute,
        state.config.create_bot_burst,
    );
    let introspection = state.config.introspection;
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(limiter)
    .data(state.audit.clone())
    .data(state)
    .extension(crate::audit::AuditMutations)
    .limit_depth(12)
    .limit_complexity(500);
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
        SubscriptionRoot,
    )
    .finish()
    .sdl()
}

/// The one authorization check every resolver makes before any work.
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

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "BotStatus", remote = "attache_protocol::BotStatus")]
pub(crate) enum GqlStatus {
    Queued,
    Dispatched,
    Joining,
    WaitingRoom,
    InCall,
    Leaving,
    Ended,
    Failed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Platform", remote = "attache_protocol::Platform")]
pub(crate) enum GqlPlatform {
    GoogleMeet,
    Teams,
    Zoom,
    Sandbox,
}

pub(crate) struct Bot(bot::Model);

#[Object]
impl Bot {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn meeting_url(&self) -> &str {
        &self.0.meeting_url
    }
    async fn platform(&self) -> GqlPlatform {
        GqlPlatform::from(self.0.platform.0)
    }
    async fn bot_name(&self) -> &str {
        &self.0.bot_name
    }
    async fn status(&self) -> GqlStatus {
        self.0.status.0.into()
    }
    /// Why the bot ended or failed (`MEETING_ENDED`, `ADMISSION_DENIED`,
    /// `WORKER_LOST`, …); null while it is running.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    async fn join_at(&self) -> DateTime<Utc> {
        self.0.join_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// Every status the bot went through, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<BotEvent>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let events = scoped.events(&self.0.id).await.map_err(ApiError::from)?;
        events.into_iter().map(BotEvent::try_from).collect()
    }
    /// The rules this bot leaves by.
    async fn auto_leave(&self) -> AutoLeave {
        AutoLeave::of(&self.0)
    }
    /// Everyone the bot saw in the meeting, in order of arrival.
    async fn participants(&self, ctx: &Context<'_>) -> Result<Vec<Participant>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let rows = scoped
            .participants(&self.0.id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Participant::from).collect())
    }
    /// Who spoke when, from the platform's speaking indicators, in order.
    async fn speaker_timeline(&self, ctx: &Context<'_>) -> Result<Vec<SpeakerSegment>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let rows = scoped
            .speaker_segments(&self.0.id)
            .await
            .map_err(ApiError::from)?;
        let zero = match scoped.recording(&self.0.id).await.map_err(ApiError::from)? {
            Some(r) => Some(r.started_at),
            None => scoped
                .events(&self.0.id)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .find(|e| e.status == WireStatus::InCall)
                .map(|e| e.at),
        };
        Ok(rows
            .into_iter()
            .map(|s| SpeakerSegment::new(s, zero))
            .collect())
    }
    /// The meeting's chat as the bot saw it, oldest first.
    async fn chat_messages(&self, ctx: &Context<'_>) -> Result<Vec<ChatMessage>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let rows = scoped
            .chat_messages(&self.0.id)
            .await
            .map_err(ApiError::from)?;
        let key = bot_key(ctx, &self.0).await?;
        Ok(rows
            .into_iter()
            .map(|m| open_chat(key.as_ref(), m))
            .collect::<Result<_, _>>()?)
    }
    /// What was said, in time order: final segments, and partial ones for
    /// speech still going on.
    async fn transcript(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, TranscriptSegment, BotConnectionFields, EmptyFields>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let first = first.unwrap_or(100);
        if !(1..=500).contains(&first) {
            return Err(ApiError::BadInput("first must be between 1 and 500".into()).into());
        }
        let after = after.map(|c| decode_segment_cursor(&c)).transpose()?;
        let mut rows = scoped
            .transcript(&self.0.id, after, first as u64 + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() > first as usize;
        rows.truncate(first as usize);
        let total_count = scoped
            .count_transcript(&self.0.id)
            .await
            .map_err(ApiError::from)?;
        let key = bot_key(ctx, &self.0).await?;
        let mut conn = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            BotConnectionFields { total_count },
        );
        for r in &rows {
            conn.edges.push(Edge::new(
                encode_segment_cursor(r),
                TranscriptSegment::open(key.as_ref(), r)?,
            ));
        }
        Ok(conn)
    }
    /// The final transcript as plain text, one `[mm:ss] Speaker: text` line
    /// per segment.
    async fn transcript_text(&self, ctx: &Context<'_>) -> Result<String> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let key = bot_key(ctx, &self.0).await?;
        let mut lines = Vec::new();
        let mut after = None;
        loop {
            let rows = scoped
                .transcript(&self.0.id, after, 500)
                .await
                .map_err(ApiError::from)?;
            let Some(last) = rows.last() else { break };
            after = Some((last.start_ms, last.id));
            for r in rows.iter().filter(|r| r.is_final) {
                lines.push(TranscriptSegment::open(key.as_ref(), r)?.line());
            }
        }
        Ok(lines.join("\n"))
    }
    /// The audio recording; null until the bot is in the call.
    async fn recording(&self, ctx: &Context<'_>) -> Result<Option<Recording>> {
        let (state, _, scoped) = guard(ctx, Action::ReadBots)?;
        let Some(r) = scoped.recording(&self.0.id).await.map_err(ApiError::from)? else {
            return Ok(None);
        };
        let url = if Recording::downloadable(&r) {
            let ttl = state.config.download_ttl;
            let url = state
                .objects
                .download_url(
                    &r.object_key,
                    &format!("{}.ogg", self.0.id),
                    "audio/ogg",
                    ttl,
                    &state.public_url,
                )
                .map_err(ApiError::internal)?;
            let expires = now() + chrono::Duration::from_std(ttl).unwrap_or_default();
            Some((url, expires))
        } else {
            None
        };
        Ok(Some(Recording::new(r, url)))
    }
    /// Problems the bot reported while running, oldest first.
    async fn warnings(&self, ctx: &Context<'_>) -> Result<Vec<BotWarning>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let rows = scoped.warnings(&self.0.id).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(BotWarning::from).collect())
    }
}

#[derive(SimpleObject)]
pub(crate) struct BotEvent {
    bot_id: ID,
    at: DateTime<Utc>,
    status: GqlStatus,
    reason: Option<String>,
    detail: Option<String>,
}

impl TryFrom<bot_event::Model> for BotEvent {
    type Error = async_graphql::Error;
    fn try_from(e: bot_event::Model) -> Result<Self> {
        Ok(BotEvent {
            bot_id: ID(e.bot_id),
            at: e.at,
            status: e.status.0.into(),
            reason: e.reason,
            detail: e.detail,
        })
    }
}

#[derive(SimpleObject)]
pub(crate) struct Tenant {
    id: ID,
    name: String,
    region: String,
}

#[derive(SimpleObject)]
pub(crate) struct Viewer {
    tenant: Tenant,
    role: String,
    /// The key asking, when a key asks (not a console session).
    api_key_id: Option<String>,
}

#[derive(SimpleObject)]
pub(crate) struct BotConnectionFields {
    total_count: u64,
}

#[derive(MergedObject, Default)]
pub(crate) struct QueryRoot(BotQuery, PeopleQuery, PlatformQuery);

#[derive(MergedObject, Default)]
pub(crate) struct MutationRoot(BotMutation, PeopleMutation, PlatformMutation);

#[derive(Default)]
pub(crate) struct BotQuery;

#[Object]
impl BotQuery {
    /// Who the API key belongs to.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let (_, principal, scoped) = guard(ctx, Action::ReadTenant)?;
        let t = scoped
            .tenant()
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(Viewer {
            tenant: Tenant {
                id: ID(t.id),
                name: t.name,
                region: t.region,
            },
            role: principal
                .role()
                .map(|r| r.as_str())
                .unwrap_or_default()
                .to_string(),
            api_key_id: match &principal.actor {
                crate::access::Actor::Key { id } => Some(id.clone()),
                crate::access::Actor::User { .. } => None,
            },
        })
    }

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

    /// The tenant's speech-to-text settings; null if it follows the
    /// deployment's default.
    async fn transcription_settings(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<TranscriptionSettings>> {
        let (state, principal, _) = guard(ctx, Action::ManageSettings)?;
        let s = state
            .store
            .transcription_setting(&principal.tenant_id)
            .await
            .map_err(ApiError::from)?;
        Ok(s.map(TranscriptionSettings::from))
    }

    /// One bot of the caller's tenant; NOT_FOUND for any other id.
    async fn bot(&self, ctx: &Context<'_>, id: ID) -> Result<Bot> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let b = scoped
            .bot(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(Bot(b))
    }

    /// The tenant's bots, newest first.
    async fn bots(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<GqlStatus>,
    ) -> Result<Connection<String, Bot, BotConnectionFields, EmptyFields>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let first = first.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(
                ApiError::BadInput(format!("first must be between 1 and {MAX_PAGE}")).into(),
            );
        }
        let after = after.map(|c| decode_cursor(&c)).transpose()?;
        let status = status.map(WireStatus::from);
        let page = scoped
            .bots(first as u64, after, status)
            .await
            .map_err(ApiError::from)?;
        let total_count = scoped.count_bots(status).await.map_err(ApiError::from)?;
        let mut conn = Connection::with_additional_fields(
            false,
            page.has_next,
            BotConnectionFields { total_count },
        );
        conn.edges.extend(
            page.bots
                .into_iter()
                .map(|b| Edge::new(encode_cursor(&b), Bot(b))),
        );
        Ok(conn)
    }
}

fn encode_cursor(b: &bot::Model) -> String {
    hex::encode(format!("{}|{}", b.created_at.timestamp_millis(), b.id))
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::BadInput("invalid cursor".into());
    let raw = String::from_utf8(hex::decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (ms, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_millis(ms.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, id.to_string()))
}

#[derive(InputObject)]
pub(crate) struct CreateBotInput {
    /// A Google Meet, Microsoft Teams or Zoom meeting link.
    meeting_url: String,
    /// The name the bot shows in the meeting (1 to 100 characters).
    bot_name: Option<String>,
    /// When to join; now if omitted or in the past.
    join_at: Option<DateTime<Utc>>,
    /// When the bot leaves on its own; defaults apply to omitted rules.
    auto_leave: Option<AutoLeaveInput>,
    /// This bot's speech-to-text engine; omitted: the tenant's.
    transcription: Option<BotTranscriptionInput>,
}

fn validate_bot_name(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_else(|| DEFAULT_BOT_NAME.to_string());
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_BOT_NAME {
        return Err(ApiError::BadInput(format!(
            "botName must be 1 to {MAX_BOT_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadInput(
            "botName must not contain control characters".into(),
        ));
    }
    Ok(name.to_string())
}

#[derive(Default)]
pub(crate) struct BotMutation;

#[Object]
impl BotMutation {
    /// Sends a bot to a meeting. It is queued, then dispatched to a worker in
    /// the tenant's region when its join time comes.
    async fn create_bot(&self, ctx: &Context<'_>, input: CreateBotInput) -> Result<Bot> {
        let (state, principal, scoped) = guard(ctx, Action::CreateBot)?;
        crate::audit::note_target(ctx, "bot");
        ctx.data_unchecked::<super::limits::RateLimiter>()
            .take(&principal.tenant_id, std::time::Instant::now())
            .map_err(ApiError::RateLimited)?;
        let (platform, url) = parse_meeting_url(&input.meeting_url, &state.config.sandbox_origins)
            .map_err(|e| ApiError::BadInput(format!("meetingUrl: {e}")))?;
        let bot_name = validate_bot_name(input.bot_name)?;
        let created_at = now();
        let join_at = input.join_at.map_or(created_at, |t| t.max(created_at));
        if join_at > created_at + chrono::Duration::days(MAX_JOIN_AHEAD_DAYS) {
            return Err(ApiError::BadInput(format!(
                "joinAt must be within {MAX_JOIN_AHEAD_DAYS} days"
            ))
            .into());
        }
        let tenant = scoped
            .tenant()
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let limits = input
            .auto_leave
            .unwrap_or_default()
            .apply(state.config.default_limits)?;
        let transcription = match input.transcription {
            None => None,
            Some(t) => {
                if let Some(l) = &t.language
                    && !valid_language(l)
                {
                    return Err(ApiError::BadInput(
                        "transcription.language must be a language code such as en or pt-BR".into(),
                    )
                    .into());
                }
                let provider = t.provider.map(TranscriptionProviderKind::kind);
                if let Some(k) = provider.filter(|k| k.needs_credentials()) {
                    let configured = state
                        .store
                        .transcription_setting(&principal.tenant_id)
                        .await
                        .map_err(ApiError::from)?
                        .is_some_and(|s| s.provider == k.as_str());
                    if !configured {
                        return Err(ApiError::BadInput(format!(
                            "transcription.provider {} needs the tenant's settings for it first (setTranscriptionSettings)",
                            k.as_str()
                        ))
                        .into());
                    }
                }
                Some(
                    serde_json::to_string(&BotChoice {
                        provider,
                        language: t.language,
                    })
                    .map_err(ApiError::internal)?,
                )
            }
        };
        let b = state
            .bots
            .create(
                &scoped,
                NewBot {
                    id: uuid::Uuid::new_v4().to_string(),
                    region: tenant.region,
                    meeting_url: url.to_string(),
                    platform,
                    bot_name,
                    join_at,
                    join_timeout_ms: limits.join_timeout_ms as i64,
                    lobby_timeout_ms: limits.lobby_timeout_ms as i64,
                    max_duration_ms: limits.max_duration_ms as i64,
                    nobody_joined_ms: limits.nobody_joined_ms as i64,
                    alone_ms: limits.alone_ms as i64,
                    silence_ms: limits.silence_ms as i64,
                    created_at,
                    transcription,
                },
            )
            .await
            .map_err(ApiError::from)?;
        crate::audit::note_target(ctx, format!("bot:{}", b.id));
        Ok(Bot(b))
    }

    /// Chooses the tenant's speech-to-text engine. The API key is stored
    /// sealed and never shown again.
    async fn set_transcription_settings(
        &self,
        ctx: &Context<'_>,
        input: TranscriptionSettingsInput,
    ) -> Result<TranscriptionSettings> {
        let (state, principal, _) = guard(ctx, Action::ManageSettings)?;
        crate::audit::note_target(ctx, "transcription_settings");
        let tenant_id = principal.tenant_id.clone();
        let kind = input.provider.kind();
        if let Some(l) = &input.language
            && !valid_language(l)
        {
            return Err(
                ApiError::BadInput("language must be a code such as en or pt-BR".into()).into(),
            );
        }
        let endpoint = match (kind, input.endpoint) {
            (Kind::OpenaiCompatible, None) => {
                return Err(ApiError::BadInput(
                    "endpoint is required for OPENAI_COMPATIBLE".into(),
                )
                .into());
            }
            (Kind::Deepgram, None) => Some("wss://api.deepgram.com/v1/listen".to_string()),
            (Kind::OpenaiCompatible | Kind::Deepgram, Some(e)) => {
                let u = url::Url::parse(&e)
                    .map_err(|e| ApiError::BadInput(format!("endpoint: {e}")))?;
                let schemes: &[&str] = if kind == Kind::Deepgram {
                    &["wss", "ws"]
                } else {
                    &["https", "http"]
                };
                if !schemes.contains(&u.scheme()) || e.len() > 2048 {
                    return Err(ApiError::BadInput(format!(
                        "endpoint must be a {} URL",
                        schemes[0]
                    ))
                    .into());
                }
                Some(e)
            }
            (_, _) => None,
        };
        let model = match (kind, input.model) {
            (_, Some(m)) if m.is_empty() || m.len() > 128 || m.chars().any(char::is_control) => {
                return Err(ApiError::BadInput("model must be 1 to 128 characters".into()).into());
            }
            (_, Some(m)) => m,
            (Kind::Deepgram, None) => "nova-3".into(),
            (Kind::OpenaiCompatible, None) => "whisper-1".into(),
            (_, None) => crate::transcription::LOCAL_MODEL.into(),
        };
        let previous = state
            .store
            .transcription_setting(&tenant_id)
            .await
            .map_err(ApiError::from)?;
        let api_key_sealed = match input.api_key {
            Some(k) if k.is_empty() || k.len() > 4096 => {
                return Err(
                    ApiError::BadInput("apiKey must be 1 to 4096 characters".into()).into(),
                );
            }
            Some(k) => Some(
                crate::transcription::seal_api_key(state, &tenant_id, &k)
                    .await
                    .map_err(ApiError::internal)?,
            ),
            None => previous
                .filter(|p| p.provider == kind.as_str())
                .and_then(|p| p.api_key_sealed),
        };
        if kind == Kind::Deepgram && api_key_sealed.is_none() {
            return Err(ApiError::BadInput("apiKey is required for DEEPGRAM".into()).into());
        }
        let row = crate::entity::transcription_setting::Model {
            tenant_id: tenant_id.clone(),
            provider: kind.as_str().into(),
            endpoint,
            model,
            language: input.language,
            api_key_sealed,
            updated_at: now(),
        };
        state
            .store
            .put_transcription_setting(row.clone())
            .await
            .map_err(ApiError::from)?;
        tracing::info!(tenant_id = %tenant_id, provider = kind.as_str(), "transcription settings changed");
        Ok(TranscriptionSettings::from(row))
    }

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
        let all = crate::store::EVENT_TYPES;
        let event_types = match input.event_types {
            None => all.iter().map(|s| s.to_string()).collect(),
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

    /// Asks a bot to leave. A queued bot ends at once; a running bot leaves
    /// the meeting and ends with LEAVE_REQUESTED. Leaving an ended bot is a
    /// no-op.
    async fn leave_bot(&self, ctx: &Context<'_>, id: ID) -> Result<Bot> {
        let (state, _, scoped) = guard(ctx, Action::LeaveBot)?;
        crate::audit::note_target(ctx, format!("bot:{}", id.0));
        let b = scoped
            .bot(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let b = state.bots.request_leave(b).await.map_err(ApiError::from)?;
        Ok(Bot(b))
    }
}

pub(crate) struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// A bot's transcript as it is spoken: the segments stored so far, then
    /// partial and final segments live (a final replaces the partials with
    /// the same id). The stream ends when the bot has ended.
    async fn transcript(
        &self,
        ctx: &Context<'_>,
        bot_id: ID,
    ) -> Result<impl Stream<Item = TranscriptSegment>> {
        let (state, _, scoped) = guard(ctx, Action::ReadBots)?;
        // Subscribe before reading what is stored so nothing falls between.
        let mut live = state.events.subscribe_transcripts();
        let mut statuses = state.events.subscribe();
        let bot = scoped
            .bot(&bot_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let key = bot_key(ctx, &bot).await?;
        let mut stored = Vec::new();
        let mut after = None;
        loop {
            let rows = scoped
                .transcript(&bot.id, after, 500)
                .await
                .map_err(ApiError::from)?;
            let Some(last) = rows.last() else { break };
            after = Some((last.start_ms, last.id));
            for r in &rows {
                stored.push(TranscriptSegment::open(key.as_ref(), r)?);
            }
        }
        let ended = bot.status.is_final();
        let (bot_id, tenant_id) = (bot.id, bot.tenant_id);
        Ok(async_stream::stream! {
            for s in stored { yield s; }
            if ended { return; }
            loop {
                tokio::select! {
                    ev = live.recv() => match ev {
                        Ok(e) if e.bot_id == bot_id && e.tenant_id == tenant_id => {
                            yield TranscriptSegment::live(&e);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    st = statuses.recv() => match st {
                        Ok(ev) if ev.bot_id == bot_id && ev.status.is_final() => {
                            // Segments are stored (and published) before the
                            // final status: take what is still queued, then end.
                            while let Ok(e) = live.try_recv() {
                                if e.bot_id == bot_id && e.tenant_id == tenant_id {
                                    yield TranscriptSegment::live(&e);
                                }
                            }
                            return;
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        })
    }

    /// A bot's status changes: first those already stored, then live ones;
    /// the stream ends after the final status.
    async fn bot_events(
        &self,
        ctx: &Context<'_>,
        bot_id: ID,
    ) -> Result<impl Stream<Item = BotEvent>> {
        let (state, principal, scoped) = guard(ctx, Action::ReadBots)?;
        let store = state.store.clone();
        let tenant_id = principal.tenant_id.clone();
        // Subscribe before reading history so nothing falls in between.
        let mut live = state.events.subscribe();
        let bot = scoped
            .bot(&bot_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let history = scoped.events(&bot.id).await.map_err(ApiError::from)?;
        let bot_id = bot.id;
        Ok(async_stream::stream! {
            let mut last_id = 0;
            let mut pending = history;
            loop {
                for ev in pending.drain(..) {
                    if ev.bot_id != bot_id || ev.id <= last_id {
                        continue;
                    }
                    last_id = ev.id;
                    let done = ev.status.is_final();
                    if let Ok(e) = BotEvent::try_from(ev) { yield e; }
                    if done { return; }
                }
                match live.recv().await {
                    Ok(ev) => pending.push(ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the live feed: the stored history is
                        // the truth, so catch up from it.
                        match store.scoped(&tenant_id).events(&bot_id).await {
                            Ok(evs) => pending = evs,
                            Err(e) => {
                                tracing::warn!(%bot_id, error = %e, "subscription cannot catch up; ending it");
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_names() {
        assert_eq!(validate_bot_name(None).unwrap(), DEFAULT_BOT_NAME);
        assert_eq!(validate_bot_name(Some("  Ada  ".into())).unwrap(), "Ada");
        for bad in ["", "   ", "a\u{0}b", "line\nbreak"] {
            assert!(validate_bot_name(Some(bad.into())).is_err(), "{bad:?}");
        }
        assert!(validate_bot_name(Some("é".repeat(100))).is_ok());
        assert!(validate_bot_name(Some("x".repeat(101))).is_err());
        assert!(validate_bot_name(Some("x".repeat(10_000))).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_bad_input() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let raw = hex::encode(format!("{}|{}", at.timestamp_millis(), "abc"));
        assert_eq!(decode_cursor(&raw).unwrap(), (at, "abc".to_string()));
        for bad in ["zz", "", &hex::encode("nobar"), &hex::encode("x|y")] {
            assert!(
                matches!(decode_cursor(bad), Err(ApiError::BadInput(_))),
                "{bad}"
            );
        }
    }
}
