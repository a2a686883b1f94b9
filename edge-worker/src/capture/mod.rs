//! Audio capture from the meeting page into the bot's recording and its
//! transcriber.
//!
//! Capture is a stage of its own rather than part of the platform adapter:
//! the adapter is the platform's flow (what to click, when the call is
//! over), while capture is the same for every platform and feeds the audio
//! pipeline. The adapter only starts the recording when the bot enters the
//! call and reads how much sound arrives.
//!
//! The page script (`capture.js`) is installed before any page script runs
//! and calls a CDP binding with 100 ms of 48 kHz mono 16-bit PCM at a time,
//! stamped with its capture time. Frames (20 ms each) are decoded and
//! measured here
//! ([`frame`]), and encoded on a thread of their own ([`record`]); a frame
//! that does not decode is dropped and counted, never fatal. The queue to
//! the encoder is bounded: if encoding falls behind, frames are dropped and
//! counted rather than memory growing. Nothing here encodes, resamples or
//! writes on an async thread.

mod frame;
mod record;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, SetBypassCspParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::listeners::EventStream;
use futures::StreamExt;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::audio::{PipelineError, PipelineStats};
use crate::metrics::Metrics;
use crate::results::{Emitter, now_ms};
use crate::transcribe::{Output, SpeechToText};
use frame::{SOUND_FLOOR, decode_frames, rms};
use record::{Cmd, QUEUE, record};

