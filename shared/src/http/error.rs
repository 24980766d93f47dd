//! The error body every service returns, and the answers that use it besides bad bodies
//! (`body.rs`): unknown routes and methods, engine failures.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `{"error": "<human message>", "code": "<snake_case_kind>"}`
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(example = json!({"error": "`query` must not be empty", "code": "empty_query"}))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The kind of error, for programs (`invalid_request`, `overloaded`, `unauthorized`, ...).
    pub code: String,
}

pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody { error: message.into(), code: code.into() })).into_response()
}

/// Unknown routes get the same JSON shape as every other error.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

pub async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}

/// The response for an engine failure, the same in every service: 429 when the queue is full and
/// 503 while the model is loading or stopped (both with `Retry-After`), 500 for inference faults
/// (the detail is logged, not returned).
pub fn engine_error_response(error: &crate::EngineError) -> Response {
    use crate::{BatcherError, EngineError};
    let retry = |mut response: Response| {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        response
    };
    match error {
        EngineError::Batcher(BatcherError::Overloaded) => retry(error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "the service is overloaded; retry shortly",
        )),
        EngineError::Batcher(BatcherError::Unavailable(why)) => retry(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("the model is not ready: {why}"),
        )),
        EngineError::Batcher(BatcherError::Inference(detail)) | EngineError::Tokenize(detail) => {
            tracing::error!(%detail, "internal error");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}
