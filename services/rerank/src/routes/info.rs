//! `GET /info`: the model and the limits a client must respect.

use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;

pub(crate) async fn info(State(state): State<AppState>) -> axum::Json<Value> {
    let config = &state.config;
    axum::Json(json!({
        "model": state.reranker.name(),
        "max_length": state.reranker.max_length(),
        "score": "sigmoid(logit), or the raw logit with raw_scores",
        "limits": {
            "max_documents": config.max_documents,
            "max_body_bytes": config.serve.max_body_bytes,
            "max_batch_tokens": config.engine.max_batch_tokens,
            "max_batch_size": config.engine.max_batch_size,
            "queue_capacity": config.engine.queue_capacity,
        },
    }))
}
