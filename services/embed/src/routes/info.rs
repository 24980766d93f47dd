//! `GET /info`: the model and the limits a client must respect.

use axum::extract::State;
use serde::Serialize;
use shared::engine::BatchPlan;
use shared::http::openapi::{EngineBusy, Unauthorized};
use shared::pooling::Pooling;
use shared::tokenize::InputType;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub(crate) struct Info {
    /// The model's name.
    model: String,
    /// Floats per embedding.
    dimension: usize,
    /// Tokens per text the model sees; longer texts are truncated.
    max_length: usize,
    pooling: Pooling,
    /// Whether embeddings are L2-normalized (then dot product = cosine).
    normalize: bool,
    query_prefix: String,
    passage_prefix: String,
    /// The `input_type` of requests that give none.
    default_input_type: InputType,
    /// How texts are batched, and why (with what the warm-up measured on this machine).
    batching: BatchPlan,
    limits: Limits,
}

/// The service's configured limits.
#[derive(Serialize, ToSchema)]
pub(crate) struct Limits {
    /// Most texts in one `/embed/batch` or `/v1/embeddings` request.
    max_client_batch: usize,
    /// Largest request body, in bytes.
    max_body_bytes: usize,
    max_batch_tokens: usize,
    /// Most texts in one inference run (as the warm-up set it: `batching`).
    max_batch_size: usize,
    /// Texts that may wait at once; beyond it requests get 429.
    queue_capacity: usize,
}

/// The model and the limits a client must respect.
#[utoipa::path(get, path = "/info", tag = "service",
    responses((status = 200, description = "The model and limits", body = Info), EngineBusy, Unauthorized))]
pub(crate) async fn info(State(state): State<AppState>) -> Result<axum::Json<Info>, ApiError> {
    let loading = || ApiError::Engine(shared::BatcherError::Unavailable("the model is loading".into()).into());
    let dimension = state.embedder.dimension().ok_or_else(loading)?;
    let info = state.embedder.info();
    let config = &state.config;
    let plan = state.embedder.plan();
    Ok(axum::Json(Info {
        model: info.model,
        dimension,
        max_length: info.max_length,
        pooling: info.pooling,
        normalize: info.normalize,
        query_prefix: info.query_prefix,
        passage_prefix: info.passage_prefix,
        default_input_type: config.default_input_type,
        batching: plan.clone(),
        limits: Limits {
            max_client_batch: config.max_client_batch,
            max_body_bytes: config.serve.max_body_bytes,
            max_batch_tokens: config.engine.max_batch_tokens,
            max_batch_size: plan.max_batch_size,
            queue_capacity: config.engine.queue_capacity,
        },
    }))
}
