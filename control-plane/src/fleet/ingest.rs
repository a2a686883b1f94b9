//! Result ingest: one bot's result stream from its worker. Each frame
//! passes the lease fence, is opened with the bot's data key, checked by
//! [`super::validate`], then written: a status through the lifecycle
//! service, everything else through the store (and the object store for
//! recording chunks) in the batches of the ingest writer ([`super::writer`]).
//! Only then is it acknowledged; a frame that cannot be persisted stops the
//! stream so the worker replays it.
//!
//! Personal fields (names, platform ids, chat, transcripts, recordings)
//! are stored sealed under the bot's key, and platform ids the store
//! matches by as keyed hashes (`crate::sealing`); nothing here keeps them
//! in the clear beyond the live event a subscriber of the same tenant
//! receives.

use attache_protocol::{
    ControlMsg, DataKey, ErrorCode, IoFrameError, ResultFrame, WarningCode, read_frame,
};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::validate::{self, Checked};
use super::writer::Committed;
use crate::AppState;
use crate::entity::bot;
use crate::entity::names::RecordingStatus;
use crate::events::{ActivityEvent, TranscriptEvent};
use crate::recordings;
use crate::sealing::Sealer;
use crate::store::{
    MatchKey, MediaWrite, ResultWrite, Segment, StoreError, Transition, Written, fence, now,
};

/// Frames of one stream handed to the writer and not yet acknowledged;
/// past that, the stream stops reading and QUIC's flow control holds the
/// worker back.
const IN_FLIGHT: usize = 64;

/// Reads one bot's result stream: persist, then acknowledge. Its logs
/// carry the bot's and tenant's ids once the first frame names them.
///
/// Two halves run together: the reader opens each frame and hands it to
/// the writer without waiting for the frame before it to commit; the
/// acknowledger takes the outcomes in the stream's order and acknowledges
/// through the last frame stored, once for every run of frames already
/// committed. A status (a lifecycle move) and a recording's close (which
/// reads what its chunks wrote) wait until every frame before them is
/// acknowledged.
pub(super) async fn results(
    state: AppState,
    worker_id: String,
    stream: quinn::RecvStream,
    tx: mpsc::Sender<ControlMsg>,
) {
    let span = tracing::info_span!(
        "results",
        bot_id = tracing::field::Empty,
        tenant_id = tracing::field::Empty
    );
    let (steps, taken) = mpsc::channel(IN_FLIGHT);
    let reader = read(state.clone(), worker_id, stream, steps, span.clone());
    async move { tokio::join!(reader, acknowledge(state, taken, tx)) }
        .instrument(span)
        .await;
}

/// One frame of the stream, in order, as the acknowledger takes it.
enum Step {
    /// Handed to the writer: stored once its batch commits.
    Written {
        frame: Acked,
        committed: Committed,
        after: Box<After>,
    },
    /// Already dealt with (a status moved, or refused before the writer).
    Done {
        frame: Acked,
        outcome: Result<(), StoreError>,
    },
    /// Answered once everything before it is acknowledged.
    Barrier(oneshot::Sender<()>),
}

/// What an acknowledgement of a frame says.
#[derive(Clone, Copy)]
struct Acked {
    bot_id: uuid::Uuid,
    generation: u64,
    /// The last sequence number the frame stands for.
    through: u64,
}

