//! The error body every service returns, and a JSON extractor whose rejections use it.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// `axum::Json`, except that bad bodies come back as [`ErrorBody`] JSON with the right status:
/// 400 malformed JSON, 415 wrong content type, 413 too large, 408 a body that stopped arriving,
/// 422 well-formed JSON of the wrong shape or types (the message names the field).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Syntax first, then shape: serde_json alone reports some type errors (a number where an
        // enum's string belongs) as syntax errors, which would make them 400s.
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await.map_err(reject)?;
        // Any error from here on is the client's wrong shape: 422, naming the field.
        serde_path_to_error::deserialize(value).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let message = if path == "." { e.inner().to_string() } else { format!("`{path}`: {}", e.inner()) };
            error_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
        })
    }
}

fn reject(rejection: JsonRejection) -> Response {
    if body_timed_out(&rejection) {
        let mut response = error_response(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving (--body-timeout-secs)",
        );
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let status = rejection.status();
    let code = match &rejection {
        JsonRejection::JsonSyntaxError(_) => "invalid_json",
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "invalid_body",
    };
    let mut response = error_response(status, code, rejection.body_text());
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is left unread, so this connection cannot carry another request:
        // say so, or a client that pools connections sends its next request into a closing socket.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether reading the body failed because tower-http's body timeout fired.
fn body_timed_out(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
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
