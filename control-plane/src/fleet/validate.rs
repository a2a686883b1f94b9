//! The pure half of result ingest: what one opened result frame asks the
//! control plane to do, once its fields are checked. No I/O and no keys: a
//! field that fails its check makes the frame [`Checked::Nothing`], which
//! keeps its place in the bot's sequence (so the stream goes on) and stores
//! nothing.

use attache_protocol::{
    BotStatus, MAX_CHAT_CHARS, MAX_NAME_CHARS, MAX_RECORDING_CHUNK, MAX_TRANSCRIPT_CHARS,
    ResultBody, StatusReason, TranscriptSegment, WarningCode,
};

use crate::recordings;

/// What a checked frame asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Checked {
    /// A move of the bot's lifecycle.
    Status {
        status: BotStatus,
        reason: Option<StatusReason>,
        detail: Option<String>,
    },
    /// A status a worker may never report (queuing is the control plane's
    /// decision): the frame is refused as if its lease were stale.
    NotTheWorkers,
    ParticipantJoined {
        key: String,
        name: String,
    },
    ParticipantLeft {
        key: String,
    },
    SpeakerStarted {
        key: String,
        name: String,
    },
    SpeakerStopped {
        key: String,
    },
    /// Sealed under the bot's key before it is stored.
    Chat {
        key: String,
        sender: String,
        text: String,
    },
    /// Sealed under the bot's key before it is stored; `key` is unique per
    /// lease.
    Transcript {
        key: String,
        segment: TranscriptSegment,
    },
    RecordingStarted {
        format: String,
    },
    RecordingChunk {
        offset: u64,
        bytes: Vec<u8>,
    },
    RecordingFinished {
        size_bytes: u64,
        duration_ms: u64,
        sha256: String,
    },
    Warning {
        code: WarningCode,
        detail: String,
    },
    /// The worker dropped results from this frame's sequence number through
    /// `through` (checked against the frame's place when it is written).
    Skipped {
        through: u64,
    },
    /// Refused (or unreadable): keeps its place in the sequence only.
    Nothing,
}

/// Longest detail kept from a status or warning.
const MAX_DETAIL_CHARS: usize = 500;

/// A name, id or sender as a frame may carry it.
fn short(s: String) -> Option<String> {
    let n = s.chars().count();
    (n > 0 && n <= MAX_NAME_CHARS && !s.chars().any(char::is_control)).then_some(s)
}

fn detail(s: String) -> String {
    s.chars().take(MAX_DETAIL_CHARS).collect()
}

/// Checks one opened frame of lease `generation`.
pub(super) fn check(generation: i64, body: ResultBody) -> Checked {
    match body {
        ResultBody::Status { status, .. } if !status.is_leased() && !status.is_final() => {
            Checked::NotTheWorkers
        }
        ResultBody::Status {
            status,
            reason,
            detail: d,
        } => Checked::Status {
            status,
            // A worker that saw the meeting end may not say why.
            reason: if status == BotStatus::Ended && reason.is_none() {
                Some(StatusReason::MeetingEnded)
            } else {
                reason
            },
            detail: d.map(detail),
        },
        ResultBody::ParticipantJoined {
            participant_id,
            name,
        } => match (short(participant_id), short(name)) {
            (Some(key), Some(name)) => Checked::ParticipantJoined { key, name },
            _ => Checked::Nothing,
        },
        ResultBody::ParticipantLeft { participant_id } => match short(participant_id) {
            Some(key) => Checked::ParticipantLeft { key },
            None => Checked::Nothing,
        },
        ResultBody::SpeakerStarted {
            participant_id,
            name,
        } => match (short(participant_id), short(name)) {
            (Some(key), Some(name)) => Checked::SpeakerStarted { key, name },
            _ => Checked::Nothing,
        },
        ResultBody::SpeakerStopped { participant_id } => match short(participant_id) {
            Some(key) => Checked::SpeakerStopped { key },
            None => Checked::Nothing,
        },
        ResultBody::Chat {
            message_id,
            sender,
            text,
        } => match (short(message_id), short(sender)) {
            (Some(key), Some(sender)) if text.chars().count() <= MAX_CHAT_CHARS => {
                Checked::Chat { key, sender, text }
            }
            _ => Checked::Nothing,
        },
        ResultBody::Transcript(seg) => match checked_segment(generation, seg) {
            Some((key, segment)) => Checked::Transcript { key, segment },
            None => Checked::Nothing,
        },
        ResultBody::RecordingStarted { format } if format == recordings::FORMAT => {
            Checked::RecordingStarted { format }
        }
        ResultBody::RecordingStarted { .. } => Checked::Nothing,
        ResultBody::RecordingChunk { offset, bytes }
            if !bytes.is_empty() && bytes.len() <= MAX_RECORDING_CHUNK =>
        {
            Checked::RecordingChunk { offset, bytes }
        }
        ResultBody::RecordingChunk { .. } => Checked::Nothing,
        ResultBody::RecordingFinished {
            size_bytes,
            duration_ms,
            sha256,
        } => Checked::RecordingFinished {
            size_bytes,
            duration_ms,
            sha256,
        },
        ResultBody::Warning { code, detail: d } => Checked::Warning {
            code,
            detail: detail(d),
        },
        ResultBody::Skipped { through } if through <= i64::MAX as u64 => {
            Checked::Skipped { through }
        }
        ResultBody::Skipped { .. } => Checked::Nothing,
    }
}

