//! Transcripts, webhooks and tenant settings as the API shows them. Sealed
//! values (transcript text, chat, provider keys, webhook secrets) are opened
//! here, after the guard, for the caller's own tenant only.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use attache_protocol::DataKey;
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::ApiError;
use super::media::ChatMessage;
use super::schema::guard;
use crate::entity::{
    bot, chat_message, tenant_notice, transcript_segment, transcription_setting, webhook_attempt,
    webhook_delivery, webhook_endpoint,
};
use crate::keys::field_context;
use crate::transcription::Kind;

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

fn open_text(key: Option<&DataKey>, ctx: &[u8], sealed: &[u8]) -> Result<String, ApiError> {
    let key = key.ok_or_else(|| ApiError::internal("a sealed row of a bot with no key"))?;
    let plain = key.open(ctx, sealed).map_err(ApiError::internal)?;
    String::from_utf8(plain).map_err(ApiError::internal)
}

pub(crate) fn open_chat(
    key: Option<&DataKey>,
    m: chat_message::Model,
) -> Result<ChatMessage, ApiError> {
    match (&m.sender_sealed, &m.text_sealed) {
        (Some(s), Some(t)) => {
            let sender = open_text(
                key,
                &field_context("chat-sender", &m.bot_id, &m.message_key),
                s,
            )?;
            let text = open_text(
                key,
                &field_context("chat-text", &m.bot_id, &m.message_key),
                t,
            )?;
            Ok(ChatMessage::new(sender, text, m.sent_at))
        }
        // Stored before sealing.
        _ => Ok(ChatMessage::new(m.sender, m.text, m.sent_at)),
    }
}

/// A stretch of speech as text.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct TranscriptSegment {
    /// Stable across the partial versions and the final one.
    id: ID,
    /// Milliseconds into the recording.
    start_ms: i64,
    end_ms: i64,
    /// Who spoke, from the platform's speaker signal; null when it named
    /// nobody or several people.
    speaker: Option<String>,
    text: String,
    /// The engine's confidence, 0 to 1.
    confidence: f64,
    language: Option<String>,
    /// False while the words may still change.
    is_final: bool,
}

impl TranscriptSegment {
    pub(crate) fn open(
        key: Option<&DataKey>,
        m: &transcript_segment::Model,
    ) -> Result<Self, ApiError> {
        Ok(TranscriptSegment {
            id: ID(m.segment_key.clone()),
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            speaker: m.speaker.clone(),
            text: open_text(
                key,
                &field_context("transcript", &m.bot_id, &m.segment_key),
                &m.text_sealed,
            )?,
            confidence: m.confidence,
            language: m.language.clone(),
            is_final: m.is_final,
        })
    }

    pub(crate) fn live(e: &crate::events::TranscriptEvent) -> Self {
        TranscriptSegment {
            id: ID(e.segment_key.clone()),
            start_ms: e.segment.start_ms as i64,
            end_ms: e.segment.end_ms as i64,
            speaker: e.segment.speaker.clone(),
            text: e.segment.text.clone(),
            confidence: e.segment.confidence as f64,
            language: e.segment.language.clone(),
            is_final: e.segment.is_final,
        }
    }

    /// One line of the plain-text transcript: `[mm:ss] Name: text`.
    pub(crate) fn line(&self) -> String {
        let s = self.start_ms.max(0) / 1000;
        format!(
            "[{:02}:{:02}] {}: {}",
            s / 60,
            s % 60,
            self.speaker.as_deref().unwrap_or("Unknown speaker"),
            self.text.trim()
        )
    }
}

pub(crate) fn encode_segment_cursor(m: &transcript_segment::Model) -> String {
    hex::encode(format!("{}|{}", m.start_ms, m.id))
}

