//! Audio capture from the meeting page into a recording on this worker.
//!
//! The page script (`capture.js`) is installed before any page script runs
//! and calls a CDP binding with 20 ms of 48 kHz mono PCM at a time. Frames
//! are decoded here and encoded on a thread of their own (never on the async
//! threads); a frame that does not decode is dropped and counted, never
//! fatal. The queue to the encoder is bounded: if encoding falls behind,
//! frames are dropped and counted rather than memory growing.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, SetBypassCspParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use futures::StreamExt;

use crate::audio::{AudioPipeline, PipelineStats};

const BINDING: &str = "__attacheAudio";
const SCRIPT: &str = include_str!("capture.js");
/// Frames (20 ms each) queued for the encoder: five seconds.
const QUEUE: usize = 250;
/// Samples in one frame from the page: 20 ms at 48 kHz.
const FRAME: usize = 960;

#[derive(Debug, Default)]
pub(crate) struct CaptureCounters {
    pub frames: AtomicU64,
    pub corrupt: AtomicU64,
    pub dropped: AtomicU64,
    /// Failures the page reported (a worklet that would not load, say).
    pub errors: AtomicU64,
}

/// A running capture; finishing it closes the recording.
pub(crate) struct Capture {
    pub counters: Arc<CaptureCounters>,
    listener: tokio::task::JoinHandle<()>,
    encoder: Option<std::thread::JoinHandle<Result<PipelineStats, String>>>,
    tx: std::sync::mpsc::SyncSender<Vec<f32>>,
    pub path: PathBuf,
}

/// Decodes one binding payload into PCM, refusing anything malformed.
pub(crate) fn decode_frame(payload: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    if bytes.len() != FRAME * 4 {
        return None;
    }
    let pcm: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    pcm.iter().all(|s| s.is_finite()).then_some(pcm)
}

/// Installs the binding and the page script; call before navigating.
pub(crate) async fn start(
    page: &Page,
    path: PathBuf,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Capture, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
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
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<f32>>(QUEUE);
    let encoder = std::thread::Builder::new()
        .name("attache-audio".into())
        .spawn(move || {
            let mut p = AudioPipeline::new(48_000, 1, std::io::BufWriter::new(file))
                .map_err(|e| e.to_string())?;
            for frame in rx {
                p.push(&frame).map_err(|e| e.to_string())?;
            }
            let (mut w, stats) = p.finish().map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut w).map_err(|e| e.to_string())?;
            Ok(stats)
        })
        .map_err(|e| e.to_string())?;
    let counters = Arc::new(CaptureCounters::default());
    let c = counters.clone();
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
            match decode_frame(&ev.payload) {
                Some(pcm) => {
                    c.frames.fetch_add(1, Ordering::Relaxed);
                    metrics.audio_frames.inc();
                    if frames_tx.try_send(pcm).is_err() {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        metrics.audio_frames_dropped.inc();
                    }
                }
                None => {
                    c.corrupt.fetch_add(1, Ordering::Relaxed);
                    metrics.audio_frames_corrupt.inc();
                }
            }
        }
    });
    Ok(Capture {
        counters,
        listener,
        encoder: Some(encoder),
        tx,
        path,
    })
}

impl Capture {
    /// Stops listening and closes the recording. A recording that never got
    /// any audio is removed rather than left behind empty.
    pub(crate) async fn finish(mut self) -> Result<PipelineStats, String> {
        self.listener.abort();
        // Closing our sender ends the encoder's input once the listener's
        // clone is gone with its task.
        let (closed, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.tx, closed));
        let encoder = self.encoder.take().expect("finished once");
        let stats = tokio::task::spawn_blocking(move || {
            encoder.join().map_err(|_| "encoder panicked".to_string())?
        })
        .await
        .map_err(|e| e.to_string())??;
        if stats.opus_frames == 0 {
            let _ = std::fs::remove_file(&self.path);
        }
        Ok(stats)
    }
}

impl Drop for Capture {
    /// Dropped without `finish` (its task was cancelled): stop listening so
    /// the encoder sees the end of its input and closes the file.
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_frames_are_refused() {
        let good: Vec<u8> = (0..FRAME)
            .flat_map(|i| (i as f32 / FRAME as f32).to_le_bytes())
            .collect();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert_eq!(decode_frame(&b64(&good)).unwrap().len(), FRAME);
        assert!(decode_frame("not base64!").is_none());
        assert!(
            decode_frame(&b64(&good[..good.len() - 4])).is_none(),
            "short frame"
        );
        let mut nan = good.clone();
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(decode_frame(&b64(&nan)).is_none(), "non-finite samples");
    }
}