/// A transcript segment as a frame may carry it, with its stored key.
fn checked_segment(generation: i64, seg: TranscriptSegment) -> Option<(String, TranscriptSegment)> {
    let id = short(seg.segment_id.clone())?;
    let text_ok = seg.text.chars().count() <= MAX_TRANSCRIPT_CHARS
        && !seg.text.chars().any(|c| c.is_control() && c != '\n');
    let times_ok = seg.start_ms <= seg.end_ms && seg.end_ms - seg.start_ms <= 86_400_000;
    let confidence_ok = seg.confidence.is_finite() && (0.0..=1.0).contains(&seg.confidence);
    let speaker_ok = seg.speaker.clone().is_none_or(|s| short(s).is_some());
    let language_ok = seg
        .language
        .as_deref()
        .is_none_or(crate::transcription::valid_language);
    (text_ok && times_ok && confidence_ok && speaker_ok && language_ok)
        .then(|| (format!("{generation}:{id}"), seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(text: &str, start_ms: u64, end_ms: u64, confidence: f32) -> TranscriptSegment {
        TranscriptSegment {
            segment_id: "s1".into(),
            start_ms,
            end_ms,
            speaker: Some("Ada".into()),
            text: text.into(),
            confidence,
            language: Some("en".into()),
            is_final: true,
        }
    }

    #[test]
    fn what_a_frame_may_carry() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let table: Vec<(ResultBody, bool)> = vec![
            (
                ResultBody::ParticipantJoined {
                    participant_id: "p1".into(),
                    name: "Ada".into(),
                },
                true,
            ),
            (
                ResultBody::ParticipantJoined {
                    participant_id: "p1".into(),
                    name: long.clone(),
                },
                false,
            ),
            (
                ResultBody::ParticipantLeft {
                    participant_id: "".into(),
                },
                false,
            ),
            (
                ResultBody::SpeakerStarted {
                    participant_id: "p\u{7}".into(),
                    name: "Ada".into(),
                },
                false,
            ),
            (
                ResultBody::Chat {
                    message_id: "m".into(),
                    sender: "Ada".into(),
                    text: "x".repeat(MAX_CHAT_CHARS + 1),
                },
                false,
            ),
            (ResultBody::Transcript(segment("hi", 0, 10, 0.9)), true),
            (ResultBody::Transcript(segment("hi", 10, 0, 0.9)), false),
            (
                ResultBody::Transcript(segment("hi", 0, 10, f32::NAN)),
                false,
            ),
            (
                ResultBody::Transcript(segment("a\u{0}b", 0, 10, 0.5)),
                false,
            ),
            (
                ResultBody::RecordingStarted {
                    format: "audio/wav".into(),
                },
                false,
            ),
            (
                ResultBody::RecordingChunk {
                    offset: 0,
                    bytes: vec![],
                },
                false,
            ),
            (
                ResultBody::RecordingChunk {
                    offset: 0,
                    bytes: vec![0; MAX_RECORDING_CHUNK + 1],
                },
                false,
            ),
        ];
        for (body, kept) in table {
            let shown = format!("{body:?}");
            assert_eq!(check(1, body) != Checked::Nothing, kept, "{shown:.120}");
        }
    }

    #[test]
    fn statuses() {
        let ended = check(
            1,
            ResultBody::Status {
                status: BotStatus::Ended,
                reason: None,
                detail: Some("d".repeat(2 * MAX_DETAIL_CHARS)),
            },
        );
        let Checked::Status { reason, detail, .. } = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(reason, Some(StatusReason::MeetingEnded));
        assert_eq!(detail.unwrap().chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(
            check(
                1,
                ResultBody::Status {
                    status: BotStatus::Queued,
                    reason: None,
                    detail: None
                }
            ),
            Checked::NotTheWorkers
        );
    }

    #[test]
    fn transcript_keys_are_per_lease() {
        let Checked::Transcript { key, .. } =
            check(7, ResultBody::Transcript(segment("hi", 0, 10, 0.9)))
        else {
            panic!()
        };
        assert_eq!(key, "7:s1");
    }
}
