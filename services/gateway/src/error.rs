//! The gateway's API errors, mapped exhaustively to statuses and codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::http::error_response;

use shared::http::ErrorBody;

use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// The responses of a route when a dependency (embedder, reranker, vector store) cannot answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only the derive reads it.
pub enum Upstream {
    /// A model service's queue is full (`overloaded`); retry after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Overloaded(ErrorBody),
    /// A dependency answered with an error (`upstream_error`).
    #[response(status = 502)]
    Failed(ErrorBody),
    /// A dependency is down or loading (`embedder_unavailable`, `reranker_unavailable`,
    /// `vector_store_unavailable`); retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
    /// A dependency took longer than its time budget (`upstream_timeout`).
    #[response(status = 504)]
    Timeout(ErrorBody),
    /// A bug (`internal`); the detail is in the gateway's log, not the answer.
    #[response(status = 500)]
    Internal(ErrorBody),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("`query` must not be empty")]
    EmptyQuery,
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadFilter(String),
    #[error("no collection named {0:?}")]
    UnknownCollection(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ReadOnly(String),
    #[error("collection {collection:?} has no document {id:?}")]
    UnknownDocument { collection: String, id: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(StoreError),
    /// The collection does not follow a table (no `[name.source]`).
    #[error("collection {0:?} does not follow a table (no [{0}.source] in --collections-config)")]
    NotSynced(String),
    /// The source database could not be used (down, refused, or the table does not fit).
    #[error("{0}")]
    Database(String),
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(collection) => Self::UnknownCollection(collection),
            StoreError::BadFilter(why) => Self::BadFilter(why),
            StoreError::BadRequest(why) => Self::Invalid(why),
            StoreError::Conflict(why) => Self::Conflict(why),
            other => Self::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = matches!(
            self,
            Self::Upstream(UpstreamError::Overloaded(_) | UpstreamError::Unavailable(..))
                | Self::Store(StoreError::Unavailable(_))
                | Self::Database(_)
        );
        let (status, code) = match &self {
            Self::EmptyQuery => (StatusCode::UNPROCESSABLE_ENTITY, "empty_query"),
            Self::TooMany(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_documents"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::BadFilter(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter"),
            Self::UnknownCollection(_) => (StatusCode::NOT_FOUND, "unknown_collection"),
            Self::UnknownDocument { .. } => (StatusCode::NOT_FOUND, "unknown_document"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::ReadOnly(_) => (StatusCode::CONFLICT, "read_only_collection"),
            Self::Upstream(UpstreamError::Overloaded(_)) => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            Self::Upstream(UpstreamError::Unavailable(service, _)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                if *service == "reranker" { "reranker_unavailable" } else { "embedder_unavailable" },
            ),
            Self::Upstream(UpstreamError::Timeout(_)) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Self::Upstream(UpstreamError::Failed(..)) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            Self::Store(StoreError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "vector_store_unavailable"),
            Self::Store(StoreError::Dimension { .. }) => (StatusCode::CONFLICT, "dimension_mismatch"),
            Self::NotSynced(_) => (StatusCode::NOT_FOUND, "not_synced"),
            Self::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Store(_) | Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "internal error");
            return error_response(status, code, "internal error");
        }
        let mut response = error_response(status, code, self.to_string());
        if retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