async fn read(
    state: AppState,
    worker_id: String,
    mut stream: quinn::RecvStream,
    steps: mpsc::Sender<Step>,
    span: tracing::Span,
) {
    let mut named = false;
    // The bot's trace gets a span for the stream's first write and for
    // every status, not one per frame.
    let mut traced = false;
    // The bot as last read (kept only after a frame went through): its
    // tenant and store never change, and its lease is checked against the
    // row again by the writer's fence.
    let mut bot = None;
    let stop = |stream: &mut quinn::RecvStream| {
        let _ = stream.stop(ErrorCode::Internal.quic_code().into());
    };
    loop {
        let read = tokio::select! {
            read = read_frame::<ResultFrame, _>(&mut stream) => read,
            // The acknowledger stopped (a frame not persisted): the
            // worker replays from the last acknowledgement.
            () = steps.closed() => return stop(&mut stream),
        };
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) | Err(IoFrameError::Io(_)) => return,
            Err(e) => {
                rejected(&state, "malformed");
                tracing::warn!(error = %e, "malformed result frame; stream stopped");
                let _ = stream.stop(ErrorCode::ProtocolViolation.quic_code().into());
                return;
            }
        };
        state
            .metrics
            .frames_received
            .with_label_values(&["results"])
            .inc();
        let acked = Acked {
            bot_id: frame.bot_id,
            generation: frame.generation,
            through: frame.seq,
        };
        if !named {
            span.record("bot_id", tracing::field::display(acked.bot_id));
            named = true;
        }
        let step = persist(&state, &worker_id, frame, &mut bot, &mut traced, &steps)
            .await
            .unwrap_or_else(|e| Step::Done {
                frame: acked,
                outcome: Err(e),
            });
        if steps.send(step).await.is_err() {
            return stop(&mut stream);
        }
    }
}

/// Takes the reader's steps in order: acknowledges what was stored, asks
/// the worker to let go of a bot it no longer holds, and stops at a frame
/// that could not be persisted (the reader stops the stream, and the
/// worker replays from the last acknowledgement).
async fn acknowledge(
    state: AppState,
    mut steps: mpsc::Receiver<Step>,
    tx: mpsc::Sender<ControlMsg>,
) {
    // Stored and not acknowledged yet: sent before waiting on anything.
    let mut owed: Option<Acked> = None;
    let ack = |owed: &mut Option<Acked>| {
        let tx = tx.clone();
        let a = owed.take();
        async move {
            if let Some(a) = a {
                let _ = tx
                    .send(ControlMsg::Ack {
                        bot_id: a.bot_id,
                        generation: a.generation,
                        seq: a.through,
                    })
                    .await;
            }
        }
    };
    while let Some(step) = steps.recv().await {
        let (frame, outcome) = match step {
            Step::Barrier(answer) => {
                ack(&mut owed).await;
                let _ = answer.send(());
                continue;
            }
            Step::Done { frame, outcome } => (frame, outcome),
            Step::Written {
                frame,
                mut committed,
                after,
            } => {
                let outcome = match committed.ready() {
                    Some(o) => o,
                    None => {
                        ack(&mut owed).await;
                        committed.outcome().await
                    }
                };
                (frame, after.finish(&state, outcome).await)
            }
        };
        match outcome {
            Ok(()) => owed = Some(frame),
            Err(StoreError::Stale { .. }) | Err(StoreError::NotFound) => {
                ack(&mut owed).await;
                rejected(&state, "stale");
                let _ = tx
                    .send(ControlMsg::Revoke {
                        bot_id: frame.bot_id,
                        generation: frame.generation,
                    })
                    .await;
            }
            Err(e) => {
                ack(&mut owed).await;
                rejected(&state, "unpersisted");
                tracing::warn!(bot_id = %frame.bot_id, error = %e, "result not persisted; the worker will replay it");
                return;
            }
        }
        if steps.is_empty() {
            ack(&mut owed).await;
        }
    }
    ack(&mut owed).await;
}

fn rejected(state: &AppState, reason: &str) {
    state
        .metrics
        .frames_rejected
        .with_label_values(&[reason])
        .inc()
}

/// Waits until every frame before this one is acknowledged.
async fn barrier(steps: &mpsc::Sender<Step>) -> Result<(), StoreError> {
    let stopped = || StoreError::Corrupt("the stream's acknowledgements stopped".into());
    let (answer, answered) = oneshot::channel();
    steps
        .send(Step::Barrier(answer))
        .await
        .map_err(|_| stopped())?;
    answered.await.map_err(|_| stopped())
}

/// One frame, as the lease holder sent it.
struct Frame<'a> {
    worker_id: &'a str,
    bot: &'a bot::Model,
    key: &'a DataKey,
    generation: i64,
    seq: i64,
    at: DateTime<Utc>,
}

