//! Sealing: authenticated encryption of results with a per-bot data key.
//!
//! The control plane makes one random data key per bot, keeps it only
//! wrapped by its tenant's key, and hands it to the worker with the bot's
//! lease. The worker seals every result frame with it before the frame
//! leaves the session (so the spool on disk holds ciphertext too); the
//! control plane opens a frame to check and route it, and stores what is
//! personal (transcripts, chat, recordings) sealed again under the same
//! key. Forgetting a bot's wrapped key makes all of it unreadable.
//!
//! AES-256-GCM through `ring` (already the TLS backend of the fleet link),
//! with a random 96-bit nonce per message: far below the 2^32 messages per
//! key where random nonces start to matter. Sealed bytes are
//! `nonce ‖ ciphertext ‖ tag`. The associated data binds a message to its
//! place (bot, lease, sequence number; or a stored row's identity), so a
//! sealed value moved elsewhere does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

pub const KEY_LEN: usize = 32;
/// Bytes a sealed message has beyond its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is too short")]
    Truncated,
    #[error("sealed data does not open with this key and context")]
    Forged,
    #[error("sealed data holds an undecodable message")]
    Undecodable,
}

/// A 256-bit AEAD key. Its `Debug` shows nothing of the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey([u8; KEY_LEN]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the system random source works");
    out
}

impl DataKey {
    pub fn generate() -> DataKey {
        DataKey(random())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        Some(DataKey(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn key(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key"))
    }

    /// Seals `plain`, bound to `context`.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .key()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut out[NONCE_LEN..],
            )
            .expect("messages are far below AES-GCM's length limit");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens what [`DataKey::seal`] made with this key and `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(SealError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = body.to_vec();
        let plain = self
            .key()
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SealError::Forged)?;
        let n = plain.len();
        buf.truncate(n);
        Ok(buf)
    }

    /// Wraps another key under this one (key-encryption-key use).
    pub fn wrap(&self, context: &[u8], key: &DataKey) -> Vec<u8> {
        self.seal(context, &key.0)
    }

    pub fn unwrap_key(&self, context: &[u8], wrapped: &[u8]) -> Result<DataKey, SealError> {
        let plain = self.open(context, wrapped)?;
        DataKey::from_bytes(&plain).ok_or(SealError::Undecodable)
    }
}

/// A credential travelling to a worker (a transcription provider's API
/// key, say). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_context() {
        let k = DataKey::generate();
        let sealed = k.seal(b"ctx", b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(k.open(b"ctx", &sealed).unwrap(), b"hello");
        assert_eq!(k.open(b"other", &sealed), Err(SealError::Forged));
        assert_eq!(
            DataKey::generate().open(b"ctx", &sealed),
            Err(SealError::Forged)
        );
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(k.open(b"ctx", &flipped), Err(SealError::Forged));
        assert_eq!(k.open(b"ctx", &sealed[..10]), Err(SealError::Truncated));
        // Two seals of one message differ (fresh nonces).
        assert_ne!(k.seal(b"ctx", b"hello"), sealed);
    }

    #[test]
    fn wrapped_keys_unwrap_and_debug_hides_secrets() {
        let kek = DataKey::generate();
        let k = DataKey::generate();
        let w = kek.wrap(b"bot:1", &k);
        assert_eq!(kek.unwrap_key(b"bot:1", &w).unwrap(), k);
        assert!(kek.unwrap_key(b"bot:2", &w).is_err());
        assert_eq!(format!("{k:?}"), "DataKey(…)");
        assert_eq!(format!("{:?}", Secret::new("sk-123")), "Secret(…)");
    }
}
