//! One enrolled worker's fleet connection: the control stream (hello,
//! heartbeats, commands) and one result stream per bot.

use std::time::Duration;

use attache_protocol::{
    Assignment, BotStatus, ControlMsg, DataKey, ErrorCode, MAX_CHAT_CHARS, MAX_NAME_CHARS,
    MAX_RECORDING_CHUNK, MAX_TRANSCRIPT_CHARS, PROTOCOL_VERSION, Platform, ResultBody, ResultFrame,
    SessionLimits, StatusReason, TranscriptSegment, WorkerMsg, read_frame, write_frame,
};
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ca::fingerprint;
use super::reconcile::{HeldLease, Repair, reconcile};
use super::registry::Link;
use crate::AppState;
use crate::entity::{bot, worker};
use crate::events::TranscriptEvent;
use crate::keys::field_context;
use crate::recordings;
use crate::store::{Applied, MediaWrite, StoreError, Stored, Transition};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands queued for one worker; a worker this far behind is overloaded.
const COMMAND_QUEUE: usize = 256;

fn close(conn: &quinn::Connection, code: ErrorCode, why: &str) {
    conn.close(code.quic_code().into(), why.as_bytes());
}

async fn identify(state: &AppState, conn: &quinn::Connection) -> Option<worker::Model> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    let leaf = certs.first()?;
    state
        .store
        .worker_by_fingerprint(&fingerprint(leaf))
        .await
        .ok()?
}

pub(super) async fn serve(state: &AppState, conn: quinn::Connection, shutdown: CancellationToken) {
    let Some(worker) = identify(state, &conn).await else {
        close(
            &conn,
            ErrorCode::Unauthenticated,
            "unknown or revoked worker certificate",
        );
        return;
    };
    let span = tracing::info_span!("fleet", worker_id = %worker.id);
    let _enter = span.enter();
    drop(_enter);
    if let Err((code, why)) = run(state, &conn, &worker, shutdown).await {
        state
            .metrics
            .frames_rejected
            .with_label_values(&[code.as_str()])
            .inc();
        tracing::warn!(worker_id = %worker.id, code = %code, "closing worker link: {why}");
        close(&conn, code, &why);
    }
}

