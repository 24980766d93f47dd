//! `GET /info`: the model and the limits a client must respect.

use axum::extract::State;
use serde::Serialize;
use shared::http::openapi::Unauthorized;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct Info {
    /// The model's name.
    model: String,
    /// Tokens of query plus document the model sees; longer pairs are truncated.
    max_length: usize,
    /// How `score` is computed.
    score: &'static str,
    limits: Limits,
}

/// The service's configured limits.
#[derive(Serialize, ToSchema)]
pub(crate) struct Limits {
    /// Most documents in one `/rerank` request.
    max_documents: usize,
    /// Largest request body, in bytes.
    max_body_bytes: usize,
    max_batch_tokens: usize,
    max_batch_size: usize,
    /// Pairs that may wait at once; beyond it requests get 429.
    queue_capacity: usize,
}

/// The model and the limits a client must respect.
#[utoipa::path(get, path = "/info", tag = "service",
    responses((status = 200, description = "The model and limits", body = Info), Unauthorized))]
pub(crate) async fn info(State(state): State<AppState>) -> axum::Json<Info> {
    let config = &state.config;
    axum::Json(Info {
        model: state.reranker.name().to_string(),
        max_length: state.reranker.max_length(),
        score: "sigmoid(logit), or the raw logit with raw_scores",
        limits: Limits {
            max_documents: config.max_documents,
            max_body_bytes: config.serve.max_body_bytes,
            max_batch_tokens: config.engine.max_batch_tokens,
            max_batch_size: config.engine.max_batch_size,
            queue_capacity: config.engine.queue_capacity,
        },
    })
}
