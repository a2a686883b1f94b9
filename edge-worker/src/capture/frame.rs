//! One frame as the page script hands it over: base64 of its capture time
//! (f64, Unix ms, from the page's audio clock) and 960 little-endian f32
//! samples (20 ms of 48 kHz mono). The page is not trusted: anything
//! malformed is refused here, never passed on.

use base64::Engine;

/// Samples in one frame from the page: 20 ms at 48 kHz.
pub(crate) const FRAME: usize = 960;
/// A frame's bytes: its capture time (f64) and its samples (f32 each).
const FRAME_BYTES: usize = 8 + FRAME * 4;
/// RMS below this (about -50 dBFS) is silence.
pub(crate) const SOUND_FLOOR: f32 = 0.003;

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
}
