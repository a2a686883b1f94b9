//! PCM in, Ogg Opus out.

use std::io::Write;

use opus::{Application, Bitrate, Channels, Encoder};

use super::ogg_opus::OggOpusWriter;
use super::resample::{Downsampler, ResampleError};
use super::{FRAME_SAMPLES, OUTPUT_RATE};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("writing the recording: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineStats {
    /// Input frames (one sample per channel) consumed.
    pub input_frames: u64,
    /// 20 ms Opus frames written.
    pub opus_frames: u64,
    /// Opus payload bytes (without Ogg framing).
    pub opus_bytes: u64,
}

impl PipelineStats {
    pub fn duration_ms(&self) -> u64 {
        self.opus_frames * 20
    }
}

/// Receives each 20 ms frame of 16 kHz mono audio.
pub type Tap = Box<dyn FnMut(&[f32])>;

pub struct AudioPipeline<W: Write> {
    down: Downsampler,
    encoder: Encoder,
    ogg: OggOpusWriter<W>,
    channels: usize,
    packet: Vec<u8>,
    stats: PipelineStats,
    input_rate: u32,
    /// Samples (at 16 kHz) held back by the resampler and the encoder.
    delay_16k: usize,
    /// Sees every 20 ms frame of 16 kHz mono audio before it is encoded.
    tap: Option<Tap>,
}

impl<W: Write> AudioPipeline<W> {
    pub fn new(input_rate: u32, channels: usize, out: W) -> Result<Self, PipelineError> {
        let down = Downsampler::new(input_rate, channels)?;
        let mut encoder = Encoder::new(OUTPUT_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(24_000))?;
        // Pre-skip covers both the encoder's lookahead and the resampler's
        // delay, so decoded audio lines up with what came in.
        let delay_16k = encoder.get_lookahead()? as u32 + down.delay() as u32;
        let lookahead_48k = delay_16k * (48_000 / OUTPUT_RATE);
        let serial = rand::random::<u32>();
        let ogg = OggOpusWriter::new(out, input_rate, lookahead_48k as u16, serial)?;
        Ok(AudioPipeline {
            down,
            encoder,
            ogg,
            channels,
            packet: vec![0u8; 4000],
            stats: PipelineStats::default(),
            input_rate,
            delay_16k: delay_16k as usize,
            tap: None,
        })
    }