/// Opens one frame and hands it on: a status moved through the lifecycle
/// service (once every frame before it is stored), anything else to the
/// writer.
async fn persist(
    state: &AppState,
    worker_id: &str,
    frame: ResultFrame,
    cached: &mut Option<bot::Model>,
    traced: &mut bool,
    steps: &mpsc::Sender<Step>,
) -> Result<Step, StoreError> {
    let id = frame.bot_id.to_string();
    let generation = frame.generation as i64;
    let bot = match cached.take() {
        Some(b) if b.id == id && b.lease_generation == generation => b,
        _ => {
            let b = state.store.bot(&id).await?.ok_or(StoreError::NotFound)?;
            tracing::Span::current().record("tenant_id", b.tenant_id.as_str());
            b
        }
    };
    fence::holder(&bot, worker_id, generation)?;
    // A worker's clock is trusted to within a day; past that, ours is.
    let at = DateTime::from_timestamp_millis(frame.at_ms)
        .filter(|at| (*at - now()).num_seconds().abs() < 86_400)
        .unwrap_or_else(now);
    let key = state.keys.bot_key(&bot).await?;
    let checked = match frame.open(&key) {
        Ok(body) => validate::check(generation, body),
        Err(e) => {
            state
                .metrics
                .frames_rejected
                .with_label_values(&["unsealed"])
                .inc();
            tracing::warn!(bot_id = %id, seq = frame.seq, error = %e, "result frame does not open");
            Checked::Nothing
        }
    };
    let status = matches!(checked, Checked::Status { .. });
    let span = if status || !*traced {
        *traced = true;
        let span = tracing::info_span!(
            "persist results",
            bot_id = %id,
            seq = frame.seq,
            status,
            trace_id = tracing::field::Empty
        );
        attache_protocol::trace::follow(&span, bot.trace_parent.as_deref());
        span
    } else {
        tracing::Span::none()
    };
    let f = Frame {
        worker_id,
        bot: &bot,
        key: &key,
        generation,
        seq: frame.seq as i64,
        at,
    };
    let acked = |through: u64| Acked {
        bot_id: frame.bot_id,
        generation: frame.generation,
        through: through.max(frame.seq),
    };
    match checked {
        Checked::NotTheWorkers => Err(StoreError::Stale {
            got: generation,
            current: bot.lease_generation,
        }),
        Checked::Status {
            status,
            reason,
            detail,
        } => {
            barrier(steps).await?;
            let mut t = Transition::new(&id, status, reason);
            t.expect_generation = Some(generation);
            t.result_seq = Some(f.seq);
            t.detail = detail;
            t.at = at;
            // The row moved: read it again for the next frame.
            let outcome = state.bots.apply(t).instrument(span).await.map(|_| ());
            Ok(Step::Done {
                frame: acked(frame.seq),
                outcome,
            })
        }
        // Persisted (or persisted before) as one place: acknowledged
        // through the last frame it stands for.
        Checked::Skipped { through } if through >= frame.seq => {
            let lost = through - frame.seq + 1;
            tracing::warn!(bot_id = %id, from = frame.seq, through, "the worker dropped {lost} results before they were acknowledged");
            let (committed, after) = write(state, &f, Checked::Skipped { through })
                .instrument(span)
                .await?;
            *cached = Some(bot.clone());
            Ok(Step::Written {
                frame: acked(through),
                committed,
                after,
            })
        }
        checked => {
            if matches!(checked, Checked::RecordingFinished { .. }) {
                barrier(steps).await?;
            }
            let (committed, after) = write(state, &f, checked).instrument(span).await?;
            *cached = Some(bot.clone());
            Ok(Step::Written {
                frame: acked(frame.seq),
                committed,
                after,
            })
        }
    }
}