const BINDING: &str = "__attacheAudio";
const SCRIPT: &str = include_str!("capture.js");
/// Blocks of 16 kHz audio waiting for the transcriber (3 minutes): an
/// engine further behind than this loses audio.
const STT_QUEUE: usize = 9_000;
/// How long a finishing bot waits for its last transcript segments.
const STT_DRAIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum CaptureError {
    #[error("cannot install capture in the page: {0}")]
    Page(#[from] chromiumoxide::error::CdpError),
    #[error("cannot start the encoder thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the recording failed: {0}")]
    Encoder(#[from] PipelineError),
    #[error("the encoder panicked")]
    Panicked,
}

#[derive(Debug, Default)]
pub(crate) struct CaptureCounters {
    pub frames: AtomicU64,
    pub corrupt: AtomicU64,
    pub dropped: AtomicU64,
    /// Failures the page reported (a worklet that would not load, say).
    pub errors: AtomicU64,
    /// Unix ms of the last frame, and of the last frame above the floor.
    pub last_frame_ms: AtomicI64,
    pub last_sound_ms: AtomicI64,
}

/// A bot's transcriber: its engine and where its segments go.
pub(crate) struct Transcriber {
    pub engine: Box<dyn SpeechToText>,
    pub output: Output,
}

/// A running capture; finishing it closes the recording.
pub(crate) struct Capture {
    pub counters: Arc<CaptureCounters>,
    stt: Option<tokio::task::JoinHandle<()>>,
    recording: Arc<AtomicBool>,
    /// Set when the capture is dropped without `finish`: the encoder closes
    /// the recording even if a sender outlives it.
    closed: Arc<AtomicBool>,
    listener: tokio::task::JoinHandle<()>,
    encoder: Option<std::thread::JoinHandle<Result<PipelineStats, PipelineError>>>,
    tx: std::sync::mpsc::SyncSender<Cmd>,
    tasks: TaskTracker,
}

/// Installs the binding and the page script; call before navigating. The
/// listener, the transcriber and the encoder thread are tracked by `tasks`
/// and carry the caller's span.
pub(crate) async fn start(
    page: &Page,
    emitter: Emitter,
    metrics: Arc<Metrics>,
    transcriber: Option<Transcriber>,
    tasks: &TaskTracker,
) -> Result<Capture, CaptureError> {
    // Meeting pages may forbid the worklet's blob: module by CSP; the bot's
    // own capture is not theirs to police.
    page.execute(SetBypassCspParams::new(true)).await?;
    page.execute(AddBindingParams::new(BINDING)).await?;
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(SCRIPT))
        .await?;
    let events = page.event_listener::<EventBindingCalled>().await?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Cmd>(QUEUE);
    let closed = Arc::new(AtomicBool::new(false));
    let thread_closed = closed.clone();
    let (stt, audio_tx) = match transcriber {
        Some(t) => {
            let (atx, arx) = tokio::sync::mpsc::channel(STT_QUEUE);
            let engine = t.engine.run(arx, t.output).in_current_span();
            (Some(tasks.spawn(engine)), Some(atx))
        }
        None => (None, None),
    };
    let span = tracing::Span::current();
    let token = tasks.token();
    let encoder = std::thread::Builder::new()
        .name("attache-audio".into())
        .spawn(move || {
            let _token = token;
            let _span = span.entered();
            record(rx, emitter, &thread_closed, audio_tx)
        })
        .map_err(CaptureError::Thread)?;
    let counters = Arc::new(CaptureCounters::default());
    let recording = Arc::new(AtomicBool::new(false));
    let listener = tasks.spawn(
        listen(
            events,
            counters.clone(),
            recording.clone(),
            tx.clone(),
            metrics,
        )
        .in_current_span(),
    );
    Ok(Capture {
        counters,
        stt,
        recording,
        closed,
        listener,
        encoder: Some(encoder),
        tx,
        tasks: tasks.clone(),
    })
}

/// Takes the page's frames until the page goes: counts and measures every
/// frame, and passes it to the encoder once the recording has begun.
async fn listen(
    mut events: EventStream<EventBindingCalled>,
    c: Arc<CaptureCounters>,
    recording: Arc<AtomicBool>,
    frames_tx: std::sync::mpsc::SyncSender<Cmd>,
    metrics: Arc<Metrics>,
) {
    while let Some(ev) = events.next().await {
        if ev.name != BINDING {
            continue;
        }
        if let Some(err) = ev.payload.strip_prefix('!') {
            c.errors.fetch_add(1, Ordering::Relaxed);
            metrics.audio_capture_errors.inc();
            let err: String = err.chars().take(200).collect();
            tracing::warn!(error = %err, "in-page audio capture failed");
            continue;
        }
        let Some(frames) = decode_frames(&ev.payload) else {
            c.corrupt.fetch_add(1, Ordering::Relaxed);
            metrics.audio_frames_corrupt.inc();
            continue;
        };
        let now = now_ms();
        let n = frames.len() as u64;
        c.frames.fetch_add(n, Ordering::Relaxed);
        c.last_frame_ms.store(now, Ordering::Relaxed);
        if frames.iter().any(|f| rms(&f.pcm) >= SOUND_FLOOR) {
            c.last_sound_ms.store(now, Ordering::Relaxed);
        }
        metrics.audio_frames.inc_by(n);
        if !recording.load(Ordering::Relaxed) {
            continue;
        }
        for frame in frames {
            let cmd = Cmd::Frame {
                ts_ms: frame.ts_ms,
                pcm: frame.pcm,
            };
            if frames_tx.try_send(cmd).is_err() {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                metrics.audio_frames_dropped.inc();
            }
        }
    }
}

impl Capture {
    /// The bot is in the call: the recording starts now.
    pub(crate) fn begin(&self, start_ms: i64) {
        if !self.recording.swap(true, Ordering::SeqCst) {
            // The queue is empty before the first frame is let through.
            let _ = self.tx.try_send(Cmd::Begin { start_ms });
        }
    }

    /// Stops listening and closes the recording at `end_ms`.
    pub(crate) async fn finish(mut self, end_ms: i64) -> Result<PipelineStats, CaptureError> {
        self.listener.abort();
        let tx = self.tx.clone();
        let encoder = self.encoder.take().expect("finished once");
        let joined = self
            .tasks
            .spawn_blocking(move || {
                // Blocking: the end must not be lost to a full queue.
                let _ = tx.send(Cmd::End { end_ms });
                drop(tx);
                encoder.join()
            })
            .await
            .map_err(|_| CaptureError::Panicked)?;
        let stats = match joined {
            Ok(recorded) => recorded.map_err(CaptureError::Encoder),
            Err(_) => Err(CaptureError::Panicked),
        };
        // The last words are transcribed before the bot reports its end.
        if let Some(stt) = self.stt.take()
            && tokio::time::timeout(STT_DRAIN, stt).await.is_err()
        {
            tracing::warn!("the transcriber did not finish in time; its last segments are lost");
        }
        stats
    }
}

impl Drop for Capture {
    /// Dropped without `finish` (its task was cancelled): stop listening so
    /// the encoder sees the end of its input and closes the recording.
    fn drop(&mut self) {
        self.listener.abort();
        self.closed.store(true, Ordering::SeqCst);
        if let Some(stt) = self.stt.take() {
            stt.abort();
        }
    }
}
