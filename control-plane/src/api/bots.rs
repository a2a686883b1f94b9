//! Bots as the API shows them: the `Bot` type and its fields, the `bot` and
//! `bots` queries, and the `createBot` and `leaveBot` mutations.
//!
//! Every field and operation asks the guard first and reads through the
//! store it hands back, scoped to the caller's tenant; an id from another
//! tenant is NOT_FOUND, never a leak. A bot only moves through the
//! lifecycle service (`state.bots`), never by writing its row here.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use attache_protocol::{BotStatus as WireStatus, parse_meeting_url};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::{guard, guard_signed_in};
use super::media::{
    AutoLeave, AutoLeaveInput, BotWarning, ChatMessage, Participant, Recording, SpeakerSegment,
};
use super::paging::{self, TotalCount};
use super::sealed::bot_key;
use super::settings::BotTranscriptionInput;
use super::transcripts::{self, TranscriptSegment};
use crate::entity::{bot, bot_event};
use crate::sealing::Sealer;
use crate::store::{NewBot, now};

const DEFAULT_BOT_NAME: &str = "Attaché Notetaker";
const MAX_BOT_NAME: usize = 100;
const MAX_PAGE: i32 = 100;
const DEFAULT_PAGE: i32 = 20;
const MAX_JOIN_AHEAD_DAYS: i64 = 90;

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

/// A bot, as one of the resolvers below read it behind its guard.
pub(crate) struct Bot(pub(crate) bot::Model);

impl Bot {
    /// The bot's meeting URL and name, opened with its data key. The row
    /// was read behind the guard of the resolver that made this `Bot` (to
    /// create, leave or read bots), so that guard is the one that counts.
    async fn opened(&self, ctx: &Context<'_>) -> Result<(String, String), ApiError> {
        let (state, principal) = guard_signed_in(ctx)?;
        if principal.tenant_id != self.0.tenant_id {
            return Err(ApiError::NotFound);
        }
        let key = state
            .keys
            .existing_bot_key(&self.0)
            .await
            .map_err(ApiError::internal)?;
        crate::sealing::open_bot(key.as_ref(), &self.0).map_err(ApiError::internal)
    }
}

#[Object]
impl Bot {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn meeting_url(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.opened(ctx).await?.0)
    }
    async fn platform(&self) -> GqlPlatform {
        GqlPlatform::from(self.0.platform.0)
    }
    async fn bot_name(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.opened(ctx).await?.1)
    }
    async fn status(&self) -> GqlStatus {
        self.0.status.0.into()
    }
    /// Why the bot ended or failed (`MEETING_ENDED`, `ADMISSION_DENIED`,
    /// `WORKER_LOST`, `NO_CAPACITY`, …). While it is `QUEUED` past its join
    /// time: why it still waits (`NO_WORKER_IN_REGION`, `NO_WORKER_IN_POOL`,
    /// `WORKERS_BUSY`). Null otherwise.
    async fn status_reason(&self) -> Option<&str> {
        match self.0.status.0 {
            WireStatus::Queued => self.0.queue_reason.map(|r| r.as_str()),
            _ => self.0.status_reason.as_deref(),
        }
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
        Ok(events.into_iter().map(BotEvent::from).collect())
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
        let key = bot_key(ctx, &self.0).await?;
        Ok(rows
            .into_iter()
            .map(|p| Participant::open(key.as_ref(), p))
            .collect::<Result<_, _>>()?)
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
        let key = bot_key(ctx, &self.0).await?;
        Ok(rows
            .into_iter()
            .map(|s| SpeakerSegment::open(key.as_ref(), s, zero))
            .collect::<Result<_, _>>()?)
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
            .map(|m| ChatMessage::open(key.as_ref(), m))
            .collect::<Result<_, _>>()?)
    }
    /// What was said, in time order: final segments, and partial ones for
    /// speech still going on. `first`/`after` pages from the start,
    /// `last`/`before` from the end (or back from a cursor).
    async fn transcript(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, TranscriptSegment, TotalCount, EmptyFields>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        transcripts::page(ctx, &scoped, &self.0, (first, after), (last, before)).await
    }
    /// The final transcript as plain text, one `[mm:ss] Speaker: text` line
    /// per segment.
    async fn transcript_text(&self, ctx: &Context<'_>) -> Result<String> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        Ok(transcripts::text(ctx, &scoped, &self.0).await?)
    }
    /// The audio recording; null until the bot is in the call.
    async fn recording(&self, ctx: &Context<'_>) -> Result<Option<Recording>> {
        let (state, _, scoped) = guard(ctx, Action::ReadBots)?;
        let Some(r) = scoped.recording(&self.0.id).await.map_err(ApiError::from)? else {
            return Ok(None);
        };
        Ok(Some(Recording::with_link(state, &self.0.id, r)?))
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

impl From<bot_event::Model> for BotEvent {
    fn from(e: bot_event::Model) -> Self {
        BotEvent {
            bot_id: ID(e.bot_id),
            at: e.at,
            status: e.status.0.into(),
            reason: e.reason,
            detail: e.detail,
        }
    }
}

#[derive(Default)]
pub(crate) struct BotQuery;

#[Object]
impl BotQuery {
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
    /// `first`/`after` pages from the newest; `last`/`before` from the
    /// oldest end (or back from a cursor).
    async fn bots(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        status: Option<GqlStatus>,
    ) -> Result<Connection<String, Bot, TotalCount, EmptyFields>> {
        let (_, _, scoped) = guard(ctx, Action::ReadBots)?;
        let after = after.map(|c| decode_cursor(&c)).transpose()?;
        let before = before.map(|c| decode_cursor(&c)).transpose()?;
        let window = paging::window(first, after, last, before, DEFAULT_PAGE, MAX_PAGE)?;
        let status = status.map(WireStatus::from);
        let page = scoped.bots(&window, status).await.map_err(ApiError::from)?;
        // Counted only when asked for: it is a query of its own.
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            scoped.count_bots(status).await.map_err(ApiError::from)?
        } else {
            0
        };
        let mut conn = Connection::with_additional_fields(
            page.has_previous,
            page.has_next,
            TotalCount { total_count },
        );
        conn.edges.extend(
            page.items
                .into_iter()
                .map(|b| Edge::new(encode_cursor(&b), Bot(b))),
        );
        Ok(conn)
    }
}

