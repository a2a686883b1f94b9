//! Downmix to mono, then resample with rubato's synchronous FFT resampler,
//! in fixed chunks of 20 ms so each output chunk is exactly one Opus frame.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::{FRAME_SAMPLES, OUTPUT_RATE};

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("unsupported input: {0}")]
    Input(String),
    #[error("resampler: {0}")]
    Rubato(String),
}

pub struct Downsampler {
    channels: usize,
    input_rate: u32,
    resampler: Option<Fft<f32>>,
    /// Mono input waiting for a whole chunk.
    pending: Vec<f32>,
    chunk_in: usize,
    out: Vec<f32>,
}

impl Downsampler {
    pub fn new(input_rate: u32, channels: usize) -> Result<Downsampler, ResampleError> {
        if channels == 0 || channels > 8 {
            return Err(ResampleError::Input(format!("{channels} channels")));
        }
        if !(8_000..=192_000).contains(&input_rate) {
            return Err(ResampleError::Input(format!("{input_rate} Hz")));
        }
        let chunk_in = input_rate as usize / 50;
        let resampler = if input_rate == OUTPUT_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    input_rate as usize,
                    OUTPUT_RATE as usize,
                    chunk_in,
                    1,
                    FixedSync::Both,
                )
                .map_err(|e| ResampleError::Rubato(e.to_string()))?,
            )
        };
        Ok(Downsampler {
            channels,
            input_rate,
            resampler,
            pending: Vec::with_capacity(chunk_in * 2),
            chunk_in,
            out: vec![0.0; FRAME_SAMPLES * 2],
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Samples of delay the resampler adds (at 16 kHz).
    pub fn delay(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Feeds interleaved samples; calls `emit` with every whole 20 ms mono
    /// frame at 16 kHz. A trailing partial frame (interleaved samples not a
    /// multiple of the channel count) is an error, not silently dropped.
    pub fn push(
        &mut self,
        interleaved: &[f32],
        mut emit: impl FnMut(&[f32]),
    ) -> Result<(), ResampleError> {
        if !interleaved.len().is_multiple_of(self.channels) {
            return Err(ResampleError::Input(format!(
                "{} samples is not a whole number of {}-channel frames",
                interleaved.len(),
                self.channels
            )));
        }
        let scale = 1.0 / self.channels as f32;
        self.pending.extend(
            interleaved
                .chunks_exact(self.channels)
                .map(|f| f.iter().sum::<f32>() * scale)
                .map(|s| {
                    if s.is_finite() {
                        s.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }
                }),
        );
        let mut start = 0;
        while self.pending.len() - start >= self.chunk_in {
            let chunk = &self.pending[start..start + self.chunk_in];
            match &mut self.resampler {
                None => emit(chunk),
                Some(r) => {
                    let input = InterleavedSlice::new(chunk, 1, self.chunk_in)
                        .map_err(|e| ResampleError::Rubato(e.to_string()))?;
                    let cap = self.out.len();
                    let mut output = InterleavedSlice::new_mut(&mut self.out, 1, cap)
                        .map_err(|e| ResampleError::Rubato(e.to_string()))?;
                    let (_, written) = r
                        .process_into_buffer(&input, &mut output, None)
                        .map_err(|e| ResampleError::Rubato(e.to_string()))?;
                    emit(&self.out[..written]);
                }
            }
            start += self.chunk_in;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, channels: usize, secs: f32, hz: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let s = (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5;
                std::iter::repeat_n(s, channels)
            })
            .collect()
    }

    #[test]
    fn stereo_48k_becomes_whole_20ms_frames_at_16k_with_the_tone_intact() {
        let mut d = Downsampler::new(48_000, 2).unwrap();
        let input = sine(48_000, 2, 1.0, 440.0);
        let mut out = Vec::new();
        // Odd-sized pushes, as the page delivers them.
        for piece in input.chunks(2 * 333) {
            d.push(piece, |f| {
                assert_eq!(f.len(), FRAME_SAMPLES);
                out.extend_from_slice(f)
            })
            .unwrap();
        }
        assert_eq!(out.len(), 16_000, "one second in, one second out");
        // Past the resampler's delay, a 440 Hz tone crosses zero 880 times a second.
        let tail = &out[d.delay() + 100..];
        let crossings = tail
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let expected = 880.0 * tail.len() as f32 / 16_000.0;
        assert!(
            (crossings as f32 - expected).abs() < 4.0,
            "{crossings} vs {expected}"
        );
        let rms = (tail.iter().map(|s| s * s).sum::<f32>() / tail.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "rms {rms}");
    }

    #[test]
    fn bad_input_is_refused_or_neutralised() {
        assert!(Downsampler::new(48_000, 0).is_err());
        assert!(Downsampler::new(1_000, 1).is_err());
        let mut d = Downsampler::new(16_000, 2).unwrap();
        assert!(d.push(&[0.1, 0.2, 0.3], |_| {}).is_err(), "half a frame");
        let mut got = Vec::new();
        let garbage: Vec<f32> = [f32::NAN, f32::INFINITY, 7.0, -7.0]
            .iter()
            .copied()
            .cycle()
            .take(640 * 2)
            .collect();
        d.push(&garbage, |f| got.extend_from_slice(f)).unwrap();
        assert!(got.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
}
