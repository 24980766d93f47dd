//! Cohere's rerank API on the gateway (`POST /v1/rerank`, `POST /v2/rerank`, the shapes in
//! `shared::http::cohere`), through the gateway's own reranker (in process on its engine, or
//! rerank-service) and its score cache. A framework pointed at the gateway reranks without a
//! second base URL.

use std::sync::Arc;

use axum::extract::State;
use shared::http::Json;
use shared::http::cohere::{CohereDocument, CohereRerankRequest, CohereRerankResponse};
use shared::http::openapi::{BadBody, Unauthorized};

use crate::Gateway;
use crate::error::{ApiError, Upstream};
use crate::rerank::Reuse;

async fn cohere(
    gateway: &Gateway,
    request: CohereRerankRequest,
    version: &'static str,
) -> Result<CohereRerankResponse, ApiError> {
    if request.query.trim().is_empty() {
        return Err(ApiError::EmptyQuery);
    }
    match request.documents.len() {
        0 => return Err(ApiError::Invalid("`documents` must hold at least one document".into())),
        n if n > gateway.limits.max_candidates => {
            let max = gateway.limits.max_candidates;
            return Err(ApiError::TooMany(format!(
                "{n} documents in one request; the limit is {max} (--max-candidates)"
            )));
        }
        _ => {}
    }
    if request.top_n == Some(0) || request.max_tokens_per_doc == Some(0) {
        return Err(ApiError::Invalid("`top_n` and `max_tokens_per_doc` must be at least 1".into()));
    }
    let texts: Vec<String> = request.documents.into_iter().map(CohereDocument::into_text).collect();
    let documents = request.return_documents.then(|| texts.clone());
    let budget = gateway.limits.rerank_timeout;
    // Known scores are reused; a budget that runs out is a 504 here (Cohere's answer has no
    // partial form), and the pairs left are scored in the background for a retry.
    let scored = gateway.reranking.score(request.query, texts, request.max_tokens_per_doc, Reuse::Use, budget).await;
    if let Some(error) = scored.stopped {
        return Err(error.into());
    }
    let scores = scored.scores;
    let ranked = shared::reranker::rank(&scores)
        .into_iter()
        .take(request.top_n.unwrap_or(usize::MAX))
        .map(|index| (index, scores[index]))
        .collect();
    Ok(CohereRerankResponse::new(version, ranked, documents.as_deref()))
}

/// Cohere's v1 rerank: the documents' relevance to the query, best first (at most
/// --max-candidates documents).
#[utoipa::path(post, path = "/v1/rerank", tag = "rerank", request_body = CohereRerankRequest,
    responses((status = 200, description = "The documents' relevance, best first", body = CohereRerankResponse), BadBody, Upstream, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/v1/rerank", documents = request.documents.len()))]
pub(super) async fn rerank_v1(
    State(gateway): State<Arc<Gateway>>,
    Json(request): Json<CohereRerankRequest>,
) -> Result<axum::Json<CohereRerankResponse>, ApiError> {
    cohere(&gateway, request, "1").await.map(axum::Json)
}

/// Cohere's v2 rerank: the same, as `cohere.ClientV2` and the v2 SDKs call it.
#[utoipa::path(post, path = "/v2/rerank", tag = "rerank", request_body = CohereRerankRequest,
    responses((status = 200, description = "The documents' relevance, best first", body = CohereRerankResponse), BadBody, Upstream, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/v2/rerank", documents = request.documents.len()))]
pub(super) async fn rerank_v2(
    State(gateway): State<Arc<Gateway>>,
    Json(request): Json<CohereRerankRequest>,
) -> Result<axum::Json<CohereRerankResponse>, ApiError> {
    cohere(&gateway, request, "2").await.map(axum::Json)
}
