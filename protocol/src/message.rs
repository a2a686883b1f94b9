//! Messages on the fleet link.
//!
//! One bidirectional control stream per connection carries [`WorkerMsg`] up
//! and [`ControlMsg`] down. Each bot's results travel on a unidirectional
//! stream of their own as [`ResultFrame`]s, numbered per (bot, generation);
//! the control plane acknowledges a frame only after it has persisted it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::seal::{DataKey, SealError, Secret};
use crate::{BotStatus, ErrorCode, Platform, StatusReason};

/// Worker → control plane, on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// First message of every connection: what the worker is and what it is
    /// running right now, so the control plane can rebuild observed state.
    Hello {
        protocol_version: u32,
        software_version: String,
        capacity: u32,
        bots: Vec<BotReport>,
    },
    Heartbeat {
        load: Load,
        bots: Vec<BotReport>,
    },
    /// A command the worker will not carry out, and why.
    Refused {
        bot_id: Uuid,
        generation: u64,
        code: ErrorCode,
        message: String,
    },
}

/// What a worker says about one bot it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotReport {
    pub bot_id: Uuid,
    pub generation: u64,
    pub status: BotStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Load {
    pub active_bots: u32,
    pub capacity: u32,
    /// Resident memory of the worker and its browser, in MiB.
    pub rss_mib: u32,
    /// The worker takes no new bots; those it runs go on until they end.
    pub draining: bool,
}

/// Control plane → worker, on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlMsg {
    Welcome {
        worker_id: String,
        region: String,
        heartbeat_interval_ms: u64,
    },
    Assign(Box<Assignment>),
    /// Leave the meeting (the customer asked); the lease stays until the
    /// bot's final status is persisted.
    Cancel {
        bot_id: Uuid,
        generation: u64,
    },
    /// This lease is no longer the worker's: stop the bot if it still runs
    /// and drop its pending results, which will never be accepted.
    Revoke {
        bot_id: Uuid,
        generation: u64,
    },
    /// Everything up to and including `seq` of this bot's result stream is
    /// persisted; the worker may forget it.
    Ack {
        bot_id: Uuid,
        generation: u64,
        seq: u64,
    },
    /// Take no new bots; finish the running ones.
    Drain,
}

/// A lease on one bot, handed to one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub bot_id: Uuid,
    pub generation: u64,
    pub tenant_id: Uuid,
    pub meeting_url: String,
    pub platform: Platform,
    pub bot_name: String,
    pub limits: SessionLimits,
    /// The key this lease seals its results with.
    pub data_key: DataKey,
    /// How to transcribe; `None` records without transcribing.
    pub transcription: Option<TranscriptionSpec>,
    /// The W3C `traceparent` of the dispatch, which the bot's session
    /// continues; `None` when the control plane exports no traces.
    pub trace_parent: Option<String>,
}

/// Which speech-to-text engine a bot uses, with its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionSpec {
    pub provider: TranscriptionProvider,
    /// BCP-47 code such as `en`; `None` lets the engine detect it.
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TranscriptionProvider {
    /// Any server of OpenAI's `/v1/audio/transcriptions` API (OpenAI, Groq,
    /// faster-whisper-server, whisper.cpp's server), fed speech chunks cut
    /// by voice-activity detection. `endpoint` is the base URL, up to and
    /// including `/v1`.
    OpenAiCompatible {
        endpoint: String,
        model: String,
        api_key: Option<Secret>,
    },
    /// Deepgram's streaming API (`wss://…/v1/listen`).
    Deepgram {
        endpoint: String,
        model: String,
        api_key: Secret,
    },
    /// The engine that runs on the worker itself, with no network.
    Local { model: String },
}

impl TranscriptionProvider {
    pub fn kind(&self) -> &'static str {
        match self {
            TranscriptionProvider::OpenAiCompatible { .. } => "OPENAI_COMPATIBLE",
            TranscriptionProvider::Deepgram { .. } => "DEEPGRAM",
            TranscriptionProvider::Local { .. } => "LOCAL",
        }
    }
}

