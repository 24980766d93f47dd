//! The one error type of the embed-service's API, mapped exhaustively to statuses and codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::EngineError;
use shared::http::{engine_error_response, error_response};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("`texts` must hold at least one text")]
    EmptyBatch,
    #[error("{got} texts in one request; the limit is {max} (--max-client-batch)")]
    TooManyTexts { got: usize, max: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::EmptyBatch => (StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
            Self::TooManyTexts { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_texts"),
            Self::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Engine(e) => return engine_error_response(e),
        };
        error_response(status, code, self.to_string())
    }
}
