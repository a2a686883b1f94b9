//! What the page script hands over in one call of the binding: base64 of
//! the capture time of its first sample (f64, Unix ms, from the page's
//! audio clock) and a whole number of 20 ms frames of 48 kHz mono
//! little-endian 16-bit samples (five, 100 ms, from our script). The page
//! is not trusted: anything malformed is refused here, never passed on.

use base64::Engine;

/// Samples in one frame: 20 ms at 48 kHz.
pub(crate) const FRAME: usize = 960;
const FRAME_MS: f64 = 20.0;
/// Bytes of one frame's samples.
const FRAME_BYTES: usize = FRAME * 2;
/// Most frames one call may carry (a second of audio).
const MAX_FRAMES: usize = 50;
/// RMS below this (about -50 dBFS) is silence.
pub(crate) const SOUND_FLOOR: f32 = 0.003;

/// A frame from the page: its capture time and its samples.
#[derive(Debug)]
pub(crate) struct Frame {
    pub ts_ms: f64,
    pub pcm: Vec<f32>,
}

/// Decodes one binding payload into its frames, refusing anything
/// malformed.
pub(crate) fn decode_frames(payload: &str) -> Option<Vec<Frame>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let (time, samples) = bytes.split_at_checked(8)?;
    let frames = samples.len() / FRAME_BYTES;
    if samples.is_empty() || samples.len() % FRAME_BYTES != 0 || frames > MAX_FRAMES {
        return None;
    }
    let ts_ms = f64::from_le_bytes(time.try_into().ok()?);
    if !(ts_ms.is_finite() && ts_ms > 0.0) {
        return None;
    }
    Some(
        samples
            .chunks_exact(FRAME_BYTES)
            .enumerate()
            .map(|(k, frame)| Frame {
                ts_ms: ts_ms + k as f64 * FRAME_MS,
                pcm: frame
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect(),
            })
            .collect(),
    )
}

pub(crate) fn rms(pcm: &[f32]) -> f32 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ts: f64, pcm: &[i16]) -> String {
        let mut b = ts.to_le_bytes().to_vec();
        for s in pcm {
            b.extend_from_slice(&s.to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn a_call_carries_whole_frames_in_time_order() {
        let batch: Vec<i16> = (0..FRAME * 5).map(|i| (i % 2000) as i16 - 1000).collect();
        let frames = decode_frames(&payload(1.7e12, &batch)).unwrap();
        assert_eq!(frames.len(), 5);
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(f.pcm.len(), FRAME);
            assert_eq!(f.ts_ms, 1.7e12 + 20.0 * k as f64);
        }
        assert_eq!(frames[0].pcm[0], -1000.0 / 32768.0);
        let full = decode_frames(&payload(1.0, &[i16::MIN, i16::MAX].repeat(FRAME / 2))).unwrap();
        assert!(full[0].pcm.iter().all(|s| (-1.0..1.0).contains(s)));
    }

    #[test]
    fn corrupt_calls_are_refused() {
        let good = vec![0i16; FRAME];
        assert!(decode_frames(&payload(1.7e12, &good)).is_some());
        assert!(decode_frames("not base64!").is_none());
        assert!(decode_frames("AAAA").is_none(), "shorter than its time");
        assert!(decode_frames(&payload(1.7e12, &[])).is_none(), "no samples");
        assert!(
            decode_frames(&payload(1.7e12, &good[..FRAME - 1])).is_none(),
            "part of a frame"
        );
        assert!(
            decode_frames(&payload(1.7e12, &vec![0; FRAME * (MAX_FRAMES + 1)])).is_none(),
            "more than a second"
        );
        assert!(
            decode_frames(&payload(f64::NAN, &good)).is_none(),
            "no time"
        );
        assert!(
            decode_frames(&payload(-5.0, &good)).is_none(),
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
}
