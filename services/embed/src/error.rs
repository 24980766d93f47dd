//! The one error type of the embed-service's API, mapped exhaustively to statuses and codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::http::error_response;
use shared::{BatcherError, EngineError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("`texts` must hold at least one text")]
    EmptyBatch,
    #[error("{got} texts in one request; the limit is {max} (--max-client-batch)")]
    TooManyTexts { got: usize, max: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the service is overloaded; retry shortly")]
    Overloaded,
    #[error("the model is not ready: {0}")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Batcher(BatcherError::Overloaded) => Self::Overloaded,
            EngineError::Batcher(BatcherError::Unavailable(why)) => Self::NotReady(why),
            EngineError::Batcher(BatcherError::Inference(why)) | EngineError::Tokenize(why) => Self::Internal(why),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::EmptyBatch => (StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
            Self::TooManyTexts { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_texts"),
            Self::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut response = error_response(status, code, self.to_string());
        if matches!(self, Self::Overloaded | Self::NotReady(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
