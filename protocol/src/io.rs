//! Reading and writing frames over any async byte stream. No sockets here:
//! the caller brings the stream (a QUIC stream in both services).

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{FrameError, MAX_FRAME_LEN, encode_frame};

#[derive(Debug, thiserror::Error)]
pub enum IoFrameError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<T, R>(r: &mut R) -> Result<Option<T>, IoFrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    read_frame_limited(r, MAX_FRAME_LEN).await
}

/// Reads one frame of at most `max` bytes. The body buffer grows with the
/// bytes that actually arrive, never from the declared length alone, so a
/// peer that announces a large frame and sends nothing costs nothing.
pub async fn read_frame_limited<T, R>(r: &mut R, max: usize) -> Result<Option<T>, IoFrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let max = max.min(MAX_FRAME_LEN);
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated.into())
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max }.into());
    }
    let mut body = Vec::with_capacity(len.min(16 * 1024));
    (&mut *r).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(FrameError::Truncated.into());
    }
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|e| FrameError::Malformed(e.to_string()).into())
}

pub async fn write_frame<T, W>(w: &mut W, msg: &T) -> Result<(), IoFrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    w.write_all(&encode_frame(msg)?).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlMsg;

    #[tokio::test]
    async fn reads_back_what_was_written_then_clean_eof() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_frame(&mut a, &ControlMsg::Drain).await.unwrap();
        drop(a);
        assert_eq!(
            read_frame::<ControlMsg, _>(&mut b).await.unwrap(),
            Some(ControlMsg::Drain)
        );
        assert!(read_frame::<ControlMsg, _>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cut_frame_is_truncated() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<ControlMsg, _>(&mut b).await,
            Err(IoFrameError::Frame(FrameError::Truncated))
        ));
    }
}
