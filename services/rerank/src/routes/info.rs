//! `GET /info`: the model and the limits a client must respect.

use axum::extract::State;
use serde::Serialize;
use shared::engine::BatchPlan;
use shared::http::openapi::{EngineBusy, Unauthorized};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub(crate) struct Info {
    /// The model's name.
    model: String,
    /// Tokens of query plus document the model sees; longer pairs are truncated.
    max_length: usize,
    /// How `score` is computed.
    score: &'static str,
    /// What tells this engine's scores from another's (the bits of a fixed pair's logit, in
    /// hex): a cache of scores keys them by it.
    fingerprint: String,
    /// How pairs are batched, and why.
    batching: BatchPlan,
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
    /// Most pairs in one inference run (as the warm-up set it: `batching`).
    max_batch_size: usize,
    /// Pairs that may wait at once; beyond it requests get 429.
    queue_capacity: usize,
}

/// The model and the limits a client must respect (503 until the model is warm).
#[utoipa::path(get, path = "/info", tag = "service",
    responses((status = 200, description = "The model and limits", body = Info), EngineBusy, Unauthorized))]
pub(crate) async fn info(State(state): State<AppState>) -> Result<axum::Json<Info>, ApiError> {
    let loading = || ApiError::Engine(shared::BatcherError::Unavailable("the model is loading".into()).into());
    let fingerprint = state.reranker.fingerprint().ok_or_else(loading)?;
    let config = &state.config;
    let plan = state.reranker.plan();
    Ok(axum::Json(Info {
        model: state.reranker.name().to_string(),
        max_length: state.reranker.max_length(),
        score: "sigmoid(logit), or the raw logit with raw_scores",
        fingerprint,
        batching: plan.clone(),
        limits: Limits {
            max_documents: config.max_documents,
            max_body_bytes: config.serve.max_body_bytes,
            max_batch_tokens: config.engine.max_batch_tokens,
            max_batch_size: plan.max_batch_size,
            queue_capacity: config.engine.queue_capacity,
        },
    }))
}
