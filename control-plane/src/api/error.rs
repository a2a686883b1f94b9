//! API errors: one enum, one mapping to `extensions.code`. Internal details
//! are logged where they happen and never sent to the client.

use attache_protocol::ErrorCode;

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
    Internal,
}

impl ApiError {
    pub(crate) fn message(&self) -> &str {
        match self {
            ApiError::Unauthenticated => "missing or invalid API key",
            ApiError::Forbidden => "this key's role may not do that",
            ApiError::NotFound => "not found",
            ApiError::BadInput(m) => m,
            ApiError::Internal => "internal error",
        }
    }

    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthenticated => ErrorCode::Unauthenticated,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::BadInput(_) => ErrorCode::BadUserInput,
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

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        use async_graphql::ErrorExtensions;
        let code = e.code().as_str();
        async_graphql::Error::new(e.message()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// A GraphQL-shaped error body for failures before the executor runs.
pub(crate) fn error_body(code: ErrorCode, message: &str) -> serde_json::Value {
    serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    })
}
