//! Length-prefixed framing: a 4-byte big-endian length, then a postcard body.
//!
//! The decoder never trusts the length: a frame longer than [`MAX_FRAME_LEN`]
//! is refused before any buffer is sized from it, and a body that does not
//! decode is an error, never a panic. After an error the stream is poisoned:
//! framing cannot be resynchronised, so the caller must close it.

use serde::{Serialize, de::DeserializeOwned};

/// Largest frame either side accepts (1 MiB): enough for a second of raw
/// audio, small enough that a hostile peer cannot make us allocate much.
pub const MAX_FRAME_LEN: usize = 1 << 20;

const HEADER_LEN: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("frame body is malformed: {0}")]
    Malformed(String),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("stream is poisoned by an earlier framing error")]
    Poisoned,
}

/// Encodes one message as a frame. Fails only if the message itself exceeds
/// the frame limit, which is a bug in the sender, so it is reported.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_allocvec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut framed = Vec::with_capacity(HEADER_LEN + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

/// Incremental decoder: push bytes as they arrive, pull whole messages out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    poisoned: bool,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed as whole frames.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `None` if more bytes are needed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if self.poisoned {
            return Err(FrameError::Poisoned);
        }
        let Some(len) = self.peek_len()? else {
            return Ok(None);
        };
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let result = postcard::from_bytes::<T>(&self.buf[HEADER_LEN..HEADER_LEN + len]);
        self.buf.drain(..HEADER_LEN + len);
        result
            .map(Some)
            .map_err(|e| self.poison(FrameError::Malformed(e.to_string())))
    }

    /// Call when the stream has ended: leftover bytes mean a cut frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }

    fn peek_len(&mut self) -> Result<Option<usize>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buf[..HEADER_LEN].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME_LEN {
            return Err(self.poison(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            }));
        }
        Ok(Some(len))
    }

    fn poison(&mut self, e: FrameError) -> FrameError {
        self.poisoned = true;
        self.buf.clear();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ControlMsg, WorkerMsg};
    use proptest::prelude::*;

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut d = FrameDecoder::new();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            d.next_frame::<ControlMsg>(),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(d.next_frame::<ControlMsg>(), Err(FrameError::Poisoned));
    }

    #[test]
    fn garbage_body_is_malformed_not_a_panic() {
        let mut d = FrameDecoder::new();
        d.push(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(
            d.next_frame::<WorkerMsg>(),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn cut_frame_is_reported_at_end_of_stream() {
        let bytes = encode_frame(&ControlMsg::Drain).unwrap();
        let mut d = FrameDecoder::new();
        d.push(&bytes[..bytes.len() - 1]);
        assert_eq!(d.next_frame::<ControlMsg>(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            for _ in 0..8 {
                match d.next_frame::<WorkerMsg>() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }

        #[test]
        fn frames_survive_any_split(msgs in proptest::collection::vec(crate::message::tests::arb_worker_msg(), 1..6), cut in 0usize..4096) {
            let mut wire = Vec::new();
            for m in &msgs {
                wire.extend(encode_frame(m).unwrap());
            }
            let cut = cut.min(wire.len());
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            for chunk in [&wire[..cut], &wire[cut..]] {
                d.push(chunk);
                while let Some(m) = d.next_frame::<WorkerMsg>().unwrap() {
                    out.push(m);
                }
            }
            d.finish().unwrap();
            prop_assert_eq!(out, msgs);
        }
    }
}
