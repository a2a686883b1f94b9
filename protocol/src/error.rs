use serde::{Deserialize, Serialize};

/// The one error vocabulary of Attaché. Each code maps to an HTTP status, a
/// GraphQL `extensions.code` and a QUIC application close code, so a failure
/// reads the same wherever it surfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    RateLimited,
    ResourceExhausted,
    /// A command or result carried a lease generation that is no longer current.
    StaleGeneration,
    /// The peer sent bytes that are not a valid frame of this protocol.
    ProtocolViolation,
    /// A legal hold keeps what was asked to be erased.
    LegalHold,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::BadUserInput,
        ErrorCode::RateLimited,
        ErrorCode::ResourceExhausted,
        ErrorCode::StaleGeneration,
        ErrorCode::ProtocolViolation,
        ErrorCode::LegalHold,
        ErrorCode::Internal,
    ];

    /// The GraphQL `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::StaleGeneration => "STALE_GENERATION",
            ErrorCode::ProtocolViolation => "PROTOCOL_VIOLATION",
            ErrorCode::LegalHold => "LEGAL_HOLD",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::BadUserInput | ErrorCode::ProtocolViolation => 400,
            ErrorCode::RateLimited | ErrorCode::ResourceExhausted => 429,
            ErrorCode::StaleGeneration | ErrorCode::LegalHold => 409,
            ErrorCode::Internal => 500,
        }
    }

    /// QUIC application close code (0 is reserved for a clean close).
    pub fn quic_code(self) -> u32 {
        match self {
            ErrorCode::Unauthenticated => 0x101,
            ErrorCode::Forbidden => 0x102,
            ErrorCode::NotFound => 0x103,
            ErrorCode::BadUserInput => 0x104,
            ErrorCode::RateLimited => 0x105,
            ErrorCode::ResourceExhausted => 0x106,
            ErrorCode::StaleGeneration => 0x107,
            ErrorCode::ProtocolViolation => 0x108,
            ErrorCode::LegalHold => 0x109,
            ErrorCode::Internal => 0x1ff,
        }
    }

    pub fn from_quic_code(code: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.quic_code() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_on_every_surface() {
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let quic: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.quic_code()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(quic.len(), ErrorCode::ALL.len());
        assert!(!quic.contains(&0), "0 is a clean close");
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_quic_code(c.quic_code()), Some(c));
        }
    }
}
