//! A tenant's settings: its speech-to-text engine (and a bot's own choice
//! over it), and the first retention setting: one number of days for
//! recordings, transcripts and chat (per-class rules and legal holds are in
//! `retention.rs`).
//!
//! Every query and mutation here asks the guard for `ManageSettings` first;
//! a bot's own choice is checked by `createBot`, behind its own guard. A
//! provider's API key is sealed before it is stored and is never returned:
//! the API only says whether one is stored.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use crate::AppState;
use crate::audit::note_target;
use crate::entity::transcription_setting;
use crate::store::now;
use crate::transcription::{BotChoice, Kind, valid_language};

const MAX_RETENTION_DAYS: i32 = attache_tenant_policy::MAX_RETENTION_DAYS as i32;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::transcription::Kind")]
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

/// A bot's own transcription choice; omitted fields follow the tenant.
#[derive(InputObject, Default)]
pub(crate) struct BotTranscriptionInput {
    pub provider: Option<TranscriptionProviderKind>,
    /// BCP-47 code such as `en`; omitted: the tenant's, or detected.
    pub language: Option<String>,
}

impl BotTranscriptionInput {
    /// The choice as a bot stores it. A provider that needs credentials
    /// must have them in the tenant's settings already.
    pub(crate) async fn choice(
        self,
        state: &AppState,
        tenant_id: &str,
    ) -> Result<String, ApiError> {
        if let Some(l) = &self.language
            && !valid_language(l)
        {
            return Err(ApiError::BadInput(
                "transcription.language must be a language code such as en or pt-BR".into(),
            ));
        }
        let provider = self.provider.map(Kind::from);
        if let Some(k) = provider.filter(|k| k.needs_credentials()) {
            let configured = state
                .store
                .transcription_setting(tenant_id)
                .await?
                .is_some_and(|s| s.provider == k.as_str());
            if !configured {
                return Err(ApiError::BadInput(format!(
                    "transcription.provider {} needs the tenant's settings for it first (setTranscriptionSettings)",
                    k.as_str()
                )));
            }
        }
        serde_json::to_string(&BotChoice {
            provider,
            language: self.language,
        })
        .map_err(ApiError::internal)
    }
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
            provider: Kind::parse(&s.provider).unwrap_or(Kind::None).into(),
            endpoint: s.endpoint,
            model: s.model,
            language: s.language,
            has_api_key: s.api_key_sealed.is_some(),
            updated_at: s.updated_at,
        }
    }
}

#[derive(Default)]
pub(crate) struct TranscriptionSettingsQuery;

#[Object]
impl TranscriptionSettingsQuery {
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
}

#[derive(Default)]
pub(crate) struct TranscriptionSettingsMutation;

#[Object]
impl TranscriptionSettingsMutation {
    /// Chooses the tenant's speech-to-text engine. The API key is stored
    /// sealed and never shown again.
    async fn set_transcription_settings(
        &self,
        ctx: &Context<'_>,
        input: TranscriptionSettingsInput,
    ) -> Result<TranscriptionSettings> {
        let (state, principal, _) = guard(ctx, Action::ManageSettings)?;
        note_target(ctx, "transcription_settings");
        let tenant_id = principal.tenant_id.clone();
        let kind = Kind::from(input.provider);
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
        let row = transcription_setting::Model {
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
}

#[derive(SimpleObject)]
pub(crate) struct TenantSettings {
    /// Days an ended bot's transcript, chat and recording are kept; null:
    /// the platform's defaults apply. A rule of `setRetentionPolicy` for
    /// one of these classes comes first (see `retentionPolicy`).
    retention_days: Option<i32>,
}

#[derive(Default)]
pub(crate) struct RetentionQuery;

#[Object]
impl RetentionQuery {
    async fn tenant_settings(&self, ctx: &Context<'_>) -> Result<TenantSettings> {
        let (_, _, scoped) = guard(ctx, Action::ManageSettings)?;
        let t = scoped
            .tenant()
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(TenantSettings {
            retention_days: t.retention_days,
        })
    }
}

#[derive(Default)]
pub(crate) struct RetentionMutation;

#[Object]
impl RetentionMutation {
    /// How long ended bots' transcripts, chat and recordings are kept (null:
    /// as the platform's defaults say). The retention sweep deletes them
    /// once expired, unless a legal hold keeps them; `setRetentionPolicy`
    /// sets each class on its own.
    async fn set_retention(&self, ctx: &Context<'_>, days: Option<i32>) -> Result<TenantSettings> {
        let (_, _, scoped) = guard(ctx, Action::ManageSettings)?;
        note_target(ctx, "retention");
        if let Some(d) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&d)
        {
            return Err(ApiError::BadInput(format!(
                "days must be between 1 and {MAX_RETENTION_DAYS}"
            ))
            .into());
        }
        scoped.set_retention(days).await.map_err(ApiError::from)?;
        Ok(TenantSettings {
            retention_days: days,
        })
    }
}
