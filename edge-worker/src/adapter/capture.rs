//! Audio capture from the meeting page into a recording streamed to the
//! control plane.
//!
//! The page script (`capture.js`) is installed before any page script runs
//! and calls a CDP binding with 20 ms of 48 kHz mono PCM at a time, stamped
//! with its capture time. Frames are decoded and measured here, and encoded
//! on a thread of their own (never on the async threads); a frame that does
//! not decode is dropped and counted, never fatal. The queue to the encoder
//! is bounded: if encoding falls behind, frames are dropped and counted
//! rather than memory growing.
//!
//! The recording starts when the bot enters the call and ends when it
//! leaves, on the wall clock: stretches with no audio from the page (no
//! remote track yet, a stalled tab) become silence, so a second into the
//! recording is a second into the call. It leaves the worker as
//! `RecordingChunk`s every couple of seconds, then `RecordingFinished` with
//! its totals.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use attache_protocol::ResultBody;
use base64::Engine;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, SetBypassCspParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::audio::{AudioPipeline, PipelineStats};
use crate::session::Emitter;

const BINDING: &str = "__attacheAudio";
const SCRIPT: &str = include_str!("capture.js");
/// Frames (20 ms each) queued for the encoder: five seconds.
const QUEUE: usize = 250;
/// Samples in one frame from the page: 20 ms at 48 kHz.
const FRAME: usize = 960;
const RATE_PER_MS: i64 = 48;
/// A frame's bytes: its capture time (f64) and its samples (f32 each).
const FRAME_BYTES: usize = 8 + FRAME * 4;
/// RMS below this (about -50 dBFS) is silence.
const SOUND_FLOOR: f32 = 0.003;
/// A recording chunk leaves the worker at this size, or after
/// [`CHUNK_EVERY`] of audio, whichever comes first.
const CHUNK_BYTES: usize = 64 * 1024;
const CHUNK_EVERY_MS: i64 = 2_000;
/// Gaps shorter than this are jitter, not missing audio.
const GAP_MS: i64 = 100;
/// With no frames at all, the recording is filled with silence up to this
/// far behind the wall clock.
const IDLE_LAG_MS: i64 = 1_000;

pub(crate) const FORMAT: &str = "audio/ogg; codecs=opus";

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

enum Cmd {
    Begin { start_ms: i64 },
    Frame { ts_ms: f64, pcm: Vec<f32> },
    End { end_ms: i64 },
}

/// Blocks of 16 kHz audio waiting for the transcriber (3 minutes): an
/// engine further behind than this loses audio.
const STT_QUEUE: usize = 9_000;
/// How long a finishing bot waits for its last transcript segments.
const STT_DRAIN: Duration = Duration::from_secs(60);

/// A bot's transcriber: its engine and where its segments go.
pub(crate) struct Transcriber {
    pub engine: Box<dyn crate::transcribe::SpeechToText>,
    pub output: crate::transcribe::Output,
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
    encoder: Option<std::thread::JoinHandle<Result<PipelineStats, String>>>,
    tx: std::sync::mpsc::SyncSender<Cmd>,
}

/// A frame from the page: its capture time and its samples.
#[derive(Debug)]
pub(crate) struct Frame {
    pub ts_ms: f64,
    pub pcm: Vec<f32>,
}

/// Decodes one binding payload, refusing anything malformed.
pub(crate) fn decode_frame(payload: &str) -> Option<Frame> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    if bytes.len() != FRAME_BYTES {
        return None;
    }
    let ts_ms = f64::from_le_bytes(bytes[..8].try_into().ok()?);
    let pcm: Vec<f32> = bytes[8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (ts_ms.is_finite() && ts_ms > 0.0 && pcm.iter().all(|s| s.is_finite() && s.abs() <= 16.0))
        .then_some(Frame { ts_ms, pcm })
}

