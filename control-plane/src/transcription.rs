//! Which speech-to-text engine a bot uses: the bot's own choice if it made
//! one, else its tenant's settings, else the deployment's default. Provider
//! credentials are stored sealed with the tenant's key and leave the
//! control plane only inside a worker's lease, over the fleet link.

use attache_protocol::{Secret, TranscriptionProvider, TranscriptionSpec};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::entity::{bot, transcription_setting};
use crate::store::StoreError;

/// The engine the worker runs itself, by default.
pub(crate) const LOCAL_MODEL: &str = "tiny.en";

/// A provider kind as the API and the database name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Kind {
    None,
    Local,
    OpenaiCompatible,
    Deepgram,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::None => "NONE",
            Kind::Local => "LOCAL",
            Kind::OpenaiCompatible => "OPENAI_COMPATIBLE",
            Kind::Deepgram => "DEEPGRAM",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        [
            Kind::None,
            Kind::Local,
            Kind::OpenaiCompatible,
            Kind::Deepgram,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub(crate) fn needs_credentials(self) -> bool {
        matches!(self, Kind::OpenaiCompatible | Kind::Deepgram)
    }
}

/// A bot's override, stored as JSON on the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BotChoice {
    pub provider: Option<Kind>,
    pub language: Option<String>,
}

/// The deployment's default for tenants with no settings of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultTranscription {
    None,
    /// The engine on the worker (`attache-stt`, Whisper tiny.en).
    Local,
}

fn setting_context(tenant_id: &str) -> Vec<u8> {
    format!("attache/transcription-key/{tenant_id}").into_bytes()
}

/// Seals a provider API key for storage.
pub(crate) async fn seal_api_key(
    state: &AppState,
    tenant_id: &str,
    api_key: &str,
) -> Result<Vec<u8>, StoreError> {
    let key = state.keys.tenant_key(tenant_id).await?;
    Ok(key.seal(&setting_context(tenant_id), api_key.as_bytes()))
}

async fn open_api_key(
    state: &AppState,
    s: &transcription_setting::Model,
) -> Result<Option<Secret>, StoreError> {
    let Some(sealed) = &s.api_key_sealed else {
        return Ok(None);
    };
    let key = state.keys.tenant_key(&s.tenant_id).await?;
    let plain = key
        .open(&setting_context(&s.tenant_id), sealed)
        .map_err(|e| StoreError::Corrupt(format!("a provider key does not open: {e}")))?;
    let text = String::from_utf8(plain)
        .map_err(|_| StoreError::Corrupt("a provider key is not text".into()))?;
    Ok(Some(Secret::new(text)))
}

/// What the worker is told for this bot.
pub(crate) async fn spec_for(
    state: &AppState,
    b: &bot::Model,
) -> Result<Option<TranscriptionSpec>, StoreError> {
    let choice: Option<BotChoice> = b
        .transcription
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let setting = state.store.transcription_setting(&b.tenant_id).await?;
    let language = choice
        .as_ref()
        .and_then(|c| c.language.clone())
        .or_else(|| setting.as_ref().and_then(|s| s.language.clone()));
    let kind = match (choice.as_ref().and_then(|c| c.provider), &setting) {
        (Some(k), _) => k,
        (None, Some(s)) => Kind::parse(&s.provider).unwrap_or(Kind::None),
        (None, None) => match state.config.default_transcription {
            DefaultTranscription::None => Kind::None,
            DefaultTranscription::Local => Kind::Local,
        },
    };
    let provider = match kind {
        Kind::None => return Ok(None),
        Kind::Local => TranscriptionProvider::Local {
            model: LOCAL_MODEL.into(),
        },
        Kind::OpenaiCompatible | Kind::Deepgram => {
            // Credentials come from the tenant's settings for that provider.
            let Some(s) = setting.filter(|s| s.provider == kind.as_str()) else {
                tracing::warn!(bot_id = %b.id, provider = kind.as_str(), "no settings for the bot's provider; not transcribing");
                return Ok(None);
            };
            let api_key = open_api_key(state, &s).await?;
            let endpoint = s.endpoint.clone().unwrap_or_default();
            if kind == Kind::OpenaiCompatible {
                TranscriptionProvider::OpenAiCompatible {
                    endpoint,
                    model: s.model.clone(),
                    api_key,
                }
            } else {
                let Some(api_key) = api_key else {
                    return Ok(None);
                };
                TranscriptionProvider::Deepgram {
                    endpoint,
                    model: s.model.clone(),
                    api_key,
                }
            }
        }
    };
    Ok(Some(TranscriptionSpec { provider, language }))
}

/// Checks a BCP-47-ish language code: letters, digits and dashes.
pub(crate) fn valid_language(code: &str) -> bool {
    (2..=35).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && code.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_languages() {
        for k in [
            Kind::None,
            Kind::Local,
            Kind::OpenaiCompatible,
            Kind::Deepgram,
        ] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert!(Kind::Deepgram.needs_credentials() && !Kind::Local.needs_credentials());
        for ok in ["en", "en-US", "pt-BR", "zh-Hant-TW"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in ["", "e", "en_US", "1en", "en us", &"x".repeat(40)] {
            assert!(!valid_language(bad), "{bad}");
        }
        let json = serde_json::to_string(&BotChoice {
            provider: Some(Kind::OpenaiCompatible),
            language: None,
        })
        .unwrap();
        assert_eq!(json, r#"{"provider":"OPENAI_COMPATIBLE","language":null}"#);
    }
}
