//! Live transcription: the recording's 16 kHz mono audio goes to the
//! bot's speech-to-text engine, and what comes back becomes transcript
//! segments, named from the platform's speaker signal.
//!
//! Every engine sits behind [`SpeechToText`]. Engines that take whole
//! requests (any OpenAI-compatible `/v1/audio/transcriptions` server, and
//! the worker's own local engine, which speaks the same API on loopback)
//! are fed utterances cut by voice-activity detection ([`vad`]), with a
//! partial request every few seconds of ongoing speech; Deepgram streams.
//!
//! An engine runs as a task of its own and must never hold up the
//! recording: the recorder hands it audio without waiting, and a bot whose
//! engine fails keeps recording.

mod deepgram;
mod local;
mod openai;
pub(crate) mod vad;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use attache_protocol::{
    ResultBody, TranscriptSegment, TranscriptionProvider, TranscriptionSpec, WarningCode,
};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::results::{Emitter, now_ms};

pub(crate) use local::LocalEngine;

/// Sample rate of the audio engines get.
pub(crate) const RATE: u32 = 16_000;

/// What the recorder sends the transcriber.
#[derive(Debug)]
pub(crate) enum Audio {
    /// The recording started at this Unix time (ms).
    Begin { start_ms: i64 },
    /// The next 20 ms of the recording, 16 kHz mono.
    Block(Vec<f32>),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SttError {
    #[error("the engine refused the request: {0}")]
    Refused(String),
    #[error("the engine is unreachable: {0}")]
    Unreachable(String),
    #[error("the engine's answer is malformed: {0}")]
    Malformed(String),
    #[error("the local engine is not available on this worker: {0}")]
    Unavailable(String),
}

/// Text for one stretch of audio.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recognized {
    pub text: String,
    pub confidence: f32,
    pub language: Option<String>,
}

/// One speech-to-text engine, for one bot: it reads the recording's audio
/// until the channel closes and reports segments through `out`.
pub(crate) trait SpeechToText: Send {
    fn run(self: Box<Self>, audio: mpsc::Receiver<Audio>, out: Output) -> BoxFuture<'static, ()>;
}

/// Who the platform showed speaking, when (Unix ms).
#[derive(Clone, Default)]
pub(crate) struct SpeakerLog {
    turns: Arc<Mutex<Vec<Turn>>>,
}

#[derive(Debug, Clone)]
struct Turn {
    id: String,
    name: String,
    start: i64,
    end: Option<i64>,
}

/// Speaking indicators lag the voice a little either way.
const INDICATOR_SLACK_MS: i64 = 400;
/// A name is given only if that person was shown speaking for at least
/// this share of the stretch and nobody else was.
const NAMED_SHARE: f64 = 0.3;

impl SpeakerLog {
    /// Follows the speaker events the roster produces.
    pub(crate) fn observe(&self, at_ms: i64, body: &ResultBody) {
        let mut turns = self.turns.lock().expect("speaker log");
        match body {
            ResultBody::SpeakerStarted {
                participant_id,
                name,
            } => turns.push(Turn {
                id: participant_id.clone(),
                name: name.clone(),
                start: at_ms,
                end: None,
            }),
            ResultBody::SpeakerStopped { participant_id } => {
                if let Some(t) = turns
                    .iter_mut()
                    .rev()
                    .find(|t| &t.id == participant_id && t.end.is_none())
                {
                    t.end = Some(at_ms);
                }
            }
            _ => {}
        }
        // A long meeting keeps only recent turns.
        if turns.len() > 10_000 {
            turns.drain(..5_000);
        }
    }

    /// When the person shown speaking changed, after `after` (Unix ms): the
    /// start of each turn by someone other than the turn before it, oldest
    /// first.
    pub(crate) fn changes_after(&self, after: i64) -> Vec<i64> {
        let turns = self.turns.lock().expect("speaker log");
        let mut out = Vec::new();
        for i in (1..turns.len()).rev() {
            if turns[i].start <= after {
                break;
            }
            if turns[i].id != turns[i - 1].id {
                out.push(turns[i].start);
            }
        }
        out.reverse();
        out
    }

