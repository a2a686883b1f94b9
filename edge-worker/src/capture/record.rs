//! The encoder thread of one bot: commands from the capture in, the
//! recording out as results.
//!
//! The recording starts when the bot enters the call and ends when it
//! leaves, on the wall clock: stretches with no audio from the page (no
//! remote track yet, a stalled tab) become silence, so a second into the
//! recording is a second into the call. It leaves the worker as
//! `RecordingChunk`s every couple of seconds, then `RecordingFinished` with
//! its totals; the transcriber gets the same audio at 16 kHz on the side.
//!
//! Everything here blocks (encoding, spooling): it runs on its own thread
//! and must never be called from an async one.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use attache_protocol::ResultBody;
use sha2::{Digest, Sha256};

use super::frame::FRAME;
use crate::audio::{AudioPipeline, PipelineError, PipelineStats};
use crate::results::{Emitter, now_ms};
use crate::transcribe::Audio;

/// Frames (20 ms each) queued for the encoder: five seconds.
pub(super) const QUEUE: usize = 250;
const RATE_PER_MS: i64 = 48;
/// A recording chunk leaves the worker at this size, or after
/// [`CHUNK_EVERY_MS`] of audio, whichever comes first.
const CHUNK_BYTES: usize = 64 * 1024;
const CHUNK_EVERY_MS: i64 = 2_000;
/// Gaps shorter than this are jitter, not missing audio.
const GAP_MS: i64 = 100;
/// With no frames at all, the recording is filled with silence up to this
/// far behind the wall clock.
const IDLE_LAG_MS: i64 = 1_000;

pub(crate) const FORMAT: &str = "audio/ogg; codecs=opus";

/// What the capture tells the encoder.
pub(super) enum Cmd {
    Begin { start_ms: i64 },
    Frame { ts_ms: f64, pcm: Vec<f32> },
    End { end_ms: i64 },
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

fn pad(
    p: &mut AudioPipeline<SharedTap>,
    t: &mut Timeline,
    samples: i64,
) -> Result<(), PipelineError> {
    let silence = [0f32; FRAME];
    let mut left = samples;
    while left >= FRAME as i64 {
        p.push(&silence)?;
        t.written += FRAME as i64;
        left -= FRAME as i64;
    }
    Ok(())
}

/// The encoder thread: commands in, recording frames out.
pub(super) fn record(
    rx: std::sync::mpsc::Receiver<Cmd>,
    emitter: Emitter,
    closed: &AtomicBool,
    audio: Option<tokio::sync::mpsc::Sender<Audio>>,
) -> Result<PipelineStats, PipelineError> {
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
                let mut p = AudioPipeline::new(48_000, 1, tap.clone())?;
                if let Some(a) = audio.as_ref() {
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
                    p.push(&pcm)?;
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
    let (_, stats) = p.finish()?;
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
    use crate::capture::frame::rms;

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