async fn run(
    state: &AppState,
    conn: &quinn::Connection,
    worker: &worker::Model,
    shutdown: CancellationToken,
) -> Result<(), (ErrorCode, String)> {
    let violation = |why: String| (ErrorCode::ProtocolViolation, why);
    let (mut send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| violation("no control stream".into()))?
        .map_err(|e| violation(format!("no control stream: {e}")))?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame::<WorkerMsg, _>(&mut recv))
        .await
        .map_err(|_| violation("no hello".into()))?
        .map_err(|e| violation(format!("bad hello: {e}")))?;
    let Some(WorkerMsg::Hello {
        protocol_version,
        capacity,
        bots,
        ..
    }) = hello
    else {
        return Err(violation("first message must be hello".into()));
    };
    if protocol_version != PROTOCOL_VERSION {
        return Err(violation(format!(
            "protocol version {protocol_version} is not {PROTOCOL_VERSION}"
        )));
    }
    write_frame(
        &mut send,
        &ControlMsg::Welcome {
            worker_id: worker.id.clone(),
            region: worker.region.clone(),
            heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        },
    )
    .await
    .map_err(|e| (ErrorCode::Internal, e.to_string()))?;

    let (tx, mut rx) = mpsc::channel::<ControlMsg>(COMMAND_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if write_frame(&mut send, &msg).await.is_err() {
                break;
            }
        }
    });
    let conn_id = conn.stable_id();
    let link = Link {
        conn_id,
        tx: tx.clone(),
        conn: conn.clone(),
    };
    if let Some(old) = state
        .fleet
        .connect(&worker.id, &worker.region, capacity, link)
    {
        close(
            &old.conn,
            ErrorCode::Forbidden,
            "replaced by a newer connection",
        );
    }
    let _ = state
        .store
        .set_worker_state(&worker.id, "connected", Some(capacity as i32))
        .await;
    state
        .metrics
        .workers_connected
        .set(state.fleet.connected() as i64);
    tracing::info!(worker_id = %worker.id, capacity, bots = bots.len(), "worker connected");

    let outcome = async {
        repair(state, &worker.id, &bots).await;
        state.dispatch_wakeup.notify_one();
        // Heartbeats reach the database at most this often: enough for other
        // replicas to know the worker is alive, well inside the grace period.
        let touch_every = state.config.worker_grace / 4;
        let mut last_touch = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                frame = read_frame::<WorkerMsg, _>(&mut recv) => match frame {
                    Ok(Some(WorkerMsg::Heartbeat { load, .. })) => {
                        state.metrics.frames_received.with_label_values(&["control"]).inc();
                        state.fleet.heartbeat(&worker.id, load);
                        if last_touch.elapsed() >= touch_every {
                            last_touch = std::time::Instant::now();
                            if let Err(e) = state.store.touch_worker(&worker.id).await {
                                tracing::warn!(error = %e, "cannot record a heartbeat");
                            }
                        }
                    }
                    Ok(Some(WorkerMsg::Refused { bot_id, generation, code, message })) => {
                        tracing::info!(%bot_id, generation, code = %code, "worker refused a command: {message}");
                        if code == ErrorCode::ResourceExhausted {
                            // Full or draining: the bot goes back to the queue.
                            let id = bot_id.to_string();
                            if let Err(e) = super::expire_leases(state, &worker.id, Some((&id, generation as i64))).await {
                                tracing::warn!(error = %e, "cannot requeue a refused bot; the sweep will retry");
                            }
                        }
                    }
                    Ok(Some(WorkerMsg::Hello { .. })) => return Err(violation("second hello".into())),
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        if matches!(e, attache_protocol::IoFrameError::Io(_)) {
                            return Ok(());
                        }
                        return Err(violation(format!("control stream: {e}")));
                    }
                },
                uni = conn.accept_uni() => match uni {
                    Ok(stream) => {
                        let state = state.clone();
                        let worker_id = worker.id.clone();
                        let tx = tx.clone();
                        tokio::spawn(async move { results(state, worker_id, stream, tx).await });
                    }
                    Err(_) => return Ok(()),
                },
            }
        }
    }
    .await;
    state.fleet.disconnect(&worker.id, conn_id);
    let _ = state
        .store
        .set_worker_state(&worker.id, "reconnecting", None)
        .await;
    state
        .metrics
        .workers_connected
        .set(state.fleet.connected() as i64);
    writer.abort();
    tracing::info!(worker_id = %worker.id, "worker link closed");
    outcome
}

/// Compares the worker's hello with the stored leases and repairs the gap.
async fn repair(state: &AppState, worker_id: &str, reported: &[attache_protocol::BotReport]) {
    let held: Vec<HeldLease> = match state.store.leased_bots(Some(worker_id)).await {
        Ok(bots) => bots
            .iter()
            .filter_map(|b| {
                Some(HeldLease {
                    bot_id: b.id.parse().ok()?,
                    generation: b.lease_generation as u64,
                    status: BotStatus::parse(&b.status)?,
                    leave_requested: b.leave_requested,
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read leases to reconcile; the sweep will retry");
            return;
        }
    };
    for r in reconcile(&held, reported) {
        match r {
            Repair::Revoke { bot_id, generation } => {
                state
                    .fleet
                    .send(worker_id, ControlMsg::Revoke { bot_id, generation });
            }
            Repair::Cancel { bot_id, generation } => {
                state
                    .fleet
                    .send(worker_id, ControlMsg::Cancel { bot_id, generation });
            }
            Repair::Reassign { bot_id } => {
                if let Ok(Some(b)) = state.store.bot(&bot_id.to_string()).await
                    && let Some(a) = assignment(state, &b).await
                {
                    state.fleet.send(worker_id, ControlMsg::Assign(Box::new(a)));
                }
            }
            Repair::Expire { bot_id, generation } => {
                let id = bot_id.to_string();
                if let Err(e) =
                    super::expire_leases(state, worker_id, Some((&id, generation as i64))).await
                {
                    tracing::warn!(error = %e, "cannot expire a lease; the sweep will retry");
                }
            }
        }
    }
}

/// The Assign command for a leased bot, with its data key (made now if
/// this is its first lease) and its transcription settings. `None` if the
/// key or settings cannot be read: the dispatch sweep tries again.
pub(crate) async fn assignment(state: &AppState, b: &bot::Model) -> Option<Assignment> {
    let data_key = match state.keys.bot_key(b).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(bot_id = %b.id, error = %e, "cannot get the bot's data key");
            return None;
        }
    };
    let transcription = match crate::transcription::spec_for(state, b).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(bot_id = %b.id, error = %e, "cannot read the bot's transcription settings");
            return None;
        }
    };
    // The deployment's, not the bot's.
    let no_audio_warning_ms = state.config.default_limits.no_audio_warning_ms;
    Some(Assignment {
        bot_id: b.id.parse().ok()?,
        generation: b.lease_generation as u64,
        tenant_id: b.tenant_id.parse().ok()?,
        meeting_url: b.meeting_url.clone(),
        platform: Platform::parse(&b.platform)?,
        bot_name: b.bot_name.clone(),
        limits: SessionLimits {
            join_timeout_ms: b.join_timeout_ms as u64,
            lobby_timeout_ms: b.lobby_timeout_ms as u64,
            max_duration_ms: b.max_duration_ms as u64,
            nobody_joined_ms: b.nobody_joined_ms as u64,
            alone_ms: b.alone_ms as u64,
            silence_ms: b.silence_ms as u64,
            no_audio_warning_ms,
        },
        data_key,
        transcription,
    })
}

