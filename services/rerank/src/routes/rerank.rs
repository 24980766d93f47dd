//! `POST /rerank`: score documents against a query, best first.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::http::Json;
use shared::reranker::{rank, sigmoid};

use crate::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
pub(crate) struct RerankRequest {
    query: String,
    documents: Vec<String>,
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: bool,
    #[serde(default)]
    raw_scores: bool,
}

#[derive(Serialize)]
pub(crate) struct RerankResult {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct RerankResponse {
    results: Vec<RerankResult>,
}

#[tracing::instrument(skip_all, fields(route = "/rerank", documents = request.documents.len()))]
pub(crate) async fn rerank(
    State(state): State<AppState>,
    Json(request): Json<RerankRequest>,
) -> Result<axum::Json<RerankResponse>, ApiError> {
    if request.query.trim().is_empty() {
        return Err(ApiError::EmptyQuery);
    }
    match request.documents.len() {
        0 => return Err(ApiError::EmptyDocuments),
        n if n > state.config.max_documents => {
            return Err(ApiError::TooManyDocuments { got: n, max: state.config.max_documents });
        }
        _ => {}
    }
    if request.top_n == Some(0) {
        return Err(ApiError::InvalidRequest("`top_n` must be at least 1".into()));
    }
    let documents = request.return_documents.then(|| request.documents.clone());
    let scored = state.reranker.score(request.query, request.documents).await?;
    let top_n = request.top_n.unwrap_or(usize::MAX);
    let results = rank(&scored.logits)
        .into_iter()
        .take(top_n)
        .map(|index| {
            let logit = scored.logits[index];
            RerankResult {
                index,
                score: if request.raw_scores { logit } else { sigmoid(logit) },
                document: documents.as_ref().map(|d| d[index].clone()),
            }
        })
        .collect();
    Ok(axum::Json(RerankResponse { results }))
}
