//! `POST /embed` and `POST /embed/batch`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::http::Json;
use shared::tokenize::InputType;

use crate::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
pub(crate) struct EmbedRequest {
    text: String,
    input_type: Option<InputType>,
}

#[derive(Serialize)]
pub(crate) struct EmbedResponse {
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
pub(crate) struct BatchRequest {
    texts: Vec<String>,
    input_type: Option<InputType>,
}

#[derive(Serialize)]
pub(crate) struct BatchResponse {
    embeddings: Vec<Vec<f32>>,
}

#[tracing::instrument(skip_all, fields(route = "/embed"))]
pub(crate) async fn single(
    State(state): State<AppState>,
    Json(request): Json<EmbedRequest>,
) -> Result<axum::Json<EmbedResponse>, ApiError> {
    let input_type = request.input_type.unwrap_or(state.config.default_input_type);
    let mut out = state.embedder.embed(vec![request.text], input_type).await?;
    let missing = || ApiError::Engine(shared::BatcherError::Inference("no vector returned".into()).into());
    let embedding = out.vectors.pop().ok_or_else(missing)?;
    Ok(axum::Json(EmbedResponse { embedding }))
}

#[tracing::instrument(skip_all, fields(route = "/embed/batch", texts = request.texts.len()))]
pub(crate) async fn batch(
    State(state): State<AppState>,
    Json(request): Json<BatchRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    check_batch_size(request.texts.len(), state.config.max_client_batch)?;
    let input_type = request.input_type.unwrap_or(state.config.default_input_type);
    let out = state.embedder.embed(request.texts, input_type).await?;
    Ok(axum::Json(BatchResponse { embeddings: out.vectors }))
}

pub(crate) fn check_batch_size(got: usize, max: usize) -> Result<(), ApiError> {
    match got {
        0 => Err(ApiError::EmptyBatch),
        n if n > max => Err(ApiError::TooManyTexts { got: n, max }),
        _ => Ok(()),
    }
}
