//! One bot's life on this worker, from its assignment to its final status:
//! a browser context, its transcriber and its capture, the platform's flow
//! in the meeting, then the page closed and the recording finished.
//!
//! The order at the end matters: the final status is spooled only after
//! the recording is closed and its last transcript segments are in, so
//! that a bot reported ENDED has nothing more to say.

use std::sync::atomic::Ordering;

use attache_protocol::{Assignment, BotStatus, ResultBody, StatusReason, WarningCode};
use tokio_util::sync::CancellationToken;

use super::{BotDeps, Sessions};
use crate::adapter::{self, Outcome};
use crate::capture::{self, Capture, Transcriber};
use crate::results::{Emitter, Reporter, now_ms};
use crate::transcribe::{Output, SpeakerLog};

/// The session task: runs the bot, reports how it ended, and leaves the
/// table.
pub(super) async fn session(
    a: Assignment,
    deps: BotDeps,
    reporter: Reporter,
    cancel: CancellationToken,
    sessions: Sessions,
) {
    reporter.status(BotStatus::Joining).await;
    let (mut status, mut reason, mut detail) = run(&deps, &a, &reporter, cancel).await;
    if reason == StatusReason::LeaveRequested && !sessions.leave_requested(a.bot_id, a.generation) {
        status = BotStatus::Failed;
        reason = StatusReason::WorkerShutdown;
        detail = Some("the worker shut down".into());
    }
    tracing::info!(status = %status, reason = %reason, "bot session finished");
    reporter.finish(status, reason, detail).await;
    sessions.remove(a.bot_id, a.generation);
}

/// Runs one bot from its link to the end of its meeting.
async fn run(
    deps: &BotDeps,
    a: &Assignment,
    reporter: &Reporter,
    cancel: CancellationToken,
) -> Outcome {
    let joining = match turn_to_join(deps, &cancel).await {
        Ok(permit) => permit,
        Err(outcome) => return outcome,
    };
    let ctx = match deps.browser.context().await {
        Ok(c) => c,
        Err(e) => {
            return (
                BotStatus::Failed,
                StatusReason::PlatformError,
                Some(e.to_string()),
            );
        }
    };
    let emitter = reporter.emitter();
    let speakers = SpeakerLog::default();
    let transcriber = transcriber(deps, a, &emitter, &speakers).await;
    let capture = match capture::start(
        &ctx.page,
        emitter.clone(),
        deps.metrics.clone(),
        transcriber,
        &deps.tasks,
    )
    .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "audio capture unavailable");
            emitter
                .send(
                    now_ms(),
                    ResultBody::Warning {
                        code: WarningCode::CaptureFailed,
                        detail: "audio capture could not be installed in the page".into(),
                    },
                )
                .await;
            None
        }
    };
    let bot = adapter::Bot {
        ctx: &ctx,
        a,
        reporter,
        emitter,
        capture: capture.as_ref(),
        speakers: &speakers,
        metrics: &deps.metrics,
        load: &deps.load,
    };
    let outcome = adapter::drive(&bot, cancel, Some(joining)).await;
    let left_at = now_ms();
    ctx.close().await;
    if let Some(c) = capture {
        close_recording(deps, c, left_at).await;
    }
    outcome
}

/// Longest a bot waits for its turn to load its page: a late bot is
/// better than a failed one, a bot minutes late is neither.
const TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits for one of the worker's joining permits (only so many pages load
/// at once). A bot that waits past [`TURN_TIMEOUT`] fails with
/// WORKER_OVERLOADED: the worker could not take its join in time.
async fn turn_to_join(
    deps: &BotDeps,
    cancel: &CancellationToken,
) -> Result<tokio::sync::OwnedSemaphorePermit, Outcome> {
    deps.metrics.joins_waiting.inc();
    let permit = tokio::select! {
        _ = cancel.cancelled() => Err((BotStatus::Ended, StatusReason::LeaveRequested, None)),
        p = tokio::time::timeout(TURN_TIMEOUT, deps.joining.clone().acquire_owned()) => match p {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err((
                BotStatus::Failed,
                StatusReason::WorkerOverloaded,
                Some(format!(
                    "the worker was loading other bots' pages for {} s",
                    TURN_TIMEOUT.as_secs()
                )),
            )),
        },
    };
    deps.metrics.joins_waiting.dec();
    permit
}

/// The bot's speech-to-text engine, if it asked for one; a warning result
/// if it cannot have it (the bot still records).
async fn transcriber(
    deps: &BotDeps,
    a: &Assignment,
    emitter: &Emitter,
    speakers: &SpeakerLog,
) -> Option<Transcriber> {
    let spec = a.transcription.as_ref()?;
    match deps.engines.build(spec, &a.bot_id.to_string()).await {
        Ok(engine) => Some(Transcriber {
            engine,
            output: Output::new(
                emitter.clone(),
                speakers.clone(),
                spec.language.clone(),
                deps.metrics.clone(),
            ),
        }),
        Err(e) => {
            tracing::warn!(provider = spec.provider.kind(), error = %e, "no transcription for this bot");
            deps.metrics.transcription_errors.inc();
            emitter
                .send(
                    now_ms(),
                    ResultBody::Warning {
                        code: WarningCode::TranscriptionFailed,
                        detail: e.to_string(),
                    },
                )
                .await;
            None
        }
    }
}

/// Ends the recording at the moment the bot left, and counts it.
async fn close_recording(deps: &BotDeps, c: Capture, left_at: i64) {
    let counters = c.counters.clone();
    match c.finish(left_at).await {
        Ok(stats) => {
            deps.metrics
                .recorded_seconds
                .inc_by(stats.duration_ms() / 1000);
            tracing::info!(
                duration_ms = stats.duration_ms(),
                frames = counters.frames.load(Ordering::Relaxed),
                corrupt = counters.corrupt.load(Ordering::Relaxed),
                dropped = counters.dropped.load(Ordering::Relaxed),
                "recording closed"
            )
        }
        Err(e) => tracing::warn!(error = %e, "recording failed"),
    }
}