pub(crate) fn decode_segment_cursor(c: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::BadInput("invalid cursor".into());
    let raw = String::from_utf8(hex::decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (a, b) = raw.split_once('|').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum TranscriptionProviderKind {
    /// Do not transcribe.
    None,
    /// The engine on the worker itself (Whisper tiny.en); no network.
    Local,
    /// Any server of OpenAI's `/v1/audio/transcriptions` API.
    OpenaiCompatible,
    /// Deepgram's streaming API.
    Deepgram,
}

impl TranscriptionProviderKind {
    pub(crate) fn kind(self) -> Kind {
        match self {
            TranscriptionProviderKind::None => Kind::None,
            TranscriptionProviderKind::Local => Kind::Local,
            TranscriptionProviderKind::OpenaiCompatible => Kind::OpenaiCompatible,
            TranscriptionProviderKind::Deepgram => Kind::Deepgram,
        }
    }

    fn of(k: Kind) -> Self {
        match k {
            Kind::None => TranscriptionProviderKind::None,
            Kind::Local => TranscriptionProviderKind::Local,
            Kind::OpenaiCompatible => TranscriptionProviderKind::OpenaiCompatible,
            Kind::Deepgram => TranscriptionProviderKind::Deepgram,
        }
    }
}

/// A bot's own transcription choice; omitted fields follow the tenant.
#[derive(InputObject, Default)]
pub(crate) struct BotTranscriptionInput {
    pub provider: Option<TranscriptionProviderKind>,
    /// BCP-47 code such as `en`; omitted: the tenant's, or detected.
    pub language: Option<String>,
}

/// The tenant's speech-to-text engine.
#[derive(InputObject)]
pub(crate) struct TranscriptionSettingsInput {
    pub provider: TranscriptionProviderKind,
    /// Base URL up to and including `/v1` (OPENAI_COMPATIBLE), or the
    /// streaming URL (DEEPGRAM, default `wss://api.deepgram.com/v1/listen`).
    pub endpoint: Option<String>,
    /// The provider's model name (`whisper-1`, `nova-3`, …).
    pub model: Option<String>,
    pub language: Option<String>,
    /// Stored sealed; never shown again. Omit to keep the stored one.
    pub api_key: Option<String>,
}

#[derive(SimpleObject)]
pub(crate) struct TranscriptionSettings {
    provider: TranscriptionProviderKind,
    endpoint: Option<String>,
    model: String,
    language: Option<String>,
    /// Whether an API key is stored (it is never shown).
    has_api_key: bool,
    updated_at: DateTime<Utc>,
}

impl From<transcription_setting::Model> for TranscriptionSettings {
    fn from(s: transcription_setting::Model) -> Self {
        TranscriptionSettings {
            provider: TranscriptionProviderKind::of(Kind::parse(&s.provider).unwrap_or(Kind::None)),
            endpoint: s.endpoint,
            model: s.model,
            language: s.language,
            has_api_key: s.api_key_sealed.is_some(),
            updated_at: s.updated_at,
        }
    }
}

/// Where a tenant receives events.
pub(crate) struct WebhookEndpoint(pub webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    async fn id(&self) -> ID {
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
        let first = first.unwrap_or(50);
        if !(1..=500).contains(&first) {
            return Err(ApiError::BadInput("first must be between 1 and 500".into()).into());
        }
        let rows = scoped
            .webhook_deliveries(&self.0.id, first as u64)
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
    pub url: String,
    /// Any of `bot.status_changed`, `bot.ended`, `recording.ready`,
    /// `transcript.ready`, `webhook_endpoint.disabled`; omitted: all.
    pub event_types: Option<Vec<String>>,
}

pub(crate) struct CreatedWebhookEndpoint {
    pub endpoint: webhook_endpoint::Model,
    pub secret: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_cursors_round_trip() {
        let m = transcript_segment::Model {
            id: 42,
            bot_id: "b".into(),
            tenant_id: "t".into(),
            generation: 1,
            segment_key: "1:u1".into(),
            start_ms: 1500,
            end_ms: 2500,
            speaker: None,
            text_sealed: vec![],
            confidence: 0.9,
            language: None,
            is_final: true,
            updated_at: Utc::now(),
        };
        assert_eq!(
            decode_segment_cursor(&encode_segment_cursor(&m)).unwrap(),
            (1500, 42)
        );
        assert!(decode_segment_cursor("zz").is_err());
    }
}
