//! What a bot saw and heard, as the API shows it: participants, the speaker
//! timeline, chat, the recording and warnings; and the auto-leave rules a
//! caller sets when creating a bot.
//!
//! These are shapes built from rows a resolver has already read behind the
//! guard, opened with the key it fetched; nothing here reads the store, so
//! nothing here can reach another tenant's data.

use async_graphql::{Enum, InputObject, SimpleObject};
use attache_protocol::{DataKey, SessionLimits};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use crate::AppState;
use crate::entity::{bot_warning, chat_message, participant, recording, speaker_segment};
use crate::sealing::{open_chat, open_participant, open_speaker};
use crate::store::now;

/// When a bot leaves on its own. Every field is optional; omitted ones take
/// the deployment's defaults. Each rule ends the bot with its own reason.
#[derive(InputObject, Default)]
pub(crate) struct AutoLeaveInput {
    /// Give up waiting in the lobby after this long (FAILED LOBBY_TIMEOUT).
    lobby_timeout_seconds: Option<i32>,
    /// Leave if nobody else joins within this long of the bot entering
    /// (ENDED NOBODY_JOINED).
    nobody_joined_seconds: Option<i32>,
    /// Leave after being alone this long once everyone left
    /// (ENDED ALONE_TOO_LONG).
    alone_seconds: Option<i32>,
    /// Leave after this long with no audio and nobody speaking
    /// (ENDED SILENCE_TOO_LONG).
    silence_seconds: Option<i32>,
    /// Leave after this long in the call (ENDED MAX_DURATION).
    max_duration_seconds: Option<i32>,
}

const MAX_RULE_SECONDS: i32 = 24 * 3600;

impl AutoLeaveInput {
    /// The bot's limits: these rules over the deployment's defaults.
    pub(crate) fn apply(&self, mut limits: SessionLimits) -> Result<SessionLimits, ApiError> {
        let rules = [
            (
                "lobbyTimeoutSeconds",
                self.lobby_timeout_seconds,
                &mut limits.lobby_timeout_ms,
            ),
            (
                "nobodyJoinedSeconds",
                self.nobody_joined_seconds,
                &mut limits.nobody_joined_ms,
            ),
            ("aloneSeconds", self.alone_seconds, &mut limits.alone_ms),
            (
                "silenceSeconds",
                self.silence_seconds,
                &mut limits.silence_ms,
            ),
            (
                "maxDurationSeconds",
                self.max_duration_seconds,
                &mut limits.max_duration_ms,
            ),
        ];
        for (name, value, slot) in rules {
            if let Some(v) = value {
                if !(1..=MAX_RULE_SECONDS).contains(&v) {
                    return Err(ApiError::BadInput(format!(
                        "autoLeave.{name} must be between 1 and {MAX_RULE_SECONDS}"
                    )));
                }
                *slot = v as u64 * 1000;
            }
        }
        Ok(limits)
    }
}

/// The rules a bot runs with, as stored.
#[derive(SimpleObject)]
pub(crate) struct AutoLeave {
    lobby_timeout_seconds: i64,
    nobody_joined_seconds: i64,
    alone_seconds: i64,
    silence_seconds: i64,
    max_duration_seconds: i64,
}

impl AutoLeave {
    pub(crate) fn of(b: &crate::entity::bot::Model) -> AutoLeave {
        AutoLeave {
            lobby_timeout_seconds: b.lobby_timeout_ms / 1000,
            nobody_joined_seconds: b.nobody_joined_ms / 1000,
            alone_seconds: b.alone_ms / 1000,
            silence_seconds: b.silence_ms / 1000,
            max_duration_seconds: b.max_duration_ms / 1000,
        }
    }
}

/// Someone the bot saw in the meeting (the bot itself is not listed). A
/// person who left and came back has one entry per stay.
#[derive(SimpleObject)]
pub(crate) struct Participant {
    /// The platform's id for the person where it shows one, else their name.
    participant_id: String,
    name: String,
    joined_at: DateTime<Utc>,
    left_at: Option<DateTime<Utc>>,
}

impl Participant {
    /// A stored stay, its id and name opened with the bot's key.
    pub(crate) fn open(key: Option<&DataKey>, p: participant::Model) -> Result<Self, ApiError> {
        let (participant_id, name) = open_participant(key, &p).map_err(ApiError::internal)?;
        Ok(Participant {
            participant_id,
            name,
            joined_at: p.joined_at,
            left_at: p.left_at,
        })
    }
}