/// Hands what a bot saw and heard to the writer.
async fn write(
    state: &AppState,
    f: &Frame<'_>,
    checked: Checked,
) -> Result<(Committed, Box<After>), StoreError> {
    let (tenant_id, bot_id) = (f.bot.tenant_id.as_str(), f.bot.id.as_str());
    let s = Sealer::new(f.key, bot_id);
    let person = |id: String| MatchKey {
        hash: s.participant_hash(&id),
        clear: id,
    };
    let mut closes_recording = false;
    let mut transcript = None;
    // The bot's own store, chosen at its creation: never another region's.
    let objects = || {
        state
            .objects
            .for_bot(f.bot)
            .map_err(|e| StoreError::Corrupt(format!("object store: {e}")))
    };
    let write = match checked {
        Checked::Status { .. } | Checked::NotTheWorkers => {
            unreachable!("statuses are lifecycle moves")
        }
        Checked::Nothing => MediaWrite::Nothing,
        Checked::Skipped { through } if through as i64 >= f.seq => {
            state
                .metrics
                .bot_warnings
                .with_label_values(&[WarningCode::ResultsLost.as_str()])
                .inc();
            MediaWrite::Skipped {
                through: through as i64,
                detail: format!(
                    "the worker dropped {} results (sequence {} through {through}) before they \
                     were acknowledged: its spool had no room left for them",
                    through as i64 - f.seq + 1,
                    f.seq
                ),
            }
        }
        // Names no frame after itself: keeps its place only.
        Checked::Skipped { .. } => MediaWrite::Nothing,
        // A stay and a turn begin at the frame's time: what they are
        // bound to, with the person's hash.
        Checked::ParticipantJoined { key, name } => {
            let sealed = s.participant(&key, &name, f.at);
            MediaWrite::ParticipantJoined {
                key: MatchKey {
                    hash: sealed.key_hash,
                    clear: key,
                },
                id_sealed: sealed.id_sealed,
                name_sealed: sealed.name_sealed,
            }
        }
        Checked::ParticipantLeft { key } => MediaWrite::ParticipantLeft { key: person(key) },
        Checked::SpeakerStarted { key, name } => {
            let sealed = s.speaker(&key, &name, f.at);
            MediaWrite::SpeakerStarted {
                key: MatchKey {
                    hash: sealed.key_hash,
                    clear: key,
                },
                id_sealed: sealed.id_sealed,
                name_sealed: sealed.name_sealed,
            }
        }
        Checked::SpeakerStopped { key } => MediaWrite::SpeakerStopped { key: person(key) },
        Checked::Chat { key, sender, text } => {
            let sealed = s.chat(&key, &sender, &text);
            MediaWrite::Chat {
                key: MatchKey {
                    hash: sealed.key_hash,
                    clear: key,
                },
                sender_sealed: sealed.sender_sealed,
                text_sealed: sealed.text_sealed,
            }
        }
        Checked::Transcript { key, segment } => {
            let write = MediaWrite::Transcript(Segment {
                text_sealed: s.transcript_text(&key, &segment.text),
                speaker_sealed: segment
                    .speaker
                    .as_deref()
                    .map(|who| s.transcript_speaker(&key, who)),
                key: key.clone(),
                start_ms: segment.start_ms as i64,
                end_ms: segment.end_ms as i64,
                confidence: segment.confidence as f64,
                language: segment.language.clone(),
                is_final: segment.is_final,
            });
            transcript = Some(TranscriptEvent {
                tenant_id: tenant_id.to_string(),
                bot_id: bot_id.to_string(),
                segment_key: key,
                segment: Some(segment),
            });
            write
        }
        Checked::RecordingStarted { format } => MediaWrite::RecordingStarted {
            format,
            object_key: recordings::final_key(tenant_id, bot_id),
        },
        Checked::RecordingChunk { offset, bytes } => {
            // Written, sealed, before the frame is acknowledged; a replay
            // writes the same audio to the same key.
            let len = bytes.len() as i64;
            let chunk = recordings::chunk_key(tenant_id, bot_id, f.generation, offset);
            let sealed = f.key.seal(chunk.as_bytes(), &bytes);
            objects()?
                .put(&chunk, sealed)
                .await
                .map_err(|e| StoreError::Corrupt(format!("object store: {e}")))?;
            MediaWrite::RecordingChunk {
                offset: offset as i64,
                len,
            }
        }
        Checked::RecordingFinished {
            size_bytes,
            duration_ms,
            sha256,
        } => match state.store.recording(bot_id).await? {
            Some(r) if r.generation == f.generation && r.status == RecordingStatus::Recording => {
                let joined = recordings::join(objects()?, f.key, tenant_id, bot_id, f.generation)
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("object store: {e}")))?;
                let intact = joined.size_bytes as u64 == size_bytes && joined.sha256 == sha256;
                if !intact {
                    tracing::warn!(
                        bot_id,
                        worker_size = size_bytes,
                        stored_size = joined.size_bytes,
                        "recording does not match the worker's totals"
                    );
                }
                closes_recording = true;
                MediaWrite::RecordingFinished {
                    status: if intact {
                        RecordingStatus::Ready
                    } else {
                        RecordingStatus::Corrupt
                    },
                    object_key: recordings::final_key(tenant_id, bot_id),
                    size_bytes: joined.size_bytes,
                    duration_ms: duration_ms as i64,
                    sha256: joined.sha256,
                }
            }
            // Already closed (a replay after the commit) or never opened.
            _ => MediaWrite::Nothing,
        },
        Checked::Warning { code, detail } => {
            state
                .metrics
                .bot_warnings
                .with_label_values(&[code.as_str()])
                .inc();
            MediaWrite::Warning {
                code: code.as_str().to_string(),
                detail,
            }
        }
    };
    let activity = matches!(
        write,
        MediaWrite::ParticipantJoined { .. }
            | MediaWrite::ParticipantLeft { .. }
            | MediaWrite::SpeakerStarted { .. }
            | MediaWrite::SpeakerStopped { .. }
            | MediaWrite::Chat { .. }
            | MediaWrite::Warning { .. }
            | MediaWrite::Skipped { .. }
    );
    let write = ResultWrite {
        bot_id: bot_id.to_string(),
        worker_id: f.worker_id.to_string(),
        generation: f.generation,
        seq: f.seq,
        at: f.at,
        write,
    };
    let committed = state.results.submit(write).await?;
    let after = After {
        tenant_id: tenant_id.to_string(),
        bot_id: bot_id.to_string(),
        generation: f.generation,
        seq: f.seq,
        closes_recording: closes_recording.then(|| f.bot.object_store.clone()),
        activity,
        transcript,
    };
    Ok((committed, Box::new(after)))
}