fn encode_cursor(b: &bot::Model) -> String {
    paging::encode_cursor(b.created_at.timestamp_millis(), &b.id)
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let (ms, id) = paging::decode_cursor(c)?;
    let at = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| ApiError::BadInput("invalid cursor".into()))?;
    Ok((at, id))
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
pub(crate) struct CreateBotMutation;

#[Object]
impl CreateBotMutation {
    /// Sends a bot to a meeting. It is queued, then dispatched to a worker in
    /// the tenant's region (a dedicated tenant's: of its pool) when its join
    /// time comes. BAD_USER_INPUT if the tenant's region has no object store
    /// on this deployment: nothing of it is kept anywhere else.
    async fn create_bot(&self, ctx: &Context<'_>, input: CreateBotInput) -> Result<Bot> {
        let (state, principal, scoped) = guard(ctx, Action::CreateBot)?;
        crate::audit::note_target(ctx, "bot");
        ctx.data_unchecked::<super::limits::RateLimiter>()
            .take_shared(&principal.tenant_id)
            .await
            .map_err(ApiError::RateLimited)?;
        let (platform, url) = parse_meeting_url(
            &input.meeting_url,
            &state.config.sandbox_origins,
            state.config.platform_replicas,
        )
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
        // Residency: its recordings have a store in its region (or of its
        // own), or it is not created at all.
        let object_store = state
            .objects
            .place(&tenant)
            .map_err(|e| ApiError::BadInput(e.to_string()))?;
        let limits = input
            .auto_leave
            .unwrap_or_default()
            .apply(state.config.default_limits)?;
        let transcription = match input.transcription {
            None => None,
            Some(t) => Some(t.choice(state, &principal.tenant_id).await?),
        };
        // The bot's key is made with it, so nothing of it is ever stored
        // in the clear, starting with where it goes and what it is called.
        let id = uuid::Uuid::new_v4().to_string();
        let made = state
            .keys
            .new_bot_key(&principal.tenant_id, &id)
            .await
            .map_err(ApiError::internal)?;
        let (meeting_url_sealed, bot_name_sealed) =
            Sealer::new(&made.key, &id).bot(url.as_str(), &bot_name);
        let b = state
            .bots
            .create(
                &scoped,
                NewBot {
                    id,
                    region: tenant.region,
                    pool: tenant.pool,
                    object_store,
                    platform,
                    data_key: made.wrapped.clone(),
                    key_generation: Some(made.generation),
                    trace_parent: attache_protocol::trace::traceparent(&tracing::Span::current()),
                    meeting_url_sealed,
                    bot_name_sealed,
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
        state
            .keys
            .settle_new_bot(&principal.tenant_id, &b.id, &made)
            .await
            .map_err(ApiError::internal)?;
        crate::audit::note_target(ctx, format!("bot:{}", b.id));
        Ok(Bot(b))
    }
}

#[derive(Default)]
pub(crate) struct LeaveBotMutation;

#[Object]
impl LeaveBotMutation {
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
