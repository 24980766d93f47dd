//! `POST /embed` and `POST /embed/batch`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::Priority;
use shared::http::Json;
use shared::http::openapi::{BadBody, EngineBusy, Unauthorized};
use shared::tokenize::InputType;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

/// One text to embed.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"text": "senior rust engineer in Berlin", "input_type": "query"}))]
pub(crate) struct EmbedRequest {
    /// The text; longer than the model's `max_length` tokens is truncated.
    text: String,
    /// Which E5 prefix to add [default: --default-input-type, `query` unless configured].
    input_type: Option<InputType>,
    /// `interactive` (default): someone waits for it. `bulk`: a batch job's texts, which yield
    /// to interactive work.
    #[serde(default)]
    priority: Priority,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"embedding": [0.0132, -0.0421, 0.0078]}))]
pub(crate) struct EmbedResponse {
    /// The text's vector (`dimension` floats, see `/info`), L2-normalized when the model says so.
    embedding: Vec<f32>,
}

/// Several texts to embed in one call.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"texts": ["passage one", "passage two"], "input_type": "passage"}))]
pub(crate) struct BatchRequest {
    /// 1 to --max-client-batch texts (256 by default); more is 413 `too_many_texts`, none is 422
    /// `empty_batch`.
    #[schema(min_items = 1)]
    texts: Vec<String>,
    /// Which E5 prefix to add [default: --default-input-type].
    input_type: Option<InputType>,
    /// `interactive` (default) or `bulk`: batch jobs send `bulk`, and their texts then yield to
    /// interactive requests (bulk batches are smaller and wait while interactive work runs, but
    /// get a turn at least every --bulk-max-delay-ms).
    #[serde(default)]
    priority: Priority,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"embeddings": [[0.0132, -0.0421], [0.0051, 0.0307]]}))]
pub(crate) struct BatchResponse {
    /// One vector per text, in the order of `texts`.
    embeddings: Vec<Vec<f32>>,
}

/// Embeds one text.
#[utoipa::path(post, path = "/embed", tag = "embeddings", request_body = EmbedRequest,
    responses((status = 200, description = "The text's embedding", body = EmbedResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/embed"))]
pub(crate) async fn single(
    State(state): State<AppState>,
    Json(request): Json<EmbedRequest>,
) -> Result<axum::Json<EmbedResponse>, ApiError> {
    let input_type = request.input_type.unwrap_or(state.config.default_input_type);
    let mut out = state.embedder.embed(vec![request.text], input_type, request.priority).await?;
    let missing = || ApiError::Engine(shared::BatcherError::Inference("no vector returned".into()).into());
    let embedding = out.vectors.pop().ok_or_else(missing)?;
    Ok(axum::Json(EmbedResponse { embedding }))
}

/// Embeds several texts; they share the batching queue fairly with single queries.
#[utoipa::path(post, path = "/embed/batch", tag = "embeddings", request_body = BatchRequest,
    responses((status = 200, description = "One embedding per text, in order", body = BatchResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/embed/batch", texts = request.texts.len()))]
pub(crate) async fn batch(
    State(state): State<AppState>,
    Json(request): Json<BatchRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    check_batch_size(request.texts.len(), state.config.max_client_batch)?;
    let input_type = request.input_type.unwrap_or(state.config.default_input_type);
    let out = state.embedder.embed(request.texts, input_type, request.priority).await?;
    Ok(axum::Json(BatchResponse { embeddings: out.vectors }))
}

pub(crate) fn check_batch_size(got: usize, max: usize) -> Result<(), ApiError> {
    match got {
        0 => Err(ApiError::EmptyBatch),
        n if n > max => Err(ApiError::TooManyTexts { got: n, max }),
        _ => Ok(()),
    }
}