    /// Hands every 16 kHz mono frame to `tap` too (the transcriber).
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Consumes interleaved float samples at the input rate.
    pub fn push(&mut self, interleaved: &[f32]) -> Result<(), PipelineError> {
        let AudioPipeline {
            down,
            encoder,
            ogg,
            packet,
            stats,
            tap,
            ..
        } = self;
        let mut failed: Option<PipelineError> = None;
        down.push(interleaved, |frame| {
            if failed.is_some() {
                return;
            }
            debug_assert_eq!(frame.len(), FRAME_SAMPLES);
            if let Some(t) = tap.as_mut() {
                t(frame);
            }
            let step = encoder
                .encode_float(frame, packet)
                .map_err(PipelineError::from)
                .and_then(|n| {
                    ogg.write(&packet[..n], (FRAME_SAMPLES * 3) as u64)?;
                    Ok(n)
                });
            match step {
                Ok(n) => {
                    stats.opus_frames += 1;
                    stats.opus_bytes += n as u64;
                }
                Err(e) => failed = Some(e),
            }
        })?;
        self.stats.input_frames += (interleaved.len() / self.channels) as u64;
        failed.map_or(Ok(()), Err)
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// Ends the stream and returns the writer with the final figures. One
    /// frame of silence pushes the encoder's lookahead out, and the end
    /// granule trims it away again, so the recording is exactly as long as
    /// the audio that came in (in whole 20 ms frames).
    pub fn finish(mut self) -> Result<(W, PipelineStats), PipelineError> {
        let stats = self.stats;
        self.tap = None;
        // Push silence through the resampler and the encoder until what they
        // held back is out, then trim the stream to the audio that came in.
        // A recording with no audio at all still gets one packet, trimmed to
        // nothing, so it stays a valid stream.
        let flush_frames = self.delay_16k.div_ceil(FRAME_SAMPLES).max(1);
        let silence = vec![0.0f32; (self.input_rate as usize / 50) * self.channels];
        let before = self.stats.opus_frames;
        while self.stats.opus_frames < before + flush_frames as u64 {
            self.push(&silence)?;
        }
        let end = self.ogg.pre_skip() as u64 + stats.opus_frames * (FRAME_SAMPLES * 3) as u64;
        Ok((self.ogg.finish(Some(end))?, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(secs: f32) -> Vec<f32> {
        let n = (48_000.0 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f32 / 48_000.0;
                let s = (2.0 * std::f32::consts::PI * 300.0 * t).sin() * 0.4;
                [s, s * 0.8]
            })
            .collect()
    }

    fn decode(bytes: &[u8]) -> (Vec<u8>, Vec<f32>) {
        let mut r = ogg::PacketReader::new(std::io::Cursor::new(bytes));
        let head = r.read_packet().unwrap().unwrap().data;
        (head, super::super::decode_ogg_opus(bytes).unwrap())
    }

    #[test]
    fn three_seconds_of_stereo_become_a_valid_decodable_mono_recording() {
        let mut p = AudioPipeline::new(48_000, 2, Vec::new()).unwrap();
        for chunk in tone(3.0).chunks(2 * 480) {
            p.push(chunk).unwrap();
        }
        let (bytes, stats) = p.finish().unwrap();
        assert_eq!(stats.duration_ms(), 3_000);
        assert_eq!(stats.input_frames, 144_000);
        assert!(bytes.starts_with(b"OggS"));
        let (head, pcm) = decode(&bytes);
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!(head[9], 1, "mono");
        assert_eq!(u32::from_le_bytes(head[12..16].try_into().unwrap()), 48_000);
        assert_eq!(pcm.len(), 48_000, "3 s at 16 kHz, trimmed exactly");
        let rms =
            (pcm[8_000..].iter().map(|s| s * s).sum::<f32>() / (pcm.len() - 8_000) as f32).sqrt();
        // The mono mix of 0.4 and 0.32 amplitude is 0.36: RMS about 0.25.
        assert!((rms - 0.36 / 2f32.sqrt()).abs() < 0.05, "rms {rms}");
        // About 24 kbit/s.
        let kbps = stats.opus_bytes as f64 * 8.0 / 3.0 / 1000.0;
        assert!((15.0..35.0).contains(&kbps), "{kbps} kbit/s");
    }

    #[test]
    fn a_recording_without_audio_is_still_a_valid_empty_stream() {
        let p = AudioPipeline::new(48_000, 2, Vec::new()).unwrap();
        let (bytes, stats) = p.finish().unwrap();
        assert_eq!(stats.opus_frames, 0);
        assert!(super::super::decode_ogg_opus(&bytes).unwrap().is_empty());
    }

    #[test]
    fn silence_encodes_small_and_decodes_silent() {
        let mut p = AudioPipeline::new(48_000, 1, Vec::new()).unwrap();
        p.push(&vec![0.0; 48_000]).unwrap();
        let (bytes, stats) = p.finish().unwrap();
        assert_eq!(stats.duration_ms(), 1_000);
        let (_, pcm) = decode(&bytes);
        assert!(pcm.iter().all(|s| s.abs() < 1e-3));
    }

    #[test]
    fn opusinfo_accepts_the_recording_when_installed() {
        if std::process::Command::new("opusinfo")
            .arg("-h")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_none(),
                "opusinfo is missing; scripts/test installs opus-tools"
            );
            eprintln!("skipped: opusinfo not installed (Debian opus-tools)");
            return;
        }
        let mut p = AudioPipeline::new(48_000, 2, Vec::new()).unwrap();
        p.push(&tone(2.0)).unwrap();
        let (bytes, _) = p.finish().unwrap();
        let path = std::env::temp_dir().join(format!("attache-{}.opus", rand::random::<u64>()));
        std::fs::write(&path, bytes).unwrap();
        let info = std::process::Command::new("opusinfo")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&info.stdout).to_string()
            + &String::from_utf8_lossy(&info.stderr);
        std::fs::remove_file(&path).unwrap();
        assert!(info.status.success(), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
        assert!(text.contains("Playback length: 0m:02.000s"), "{text}");
    }
}