    /// The one person shown speaking through `[from, to]`, or `None` when
    /// nobody or several people were.
    pub(crate) fn who(&self, from: i64, to: i64, now: i64) -> Option<String> {
        let turns = self.turns.lock().expect("speaker log");
        let span = (to - from).max(1) as f64;
        let mut shares: Vec<(String, f64)> = Vec::new();
        for t in turns.iter() {
            let s = t.start - INDICATOR_SLACK_MS;
            let e = t.end.unwrap_or(now) + INDICATOR_SLACK_MS;
            let overlap = (e.min(to) - s.max(from)).max(0) as f64;
            if overlap <= 0.0 {
                continue;
            }
            match shares.iter_mut().find(|(n, _)| *n == t.id) {
                Some((_, v)) => *v += overlap,
                None => shares.push((t.id.clone(), overlap)),
            }
        }
        let named: Vec<&(String, f64)> = shares
            .iter()
            .filter(|(_, v)| v / span >= NAMED_SHARE)
            .collect();
        match named.as_slice() {
            [(id, _)] => turns
                .iter()
                .rev()
                .find(|t| &t.id == id)
                .map(|t| t.name.clone()),
            _ => None,
        }
    }
}

/// Where an engine's results go: numbered segments for the bot's result
/// stream, named from the speaker log.
pub(crate) struct Output {
    pub emitter: Emitter,
    pub speakers: SpeakerLog,
    pub language: Option<String>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Unix ms of the recording's start, once known.
    pub start_ms: Option<i64>,
    warned: bool,
}