/// Reads one bot's result stream: persist, then acknowledge.
async fn results(
    state: AppState,
    worker_id: String,
    mut stream: quinn::RecvStream,
    tx: mpsc::Sender<ControlMsg>,
) {
    loop {
        let frame = match read_frame::<ResultFrame, _>(&mut stream).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(attache_protocol::IoFrameError::Io(_)) => return,
            Err(e) => {
                state
                    .metrics
                    .frames_rejected
                    .with_label_values(&["malformed"])
                    .inc();
                tracing::warn!(worker_id = %worker_id, error = %e, "malformed result frame; stream stopped");
                let _ = stream.stop(ErrorCode::ProtocolViolation.quic_code().into());
                return;
            }
        };
        state
            .metrics
            .frames_received
            .with_label_values(&["results"])
            .inc();
        let (bot_id, generation, seq) = (frame.bot_id, frame.generation, frame.seq);
        match persist(&state, &worker_id, frame).await {
            Ok(()) => {
                let _ = tx
                    .send(ControlMsg::Ack {
                        bot_id,
                        generation,
                        seq,
                    })
                    .await;
            }
            Err(StoreError::Stale { .. }) | Err(StoreError::NotFound) => {
                state
                    .metrics
                    .frames_rejected
                    .with_label_values(&["stale"])
                    .inc();
                let _ = tx.send(ControlMsg::Revoke { bot_id, generation }).await;
            }
            Err(e) => {
                state
                    .metrics
                    .frames_rejected
                    .with_label_values(&["unpersisted"])
                    .inc();
                tracing::warn!(worker_id = %worker_id, %bot_id, error = %e, "result not persisted; the worker will replay it");
                let _ = stream.stop(ErrorCode::Internal.quic_code().into());
                return;
            }
        }
    }
}