/// Time limits and auto-leave rules of one bot session, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// From opening the page to reaching the lobby or the call.
    pub join_timeout_ms: u64,
    /// Longest wait in the lobby before giving up.
    pub lobby_timeout_ms: u64,
    /// Longest time in the call.
    pub max_duration_ms: u64,
    /// Leave when nobody but the bot has been in the call this long since
    /// it was admitted.
    pub nobody_joined_ms: u64,
    /// Leave when the bot has been alone this long after everyone left.
    pub alone_ms: u64,
    /// Leave after this long with no audio and nobody shown speaking.
    pub silence_ms: u64,
    /// Warn when someone is shown speaking this long while no audio arrives.
    pub no_audio_warning_ms: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            join_timeout_ms: 60_000,
            lobby_timeout_ms: 600_000,
            max_duration_ms: 4 * 3_600_000,
            nobody_joined_ms: 600_000,
            alone_ms: 60_000,
            silence_ms: 900_000,
            no_audio_warning_ms: 15_000,
        }
    }
}

/// One result of one bot, on that bot's result stream: a [`ResultBody`]
/// sealed with the lease's data key, bound to its place in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFrame {
    pub bot_id: Uuid,
    pub generation: u64,
    /// Starts at 1 for each (bot, generation) and has no gaps.
    pub seq: u64,
    /// Unix time in milliseconds, taken by the worker when it happened.
    pub at_ms: i64,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

impl ResultFrame {
    fn context(bot_id: Uuid, generation: u64, seq: u64, at_ms: i64) -> Vec<u8> {
        let mut c = Vec::with_capacity(56);
        c.extend_from_slice(b"attache/result/v1");
        c.extend_from_slice(bot_id.as_bytes());
        c.extend_from_slice(&generation.to_be_bytes());
        c.extend_from_slice(&seq.to_be_bytes());
        c.extend_from_slice(&at_ms.to_be_bytes());
        c
    }

    pub fn seal(
        key: &DataKey,
        bot_id: Uuid,
        generation: u64,
        seq: u64,
        at_ms: i64,
        body: &ResultBody,
    ) -> ResultFrame {
        let plain = postcard::to_allocvec(body).expect("result bodies always encode");
        ResultFrame {
            bot_id,
            generation,
            seq,
            at_ms,
            sealed: key.seal(&Self::context(bot_id, generation, seq, at_ms), &plain),
        }
    }

