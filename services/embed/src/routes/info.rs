//! `GET /info`: the model and the limits a client must respect.

use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

pub(crate) async fn info(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let loading = || ApiError::Engine(shared::BatcherError::Unavailable("the model is loading".into()).into());
    let dimension = state.embedder.dimension().ok_or_else(loading)?;
    let info = state.embedder.info();
    let config = &state.config;
    Ok(axum::Json(json!({
        "model": info.model,
        "dimension": dimension,
        "max_length": info.max_length,
        "pooling": info.pooling,
        "normalize": info.normalize,
        "query_prefix": info.query_prefix,
        "passage_prefix": info.passage_prefix,
        "default_input_type": config.default_input_type,
        "limits": {
            "max_client_batch": config.max_client_batch,
            "max_body_bytes": config.serve.max_body_bytes,
            "max_batch_tokens": config.engine.max_batch_tokens,
            "max_batch_size": config.engine.max_batch_size,
            "queue_capacity": config.engine.queue_capacity,
        },
    })))
}