async fn persist(state: &AppState, worker_id: &str, frame: ResultFrame) -> Result<(), StoreError> {
    let id = frame.bot_id.to_string();
    // Only the lease holder may speak for a bot.
    let bot = state.store.bot(&id).await?.ok_or(StoreError::NotFound)?;
    if bot.worker_id.as_deref() != Some(worker_id)
        && bot.lease_generation as u64 == frame.generation
    {
        return Err(StoreError::Stale {
            got: frame.generation as i64,
            current: bot.lease_generation,
        });
    }
    let at = chrono::DateTime::from_timestamp_millis(frame.at_ms)
        .filter(|at| (*at - crate::store::now()).num_seconds().abs() < 86_400)
        .unwrap_or_else(crate::store::now);
    let key = state.keys.bot_key(&bot).await?;
    let body = match frame.open(&key) {
        Ok(body) => body,
        Err(e) => {
            // Keeps its place in the sequence; nothing of it is stored.
            state
                .metrics
                .frames_rejected
                .with_label_values(&["unsealed"])
                .inc();
            tracing::warn!(bot_id = %id, seq = frame.seq, error = %e, "result frame does not open");
            return persist_media(
                state,
                &bot,
                &key,
                frame.generation as i64,
                frame.seq as i64,
                at,
                None,
            )
            .await;
        }
    };
    match body {
        ResultBody::Status { status, .. } if !status.is_leased() && !status.is_final() => {
            // Queuing is the control plane's decision, never a worker's.
            Err(StoreError::Stale {
                got: frame.generation as i64,
                current: bot.lease_generation,
            })
        }
        ResultBody::Status {
            status,
            reason,
            detail,
        } => {
            let reason = if status == BotStatus::Ended && reason.is_none() {
                Some(StatusReason::MeetingEnded)
            } else {
                reason
            };
            let mut t = Transition::new(&id, status, reason);
            t.expect_generation = Some(frame.generation as i64);
            t.result_seq = Some(frame.seq as i64);
            t.detail = detail.map(|d| d.chars().take(500).collect());
            t.at = at;
            if let Applied::Moved(_, ev) = state.store.transition(t).await? {
                state
                    .metrics
                    .transitions
                    .with_label_values(&[status.as_str()])
                    .inc();
                state.events.publish(ev);
                if status == BotStatus::Queued || status.is_final() {
                    state.dispatch_wakeup.notify_one();
                }
            }
            Ok(())
        }
        body => {
            persist_media(
                state,
                &bot,
                &key,
                frame.generation as i64,
                frame.seq as i64,
                at,
                Some(body),
            )
            .await
        }
    }
}

/// A name, id or sender as a frame may carry it.
fn short(s: String) -> Option<String> {
    let n = s.chars().count();
    (n > 0 && n <= MAX_NAME_CHARS && !s.chars().any(char::is_control)).then_some(s)
}