/// What follows a frame's commit: its live events, its metrics, and the
/// chunks of a recording it closed.
struct After {
    tenant_id: String,
    bot_id: String,
    generation: i64,
    seq: i64,
    /// The object store of the recording the frame closed.
    closes_recording: Option<Option<String>>,
    activity: bool,
    transcript: Option<TranscriptEvent>,
}

impl After {
    async fn finish(
        self,
        state: &AppState,
        outcome: Result<Written, StoreError>,
    ) -> Result<(), StoreError> {
        let (tenant_id, bot_id) = (self.tenant_id.as_str(), self.bot_id.as_str());
        match outcome? {
            Written::Applied => {
                if let Some(store) = &self.closes_recording
                    && let Ok(objects) = state.objects.named(store.as_deref())
                {
                    recordings::drop_chunks(objects, tenant_id, bot_id, self.generation).await;
                }
                if self.activity {
                    state.events.publish_activity(ActivityEvent {
                        tenant_id: self.tenant_id.clone(),
                        bot_id: self.bot_id.clone(),
                    });
                }
                if let Some(t) = self.transcript {
                    let kind = if t.segment.as_ref().is_some_and(|s| s.is_final) {
                        "final"
                    } else {
                        "partial"
                    };
                    state
                        .metrics
                        .transcript_segments
                        .with_label_values(&[kind])
                        .inc();
                    state.events.publish_transcript(t);
                }
            }
            Written::Duplicate => {}
            Written::Refused(why) => {
                rejected(state, "invalid");
                tracing::warn!(bot_id, seq = self.seq, why, "result frame refused");
            }
        }
        Ok(())
    }
}
