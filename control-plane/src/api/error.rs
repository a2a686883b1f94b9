//! API errors: one enum, one mapping to `extensions.code`, and the HTTP
//! status of every refusal taken from [`ErrorCode::http_status`], never
//! picked by hand. Internal details are logged where they happen and never
//! sent to the client.

use attache_protocol::ErrorCode;
use axum::http::StatusCode;

/// Why an API call failed, as the caller may know it.
///
/// Deliberately not `Display`: that keeps async-graphql's blanket conversion
/// (which would drop the code) away, so every error goes through the `From`
/// below and carries its `extensions.code`.
#[derive(Debug)]
pub(crate) enum ApiError {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadInput(String),
    RateLimited(std::time::Duration),
    /// A legal hold keeps what was asked to be erased.
    LegalHold(String),
    Internal,
}

impl ApiError {
    pub(crate) fn message(&self) -> &str {
        match self {
            ApiError::Unauthenticated => "missing or invalid API key",
            ApiError::Forbidden => "this key's role may not do that",
            ApiError::NotFound => "not found",
            ApiError::BadInput(m) => m,
            ApiError::RateLimited(_) => "too many requests for this tenant; retry later",
            ApiError::LegalHold(m) => m,
            ApiError::Internal => "internal error",
        }
    }

    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthenticated => ErrorCode::Unauthenticated,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::BadInput(_) => ErrorCode::BadUserInput,
            ApiError::RateLimited(_) => ErrorCode::RateLimited,
            ApiError::LegalHold(_) => ErrorCode::LegalHold,
            ApiError::Internal => ErrorCode::Internal,
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error serving a request");
        ApiError::Internal
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound => ApiError::NotFound,
            e => ApiError::internal(e),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        use async_graphql::ErrorExtensions;
        let code = e.code().as_str();
        let retry_after = match e {
            ApiError::RateLimited(d) => Some(d.as_secs_f64().ceil() as u64),
            _ => None,
        };
        async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(s) = retry_after {
                ext.set("retryAfterSeconds", s);
            }
        })
    }
}

/// The HTTP status an API refusal with `code` answers with.
pub(crate) fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A GraphQL-shaped error body for failures before the executor runs.
pub(crate) fn error_body(code: ErrorCode, message: &str) -> serde_json::Value {
    serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_answers_with_the_status_of_the_protocol_table() {
        for c in ErrorCode::ALL {
            assert_eq!(status(c).as_u16(), c.http_status(), "{c}");
        }
        assert_eq!(
            status(ErrorCode::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(ErrorCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
