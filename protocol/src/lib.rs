//! The wire contract between the Attaché control plane and its edge workers.
//!
//! This crate holds the message types, the length-prefixed framing, the bot
//! lifecycle both sides agree on, and the one error-code table. It has no
//! sockets and no clock: the services own I/O and time, this crate owns
//! meaning. Every decoder here reads bytes from the network and is fuzzed
//! (`fuzz/`).

mod error;
mod frame;
#[cfg(feature = "tokio")]
mod io;
mod lifecycle;
mod message;
mod platform;
mod seal;
#[cfg(feature = "trace")]
pub mod trace;

pub use error::ErrorCode;
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_LEN, encode_frame};
#[cfg(feature = "tokio")]
pub use io::{IoFrameError, read_frame, read_frame_limited, write_frame};
pub use lifecycle::{BotStatus, StatusReason, TransitionError};
pub use message::{
    Assignment, BotReport, ControlMsg, EnrollRequest, EnrollResponse, Load, MAX_CHAT_CHARS,
    MAX_NAME_CHARS, MAX_RECORDING_CHUNK, MAX_TRANSCRIPT_CHARS, ResultBody, ResultFrame,
    SessionLimits, TranscriptSegment, TranscriptionProvider, TranscriptionSpec, WarningCode,
    WorkerMsg,
};
pub use platform::{MeetingUrlError, Platform, parse_meeting_url};
pub use seal::{DataKey, KEY_LEN, SEAL_OVERHEAD, SealError, Secret};

/// How certificates are named on the wire (join-token CA pins, worker
/// identities): lowercase hex SHA-256 of the DER encoding.
pub fn cert_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// Version of this wire protocol. It is carried in ALPN, so a worker and a
/// control plane that do not share a version fail the TLS handshake with a
/// clear `no_application_protocol` alert instead of misreading frames.
pub const PROTOCOL_VERSION: u32 = 8;

/// ALPN for an enrolled worker's fleet connection (mutual TLS).
pub const ALPN_FLEET: &[u8] = b"attache-fleet/8";

/// The reason a worker closes its fleet link with (code 0) once it has
/// drained: every bot ended and every result delivered. The control plane
/// takes it as the operator's drain carried out.
pub const DRAINED: &[u8] = b"worker drained";

/// ALPN for the one-time enrollment exchange (server-authenticated only: the
/// worker has no certificate yet and proves itself with its join token).
/// Version 2 tells the worker its pool.
pub const ALPN_ENROLL: &[u8] = b"attache-enroll/2";