    /// The body, if this frame was sealed with `key` for exactly this bot,
    /// lease, sequence number and time.
    pub fn open(&self, key: &DataKey) -> Result<ResultBody, SealError> {
        let plain = key.open(
            &Self::context(self.bot_id, self.generation, self.seq, self.at_ms),
            &self.sealed,
        )?;
        postcard::from_bytes(&plain).map_err(|_| SealError::Undecodable)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResultBody {
    Status {
        status: BotStatus,
        reason: Option<StatusReason>,
        /// Human-readable detail for operators (never personal data).
        detail: Option<String>,
    },
    /// Someone other than the bot appeared in the meeting.
    ParticipantJoined {
        participant_id: String,
        name: String,
    },
    ParticipantLeft {
        participant_id: String,
    },
    /// The platform shows this participant speaking, from `at_ms` on.
    SpeakerStarted {
        participant_id: String,
        name: String,
    },
    SpeakerStopped {
        participant_id: String,
    },
    Chat {
        /// Stable per message within one meeting, so a message seen again
        /// (after a re-dispatch, say) is stored once.
        message_id: String,
        sender: String,
        text: String,
    },
    /// The recording begins; `at_ms` of this frame is its time zero.
    RecordingStarted {
        format: String,
    },
    /// The next bytes of the recording, contiguous from `offset`.
    RecordingChunk {
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The recording is complete: these are its totals.
    RecordingFinished {
        size_bytes: u64,
        duration_ms: u64,
        /// Lowercase hex SHA-256 of the whole recording.
        sha256: String,
    },
    /// A stretch of speech as text. Partial segments come while the words
    /// are still being said; the final one with the same `segment_id`
    /// replaces them.
    Transcript(TranscriptSegment),
    /// Something is wrong with the bot that has not (yet) ended it.
    Warning {
        code: WarningCode,
        detail: String,
    },
    /// Results from this frame's `seq` through `through` were dropped by
    /// the worker before they were acknowledged (its spool ran out of
    /// room): the control plane records the loss and goes on after
    /// `through` rather than waiting for frames that will never come.
    Skipped {
        through: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    /// Unique within one lease, at most [`MAX_NAME_CHARS`] characters.
    pub segment_id: String,
    /// Milliseconds into the recording.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Who spoke, from the platform's speaker signal; `None` when the
    /// signal names nobody or more than one person.
    pub speaker: Option<String>,
    pub text: String,
    /// The engine's confidence, 0 to 1.
    pub confidence: f32,
    /// BCP-47 code such as `en`, when the engine says.
    pub language: Option<String>,
    pub is_final: bool,
}

/// Longest transcript segment a frame may carry, in characters.
pub const MAX_TRANSCRIPT_CHARS: usize = 10_000;

/// Largest recording chunk a worker sends in one frame.
pub const MAX_RECORDING_CHUNK: usize = 256 * 1024;

/// Longest participant name, id, or chat sender a frame may carry, in
/// characters; longer ones are cut by the worker and refused by the
/// control plane.
pub const MAX_NAME_CHARS: usize = 256;

/// Longest chat message a frame may carry, in characters.
pub const MAX_CHAT_CHARS: usize = 4_000;

/// Problems a bot reports while it keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WarningCode {
    /// The platform shows someone speaking, but no audio reaches the bot.
    NoAudio,
    /// Audio flows again after a `NoAudio` warning.
    AudioRestored,
    /// The in-page audio capture failed to start.
    CaptureFailed,
    /// The speech-to-text engine failed; audio is still recorded.
    TranscriptionFailed,
    /// Some results were lost before they reached the worker's spool (the
    /// worker process restarted); the detail says how many.
    ResultsLost,
    /// The bot's page has not answered, or its audio has not arrived, for
    /// seconds: the page is starved or hung. The bot is still in its call.
    PageStalled,
}

impl WarningCode {
    pub const ALL: [WarningCode; 6] = [
        WarningCode::NoAudio,
        WarningCode::AudioRestored,
        WarningCode::CaptureFailed,
        WarningCode::TranscriptionFailed,
        WarningCode::ResultsLost,
        WarningCode::PageStalled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::NoAudio => "NO_AUDIO",
            WarningCode::AudioRestored => "AUDIO_RESTORED",
            WarningCode::CaptureFailed => "CAPTURE_FAILED",
            WarningCode::TranscriptionFailed => "TRANSCRIPTION_FAILED",
            WarningCode::ResultsLost => "RESULTS_LOST",
            WarningCode::PageStalled => "PAGE_STALLED",
        }
    }

    pub fn parse(s: &str) -> Option<WarningCode> {
        WarningCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Sent once on the enrollment connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub token: String,
    /// PEM certificate signing request; the private key stays on the worker.
    pub csr_pem: String,
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollResponse {
    Enrolled {
        worker_id: String,
        region: String,
        cert_pem: String,
        ca_pem: String,
        /// The dedicated pool the worker joined (its certificate names it);
        /// `None`: a shared worker of `region`.
        pool: Option<String>,
    },
    Rejected {
        code: ErrorCode,
        message: String,
    },
}

#[cfg(test)]
#[path = "message_tests.rs"]
pub(crate) mod tests;
