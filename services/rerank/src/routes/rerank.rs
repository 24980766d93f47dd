//! `POST /rerank`: score documents against a query, best first.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::Priority;
use shared::http::Json;
use shared::http::openapi::{BadBody, EngineBusy, Unauthorized};
use shared::reranker::{rank, sigmoid};

use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

/// A query and the documents to score against it.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"query": "rust engineer", "documents": ["Writes Rust at a bank", "Bakes bread"], "top_n": 1}))]
pub(crate) struct RerankRequest {
    /// Not empty or only whitespace (422 `empty_query`).
    #[schema(pattern = r"\S")]
    query: String,
    /// 1 to --max-documents documents (1000 by default); more is 413 `too_many_documents`, none
    /// is 422 `empty_documents`.
    #[schema(min_items = 1)]
    documents: Vec<String>,
    /// Keep only the best `top_n` results [default: all].
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_f64)]
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    top_n: Option<usize>,
    /// Echo each result's document text.
    #[serde(default)]
    return_documents: bool,
    /// Return the raw logit instead of sigmoid(logit).
    #[serde(default)]
    raw_scores: bool,
    /// Cut each document to its first this many tokens before scoring (as Cohere's
    /// `max_tokens_per_doc`) [default: only the model's max_length cuts].
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    max_tokens_per_doc: Option<usize>,
    /// `interactive` (default) or `bulk`: bulk pairs (a search-gateway finishing a search's
    /// leftover pairs in the background) wait while interactive ones are queued or running.
    #[serde(default)]
    priority: Priority,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RerankResult {
    /// The document's position in the request's `documents`.
    index: usize,
    /// sigmoid(logit) in 0..1, or the logit with `raw_scores`.
    score: f32,
    /// The document's text, with `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"results": [{"index": 0, "score": 0.93}]}))]
pub(crate) struct RerankResponse {
    /// Best first, `top_n` of them.
    results: Vec<RerankResult>,
}

/// Scores each document against the query with the cross-encoder, best first.
#[utoipa::path(post, path = "/rerank", tag = "rerank", request_body = RerankRequest,
    responses((status = 200, description = "The documents' scores, best first", body = RerankResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/rerank", documents = request.documents.len()))]
pub(crate) async fn rerank(
    State(state): State<AppState>,
    Json(request): Json<RerankRequest>,
) -> Result<axum::Json<RerankResponse>, ApiError> {
    if request.max_tokens_per_doc == Some(0) {
        return Err(ApiError::InvalidRequest("`max_tokens_per_doc` must be at least 1".into()));
    }
    let documents = request.return_documents.then(|| request.documents.clone());
    let (top_n, tokens, priority) = (request.top_n, request.max_tokens_per_doc, request.priority);
    let ranked = ranked(&state, request.query, request.documents, top_n, tokens, priority).await?;
    let results = ranked
        .into_iter()
        .map(|(index, logit)| RerankResult {
            index,
            score: if request.raw_scores { logit } else { sigmoid(logit) },
            document: documents.as_ref().map(|d| d[index].clone()),
        })
        .collect();
    Ok(axum::Json(RerankResponse { results }))
}

/// The checks every rerank route makes, then the documents' `(index, logit)`, best first, `top_n`
/// of them; each document cut to its first `document_tokens` tokens first, if given.
pub(crate) async fn ranked(
    state: &AppState,
    query: String,
    documents: Vec<String>,
    top_n: Option<usize>,
    document_tokens: Option<usize>,
    priority: Priority,
) -> Result<Vec<(usize, f32)>, ApiError> {
    if query.trim().is_empty() {
        return Err(ApiError::EmptyQuery);
    }
    match documents.len() {
        0 => return Err(ApiError::EmptyDocuments),
        n if n > state.config.max_documents => {
            return Err(ApiError::TooManyDocuments { got: n, max: state.config.max_documents });
        }
        _ => {}
    }
    if top_n == Some(0) {
        return Err(ApiError::InvalidRequest("`top_n` must be at least 1".into()));
    }
    let scored = state.reranker.score_cut(query, documents, document_tokens, priority).await?;
    let top_n = top_n.unwrap_or(usize::MAX);
    Ok(rank(&scored.logits).into_iter().take(top_n).map(|index| (index, scored.logits[index])).collect())
}