/// Stores what a bot saw and heard. A body that fails validation keeps its
/// place in the sequence (so the stream goes on) and is counted, not stored.
async fn persist_media(
    state: &AppState,
    bot: &bot::Model,
    key: &DataKey,
    generation: i64,
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    body: Option<ResultBody>,
) -> Result<(), StoreError> {
    let (tenant_id, bot_id) = (bot.tenant_id.as_str(), bot.id.as_str());
    // An earlier lease's frames write nothing, not even a chunk object.
    if generation != bot.lease_generation {
        return Err(StoreError::Stale {
            got: generation,
            current: bot.lease_generation,
        });
    }
    let mut after_commit = None;
    let mut transcript = None;
    let Some(body) = body else {
        return store_media(
            state,
            bot,
            generation,
            seq,
            at,
            MediaWrite::Nothing,
            None,
            None,
        )
        .await;
    };
    let write = match body {
        ResultBody::Status { .. } => unreachable!("status frames are persisted as transitions"),
        ResultBody::ParticipantJoined {
            participant_id,
            name,
        } => match (short(participant_id), short(name)) {
            (Some(key), Some(name)) => MediaWrite::ParticipantJoined { key, name },
            _ => MediaWrite::Nothing,
        },
        ResultBody::ParticipantLeft { participant_id } => match short(participant_id) {
            Some(key) => MediaWrite::ParticipantLeft { key },
            None => MediaWrite::Nothing,
        },
        ResultBody::SpeakerStarted {
            participant_id,
            name,
        } => match (short(participant_id), short(name)) {
            (Some(key), Some(name)) => MediaWrite::SpeakerStarted { key, name },
            _ => MediaWrite::Nothing,
        },
        ResultBody::SpeakerStopped { participant_id } => match short(participant_id) {
            Some(key) => MediaWrite::SpeakerStopped { key },
            None => MediaWrite::Nothing,
        },
        ResultBody::Chat {
            message_id,
            sender,
            text,
        } => match (short(message_id), short(sender)) {
            (Some(message_key), Some(sender)) if text.chars().count() <= MAX_CHAT_CHARS => {
                let ctx = |field: &str| field_context(field, bot_id, &message_key);
                MediaWrite::Chat {
                    sender_sealed: key.seal(&ctx("chat-sender"), sender.as_bytes()),
                    text_sealed: key.seal(&ctx("chat-text"), text.as_bytes()),
                    key: message_key,
                }
            }
            _ => MediaWrite::Nothing,
        },
        ResultBody::Transcript(seg) => match checked_segment(generation, seg) {
            Some((segment_key, seg)) => {
                let write = MediaWrite::Transcript {
                    text_sealed: key.seal(
                        &field_context("transcript", bot_id, &segment_key),
                        seg.text.as_bytes(),
                    ),
                    key: segment_key.clone(),
                    start_ms: seg.start_ms as i64,
                    end_ms: seg.end_ms as i64,
                    speaker: seg.speaker.clone(),
                    confidence: seg.confidence as f64,
                    language: seg.language.clone(),
                    is_final: seg.is_final,
                };
                transcript = Some(TranscriptEvent {
                    tenant_id: tenant_id.to_string(),
                    bot_id: bot_id.to_string(),
                    segment_key,
                    segment: seg,
                });
                write
            }
            None => MediaWrite::Nothing,
        },
        ResultBody::RecordingStarted { format } if format == recordings::FORMAT => {
            MediaWrite::RecordingStarted {
                format,
                object_key: recordings::final_key(tenant_id, bot_id),
            }
        }
        ResultBody::RecordingStarted { .. } => MediaWrite::Nothing,
        ResultBody::RecordingChunk { offset, bytes }
            if !bytes.is_empty() && bytes.len() <= MAX_RECORDING_CHUNK =>
        {
            // Written, sealed, before the frame is acknowledged; a replay
            // writes the same audio to the same key.
            let len = bytes.len() as i64;
            let chunk = recordings::chunk_key(tenant_id, bot_id, generation, offset);
            state
                .objects
                .put(&chunk, key.seal(chunk.as_bytes(), &bytes))
                .await
                .map_err(|e| StoreError::Corrupt(format!("object store: {e}")))?;
            MediaWrite::RecordingChunk {
                offset: offset as i64,
                len,
            }
        }
        ResultBody::RecordingChunk { .. } => MediaWrite::Nothing,
        ResultBody::RecordingFinished {
            size_bytes,
            duration_ms,
            sha256,
        } => match state.store.recording(bot_id).await? {
            Some(r) if r.generation == generation && r.status == "RECORDING" => {
                let joined = recordings::join(&state.objects, key, tenant_id, bot_id, generation)
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
                after_commit = Some(generation);
                MediaWrite::RecordingFinished {
                    status: if intact { "READY" } else { "CORRUPT" },
                    object_key: recordings::final_key(tenant_id, bot_id),
                    size_bytes: joined.size_bytes,
                    duration_ms: duration_ms as i64,
                    sha256: joined.sha256,
                }
            }
            // Already closed (a replay after the commit) or never opened.
            _ => MediaWrite::Nothing,
        },
        ResultBody::Warning { code, detail } => {
            state
                .metrics
                .bot_warnings
                .with_label_values(&[code.as_str()])
                .inc();
            MediaWrite::Warning {
                code: code.as_str().to_string(),
                detail: detail.chars().take(500).collect(),
            }
        }
    };
    store_media(
        state,
        bot,
        generation,
        seq,
        at,
        write,
        after_commit,
        transcript,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn store_media(
    state: &AppState,
    bot: &bot::Model,
    generation: i64,
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    write: MediaWrite,
    after_commit: Option<i64>,
    transcript: Option<TranscriptEvent>,
) -> Result<(), StoreError> {
    let (tenant_id, bot_id) = (bot.tenant_id.as_str(), bot.id.as_str());
    match state
        .store
        .apply_result(bot_id, generation, seq, at, write)
        .await?
    {
        Stored::Applied => {
            if let Some(g) = after_commit {
                recordings::drop_chunks(&state.objects, tenant_id, bot_id, g).await;
            }
            if let Some(t) = transcript {
                let kind = if t.segment.is_final {
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
        Stored::Duplicate => {}
        Stored::Refused(why) => {
            state
                .metrics
                .frames_rejected
                .with_label_values(&["invalid"])
                .inc();
            tracing::warn!(bot_id, seq, why, "result frame refused");
        }
    }
    Ok(())
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
