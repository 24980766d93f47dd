//! The one error type of the rerank-service's API, mapped exhaustively to statuses and codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::EngineError;
use shared::http::{engine_error_response, error_response};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("`query` must not be empty or only whitespace")]
    EmptyQuery,
    #[error("`documents` must hold at least one document")]
    EmptyDocuments,
    #[error("{got} documents in one request; the limit is {max} (--max-documents)")]
    TooManyDocuments { got: usize, max: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::EmptyQuery => (StatusCode::UNPROCESSABLE_ENTITY, "empty_query"),
            Self::EmptyDocuments => (StatusCode::UNPROCESSABLE_ENTITY, "empty_documents"),
            Self::TooManyDocuments { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_documents"),
            Self::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Engine(e) => return engine_error_response(e),
        };
        error_response(status, code, self.to_string())
    }
}