/// One stretch of someone speaking, as the platform showed it.
#[derive(SimpleObject)]
pub(crate) struct SpeakerSegment {
    participant_id: String,
    name: String,
    started_at: DateTime<Utc>,
    /// Null while they are still speaking.
    ended_at: Option<DateTime<Utc>>,
    /// Milliseconds from the start of the recording (or, without one, from
    /// when the bot entered the call), to seek the recording with.
    start_offset_ms: Option<i64>,
    end_offset_ms: Option<i64>,
}

impl SpeakerSegment {
    /// A stored turn, its id and name opened with the bot's key.
    pub(crate) fn open(
        key: Option<&DataKey>,
        s: speaker_segment::Model,
        zero: Option<DateTime<Utc>>,
    ) -> Result<Self, ApiError> {
        let offset = |t: DateTime<Utc>| zero.map(|z| (t - z).num_milliseconds());
        let (participant_id, name) = open_speaker(key, &s).map_err(ApiError::internal)?;
        Ok(SpeakerSegment {
            start_offset_ms: offset(s.started_at),
            end_offset_ms: s.ended_at.and_then(offset),
            participant_id,
            name,
            started_at: s.started_at,
            ended_at: s.ended_at,
        })
    }
}

#[derive(SimpleObject)]
pub(crate) struct ChatMessage {
    sender: String,
    text: String,
    /// When the bot saw it.
    sent_at: DateTime<Utc>,
}

impl ChatMessage {
    /// A stored message, its sender and text opened with the bot's key.
    pub(crate) fn open(key: Option<&DataKey>, m: chat_message::Model) -> Result<Self, ApiError> {
        let (sender, text) = open_chat(key, &m).map_err(ApiError::internal)?;
        Ok(ChatMessage {
            sender,
            text,
            sent_at: m.sent_at,
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::entity::names::RecordingStatus")]
pub(crate) enum RecordingStatus {
    /// The bot is in the call; chunks are arriving.
    Recording,
    /// Complete and checked against the worker's size and checksum.
    Ready,
    /// The bot's worker was lost: what arrived before is kept.
    Partial,
    /// The bot was lost before any audio arrived.
    Empty,
    /// The stored bytes do not match what the worker recorded.
    Corrupt,
}

#[derive(SimpleObject)]
pub(crate) struct Recording {
    status: RecordingStatus,
    /// MIME type: `audio/ogg; codecs=opus` (16 kHz mono Opus).
    format: String,
    duration_ms: Option<i64>,
    size_bytes: i64,
    /// Lowercase hex SHA-256 of the file.
    sha256: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    /// A short-lived URL that downloads the file with no credentials; null
    /// until the recording is closed.
    download_url: Option<String>,
    download_url_expires_at: Option<DateTime<Utc>>,
}

impl Recording {
    /// A bot's recording, with a fresh download link once it can be
    /// downloaded.
    pub(crate) fn with_link(
        state: &AppState,
        bot_id: &str,
        r: recording::Model,
    ) -> Result<Recording, ApiError> {
        let url = if Recording::downloadable(&r) {
            let ttl = state.config.download_ttl;
            let url = state
                .objects
                .download_url(
                    &r.object_key,
                    &format!("{bot_id}.ogg"),
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
        Ok(Recording::new(r, url))
    }

    fn new(r: recording::Model, url: Option<(String, DateTime<Utc>)>) -> Recording {
        let status = RecordingStatus::from(r.status.0);
        let (download_url, download_url_expires_at) = url.unzip();
        Recording {
            status,
            format: r.format,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            started_at: r.started_at,
            finished_at: r.finished_at,
            download_url,
            download_url_expires_at,
        }
    }

    fn downloadable(r: &recording::Model) -> bool {
        use crate::entity::names::RecordingStatus as S;
        matches!(r.status.0, S::Ready | S::Partial) && r.size_bytes > 0
    }
}

/// Something wrong with a bot that has not ended it.
#[derive(SimpleObject)]
pub(crate) struct BotWarning {
    /// `NO_AUDIO` (someone is shown speaking but no audio reaches the bot),
    /// `AUDIO_RESTORED`, `CAPTURE_FAILED`, `TRANSCRIPTION_FAILED`,
    /// `RESULTS_LOST` (a worker restarted; the message says what was lost),
    /// `PAGE_STALLED` (the bot's meeting page has not answered for seconds;
    /// the bot is still in its call).
    code: String,
    message: String,
    at: DateTime<Utc>,
}

impl From<bot_warning::Model> for BotWarning {
    fn from(w: bot_warning::Model) -> Self {
        BotWarning {
            code: w.code,
            message: w.detail,
            at: w.at,
        }
    }
}