pub(crate) fn rms(pcm: &[f32]) -> f32 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Installs the binding and the page script; call before navigating.
pub(crate) async fn start(
    page: &Page,
    emitter: Emitter,
    metrics: Arc<crate::metrics::Metrics>,
    transcriber: Option<Transcriber>,
) -> Result<Capture, String> {
    // Meeting pages may forbid the worklet's blob: module by CSP; the bot's
    // own capture is not theirs to police.
    page.execute(SetBypassCspParams::new(true))
        .await
        .map_err(|e| e.to_string())?;
    page.execute(AddBindingParams::new(BINDING))
        .await
        .map_err(|e| e.to_string())?;
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(SCRIPT))
        .await
        .map_err(|e| e.to_string())?;
    let mut events = page
        .event_listener::<EventBindingCalled>()
        .await
        .map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Cmd>(QUEUE);
    let closed = Arc::new(AtomicBool::new(false));
    let thread_closed = closed.clone();
    let (stt, audio_tx) = match transcriber {
        Some(t) => {
            let (atx, arx) = tokio::sync::mpsc::channel(STT_QUEUE);
            (Some(tokio::spawn(t.engine.run(arx, t.output))), Some(atx))
        }
        None => (None, None),
    };
    let encoder = std::thread::Builder::new()
        .name("attache-audio".into())
        .spawn(move || record(rx, emitter, &thread_closed, audio_tx))
        .map_err(|e| e.to_string())?;
    let counters = Arc::new(CaptureCounters::default());
    let recording = Arc::new(AtomicBool::new(false));
    let (c, rec) = (counters.clone(), recording.clone());
    let frames_tx = tx.clone();
    let listener = tokio::spawn(async move {
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
            let Some(frame) = decode_frame(&ev.payload) else {
                c.corrupt.fetch_add(1, Ordering::Relaxed);
                metrics.audio_frames_corrupt.inc();
                continue;
            };
            let now = now_ms();
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.last_frame_ms.store(now, Ordering::Relaxed);
            if rms(&frame.pcm) >= SOUND_FLOOR {
                c.last_sound_ms.store(now, Ordering::Relaxed);
            }
            metrics.audio_frames.inc();
            if !rec.load(Ordering::Relaxed) {
                continue;
            }
            let cmd = Cmd::Frame {
                ts_ms: frame.ts_ms,
                pcm: frame.pcm,
            };
            if frames_tx.try_send(cmd).is_err() {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                metrics.audio_frames_dropped.inc();
            }
        }
    });
    Ok(Capture {
        counters,
        stt,
        recording,
        closed,
        listener,
        encoder: Some(encoder),
        tx,
    })
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
    pub(crate) async fn finish(mut self, end_ms: i64) -> Result<PipelineStats, String> {
        self.listener.abort();
        let tx = self.tx.clone();
        let encoder = self.encoder.take().expect("finished once");
        let stats = tokio::task::spawn_blocking(move || {
            // Blocking: the end must not be lost to a full queue.
            let _ = tx.send(Cmd::End { end_ms });
            drop(tx);
            encoder.join().map_err(|_| "encoder panicked".to_string())?
        })
        .await
        .map_err(|e| e.to_string())?;
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

/// The recording's bytes as the encoder writes them, with their running
/// checksum, until they are sent.
#[derive(Default)]
struct Tap {
    pending: Vec<u8>,
    sent: u64,
    hash: Sha256,
}

#[derive(Clone, Default)]
struct SharedTap(Rc<RefCell<Tap>>);

impl Write for SharedTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut t = self.0.borrow_mut();
        t.pending.extend_from_slice(buf);
        t.hash.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedTap {
    /// Sends what is pending (in frames no larger than the protocol allows).
    fn ship(&self, emitter: &Emitter) {
        let mut t = self.0.borrow_mut();
        let pending = std::mem::take(&mut t.pending);
        for chunk in pending.chunks(attache_protocol::MAX_RECORDING_CHUNK) {
            emitter.blocking(
                now_ms(),
                ResultBody::RecordingChunk {
                    offset: t.sent,
                    bytes: chunk.to_vec(),
                },
            );
            t.sent += chunk.len() as u64;
        }
    }
}

/// Where the recording is on its timeline.
struct Timeline {
    start_ms: i64,
    /// 48 kHz samples written so far.
    written: i64,
    shipped_at: i64,
}

impl Timeline {
    fn behind(&self, at_ms: i64) -> i64 {
        (at_ms - self.start_ms) * RATE_PER_MS - self.written
    }
}

fn pad(p: &mut AudioPipeline<SharedTap>, t: &mut Timeline, samples: i64) -> Result<(), String> {
    let silence = [0f32; FRAME];
    let mut left = samples;
    while left >= FRAME as i64 {
        p.push(&silence).map_err(|e| e.to_string())?;
        t.written += FRAME as i64;
        left -= FRAME as i64;
    }
    Ok(())
}

/// The encoder thread: commands in, recording frames out.
fn record(
    rx: std::sync::mpsc::Receiver<Cmd>,
    emitter: Emitter,
    closed: &AtomicBool,
    audio: Option<tokio::sync::mpsc::Sender<crate::transcribe::Audio>>,
) -> Result<PipelineStats, String> {
    let tap = SharedTap::default();
    let mut pipeline: Option<(AudioPipeline<SharedTap>, Timeline)> = None;
    let mut end_ms = None;
    loop {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let cmd = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(c) => Some(c),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match cmd {
            Some(Cmd::Begin { start_ms }) if pipeline.is_none() => {
                let mut p =
                    AudioPipeline::new(48_000, 1, tap.clone()).map_err(|e| e.to_string())?;
                if let Some(a) = audio.as_ref() {
                    use crate::transcribe::Audio;
                    let _ = a.try_send(Audio::Begin { start_ms });
                    let a = a.clone();
                    p.set_tap(Box::new(move |frame| {
                        // A transcriber minutes behind loses audio rather
                        // than stalling the recording.
                        let _ = a.try_send(Audio::Block(frame.to_vec()));
                    }));
                }
                emitter.blocking(
                    start_ms,
                    ResultBody::RecordingStarted {
                        format: FORMAT.into(),
                    },
                );
                pipeline = Some((
                    p,
                    Timeline {
                        start_ms,
                        written: 0,
                        shipped_at: 0,
                    },
                ));
            }
            Some(Cmd::Begin { .. }) => {}
            Some(Cmd::End { end_ms: e }) => {
                end_ms = Some(e);
                break;
            }
            Some(Cmd::Frame { ts_ms, pcm }) => {
                let Some((p, t)) = pipeline.as_mut() else {
                    continue;
                };
                // Fill a real gap with silence, but never past the wall
                // clock: a page cannot stretch the recording by lying
                // about time.
                let gap = t.behind(ts_ms as i64).min(t.behind(now_ms()));
                if gap > GAP_MS * RATE_PER_MS {
                    pad(p, t, gap)?;
                }
                if ts_ms as i64 >= t.start_ms - GAP_MS {
                    p.push(&pcm).map_err(|e| e.to_string())?;
                    t.written += pcm.len() as i64;
                }
            }
            None => {
                // Nothing from the page: keep time with silence.
                if let Some((p, t)) = pipeline.as_mut() {
                    let lag = t.behind(now_ms()) - IDLE_LAG_MS * RATE_PER_MS;
                    if lag > 0 {
                        pad(p, t, lag)?;
                    }
                }
            }
        }
        if let Some((_, t)) = pipeline.as_mut() {
            let due = t.written - t.shipped_at >= CHUNK_EVERY_MS * RATE_PER_MS;
            if due || tap.0.borrow().pending.len() >= CHUNK_BYTES {
                tap.ship(&emitter);
                t.shipped_at = t.written;
            }
        }
    }
    let Some((mut p, mut t)) = pipeline else {
        return Ok(PipelineStats::default());
    };
    // The recording lasts until the bot left.
    let end = end_ms.unwrap_or_else(now_ms);
    let tail = t.behind(end);
    if tail > 0 {
        pad(&mut p, &mut t, tail)?;
    }
    let (_, stats) = p.finish().map_err(|e| e.to_string())?;
    tap.ship(&emitter);
    let (size, sha256) = {
        let t = tap.0.borrow();
        (t.sent, hex::encode(t.hash.clone().finalize()))
    };
    emitter.blocking(
        now_ms(),
        ResultBody::RecordingFinished {
            size_bytes: size,
            duration_ms: stats.duration_ms(),
            sha256,
        },
    );
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ts: f64, pcm: &[f32]) -> String {
        let mut b = ts.to_le_bytes().to_vec();
        for s in pcm {
            b.extend_from_slice(&s.to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn corrupt_frames_are_refused() {
        let good: Vec<f32> = (0..FRAME).map(|i| i as f32 / FRAME as f32).collect();
        let f = decode_frame(&payload(1.7e12, &good)).unwrap();
        assert_eq!((f.pcm.len(), f.ts_ms), (FRAME, 1.7e12));
        assert!(decode_frame("not base64!").is_none());
        assert!(
            decode_frame(&payload(1.7e12, &good[..FRAME - 1])).is_none(),
            "short"
        );
        let mut nan = good.clone();
        nan[0] = f32::NAN;
        assert!(
            decode_frame(&payload(1.7e12, &nan)).is_none(),
            "non-finite sample"
        );
        let mut loud = good.clone();
        loud[5] = 1e9;
        assert!(
            decode_frame(&payload(1.7e12, &loud)).is_none(),
            "absurd sample"
        );
        assert!(decode_frame(&payload(f64::NAN, &good)).is_none(), "no time");
        assert!(
            decode_frame(&payload(-5.0, &good)).is_none(),
            "negative time"
        );
    }

    #[test]
    fn loudness_separates_speech_from_silence() {
        assert!(rms(&[0.0; FRAME]) < SOUND_FLOOR);
        assert!(rms(&[0.001; FRAME]) < SOUND_FLOOR);
        let tone: Vec<f32> = (0..FRAME).map(|i| 0.1 * (i as f32 * 0.1).sin()).collect();
        assert!(rms(&tone) > SOUND_FLOOR);
    }

    /// Runs the encoder thread over scripted commands and returns what it
    /// sent.
    fn run(cmds: Vec<Cmd>) -> (PipelineStats, Vec<ResultBody>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = crate::spool::Spool::open(dir.path()).unwrap();
        let key = attache_protocol::DataKey::generate();
        let emitter = Emitter::for_tests(spool.clone(), key.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let (atx, mut arx) = tokio::sync::mpsc::channel(100_000);
        let h = std::thread::spawn(move || record(rx, emitter, &AtomicBool::new(false), Some(atx)));
        for c in cmds {
            tx.send(c).unwrap();
        }
        drop(tx);
        let stats = h.join().unwrap().unwrap();
        // The transcriber got the recording's start, then every 20 ms of
        // it at 16 kHz.
        let mut blocks = 0u64;
        let mut began = false;
        while let Ok(a) = arx.try_recv() {
            match a {
                crate::transcribe::Audio::Begin { .. } => began = true,
                crate::transcribe::Audio::Block(b) => {
                    assert_eq!(b.len(), 320);
                    blocks += 1;
                }
            }
        }
        if stats.duration_ms() > 0 {
            assert!(began);
            let heard = blocks * 20;
            assert!(
                heard.abs_diff(stats.duration_ms()) <= 100,
                "{heard} ms of {}",
                stats.duration_ms()
            );
        }
        let out = spool
            .after(uuid::Uuid::nil(), 1, 0)
            .iter()
            .map(|f| f.open(&key).unwrap())
            .collect();
        (stats, out)
    }

    #[test]
    fn the_recording_spans_the_call_and_arrives_whole() {
        let start = now_ms() - 10_000;
        let tone: Vec<f32> = (0..FRAME).map(|i| 0.2 * (i as f32 * 0.05).sin()).collect();
        let mut cmds = vec![Cmd::Begin { start_ms: start }];
        // One second of audio starting 2 s into the call (the page's first
        // track arrived late), then nothing until the bot leaves at 6 s.
        for k in 0..50 {
            cmds.push(Cmd::Frame {
                ts_ms: (start + 2_000 + k * 20) as f64,
                pcm: tone.clone(),
            });
        }
        cmds.push(Cmd::End {
            end_ms: start + 6_000,
        });
        let (stats, bodies) = run(cmds);
        assert_eq!(stats.duration_ms(), 6_000, "silence fills the gaps");
        assert!(matches!(bodies[0], ResultBody::RecordingStarted { .. }));
        let mut bytes = Vec::new();
        for b in &bodies {
            if let ResultBody::RecordingChunk {
                offset,
                bytes: chunk,
            } = b
            {
                assert_eq!(*offset as usize, bytes.len(), "contiguous");
                bytes.extend_from_slice(chunk);
            }
        }
        let Some(ResultBody::RecordingFinished {
            size_bytes,
            duration_ms,
            sha256,
        }) = bodies.last()
        else {
            panic!("no totals: {bodies:?}")
        };
        assert_eq!(*size_bytes as usize, bytes.len());
        assert_eq!(*duration_ms, 6_000);
        assert_eq!(*sha256, hex::encode(Sha256::digest(&bytes)));
        let pcm = crate::audio::decode_ogg_opus(&bytes).unwrap();
        assert_eq!(pcm.len(), 6 * 16_000);
        // Sound sits where it was captured: 2 s to 3 s.
        let second = |s: usize| rms(&pcm[s * 16_000..(s + 1) * 16_000]);
        assert!(second(2) > 0.05, "{}", second(2));
        assert!(second(0) < 0.01 && second(4) < 0.01);
    }

    #[test]
    fn a_page_cannot_stretch_the_recording() {
        let start = now_ms();
        let tone = vec![0.1f32; FRAME];
        let cmds = vec![
            Cmd::Begin { start_ms: start },
            // A frame claiming to come from a day in the future.
            Cmd::Frame {
                ts_ms: (start + 86_400_000) as f64,
                pcm: tone,
            },
            Cmd::End {
                end_ms: start + 200,
            },
        ];
        let (stats, _) = run(cmds);
        assert!(stats.duration_ms() <= 1_000, "{}", stats.duration_ms());
    }

    #[test]
    fn no_call_no_recording() {
        let (stats, bodies) = run(vec![Cmd::Frame {
            ts_ms: 1.0,
            pcm: vec![0.0; FRAME],
        }]);
        assert_eq!(stats.opus_frames, 0);
        assert!(bodies.is_empty());
    }
}