impl Output {
    pub(crate) fn new(
        emitter: Emitter,
        speakers: SpeakerLog,
        language: Option<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Output {
        Output {
            emitter,
            speakers,
            language,
            metrics,
            start_ms: None,
            warned: false,
        }
    }

    /// Reports one segment (`start`/`end` in ms into the recording).
    /// `ended` is when the utterance ended, for the latency figure.
    pub(crate) async fn segment(
        &self,
        id: String,
        start: u64,
        end: u64,
        r: Recognized,
        is_final: bool,
        ended: Option<Instant>,
    ) {
        let text = r.text.trim();
        if text.is_empty() {
            return;
        }
        let zero = self.start_ms.unwrap_or_else(now_ms);
        let now = now_ms();
        let speaker = self
            .speakers
            .who(zero + start as i64, zero + end as i64, now);
        let text: String = text
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .take(attache_protocol::MAX_TRANSCRIPT_CHARS)
            .collect();
        if is_final {
            self.metrics.transcript_segments.inc();
            if let Some(t) = ended {
                self.metrics
                    .transcription_latency_ms
                    .observe(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        self.emitter
            .send(
                now,
                ResultBody::Transcript(TranscriptSegment {
                    segment_id: id,
                    start_ms: start,
                    end_ms: end.max(start),
                    speaker,
                    text,
                    confidence: r.confidence.clamp(0.0, 1.0),
                    language: r.language.or_else(|| self.language.clone()),
                    is_final,
                }),
            )
            .await;
    }

    /// Says once that the engine fails (and keeps recording).
    pub(crate) async fn failed(&mut self, e: &SttError) {
        self.metrics.transcription_errors.inc();
        tracing::warn!(error = %e, "transcription failed");
        if !self.warned {
            self.warned = true;
            let mut detail = e.to_string();
            detail.truncate(400);
            self.emitter
                .send(
                    now_ms(),
                    ResultBody::Warning {
                        code: WarningCode::TranscriptionFailed,
                        detail,
                    },
                )
                .await;
        }
    }
}

/// Engines the worker can build, with what they share: one HTTP client,
/// and the local engine (started on first use, shared by every bot).
pub(crate) struct Engines {
    http: reqwest::Client,
    local: LocalEngine,
}

impl Engines {
    pub(crate) fn new(config: &Config) -> Engines {
        Engines {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            local: LocalEngine::new(config),
        }
    }

    /// The engine for one bot's settings; `bot` names its stream to the
    /// local engine, which shares itself fairly among the bots.
    pub(crate) async fn build(
        &self,
        spec: &TranscriptionSpec,
        bot: &str,
    ) -> Result<Box<dyn SpeechToText>, SttError> {
        Ok(match &spec.provider {
            TranscriptionProvider::OpenAiCompatible {
                endpoint,
                model,
                api_key,
            } => Box::new(openai::Chunked::new(openai::Client {
                http: self.http.clone(),
                base: endpoint.clone(),
                model: model.clone(),
                api_key: api_key.clone(),
                language: spec.language.clone(),
                stream: None,
            })),
            TranscriptionProvider::Local { model } => {
                let base = self.local.endpoint().await?;
                Box::new(openai::Chunked::new(openai::Client {
                    http: self.http.clone(),
                    base,
                    model: model.clone(),
                    api_key: None,
                    language: spec.language.clone(),
                    stream: Some(bot.to_string()),
                }))
            }
            TranscriptionProvider::Deepgram {
                endpoint,
                model,
                api_key,
            } => Box::new(deepgram::Streaming {
                endpoint: endpoint.clone(),
                model: model.clone(),
                api_key: api_key.clone(),
                language: spec.language.clone(),
            }),
        })
    }
}

/// 16-bit PCM WAV of 16 kHz mono samples.
pub(crate) fn wav(pcm: &[f32]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str, name: &str) -> ResultBody {
        ResultBody::SpeakerStarted {
            participant_id: id.into(),
            name: name.into(),
        }
    }

    fn stopped(id: &str) -> ResultBody {
        ResultBody::SpeakerStopped {
            participant_id: id.into(),
        }
    }

    #[test]
    fn names_the_one_speaker_and_no_one_when_ambiguous() {
        let log = SpeakerLog::default();
        log.observe(1_000, &started("a", "Alice"));
        log.observe(5_000, &stopped("a"));
        log.observe(6_000, &started("b", "Bob"));
        log.observe(9_000, &stopped("b"));
        log.observe(8_000, &started("c", "Carol"));
        log.observe(12_000, &stopped("c"));
        assert_eq!(log.who(1_200, 4_800, 20_000).as_deref(), Some("Alice"));
        assert_eq!(log.who(6_100, 7_500, 20_000).as_deref(), Some("Bob"));
        // Bob and Carol both speak through this stretch: no guess.
        assert_eq!(log.who(7_500, 9_500, 20_000), None);
        // Nobody shown speaking.
        assert_eq!(log.who(14_000, 16_000, 20_000), None);
        // A turn still open counts up to now.
        log.observe(17_000, &started("a", "Alice"));
        assert_eq!(log.who(17_100, 19_000, 20_000).as_deref(), Some("Alice"));
    }

    #[test]
    fn a_change_of_speaker_is_each_turn_by_someone_new() {
        let log = SpeakerLog::default();
        log.observe(1_000, &started("a", "Alice"));
        log.observe(2_000, &stopped("a"));
        // Alice again: her own pause, not a change.
        log.observe(2_300, &started("a", "Alice"));
        log.observe(4_000, &started("b", "Bob"));
        log.observe(4_100, &stopped("a"));
        log.observe(6_000, &stopped("b"));
        log.observe(6_000, &started("c", "Carol"));
        assert_eq!(log.changes_after(0), [4_000, 6_000]);
        assert_eq!(log.changes_after(4_000), [6_000]);
        assert!(log.changes_after(6_000).is_empty());
    }

    #[test]
    fn wav_header_describes_the_samples() {
        let w = wav(&[0.0, 0.5, -1.0, 2.0]);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(w[40..44].try_into().unwrap()), 8);
        assert_eq!(i16::from_le_bytes([w[46], w[47]]), 16383);
        assert_eq!(i16::from_le_bytes([w[50], w[51]]), 32767, "clipped");
    }
}
