//! Cohere's rerank API, `POST /v1/rerank` and `POST /v2/rerank` (`shared::http::cohere`), on the
//! same engine, limits and errors as `/rerank`; scores are sigmoid(logit), as Cohere's
//! `relevance_score` is a probability.

use axum::extract::State;
use shared::Priority;
use shared::http::Json;
use shared::http::cohere::{CohereDocument, CohereRerankRequest, CohereRerankResponse};
use shared::http::openapi::{BadBody, EngineBusy, Unauthorized};
use shared::reranker::sigmoid;

use super::rerank::ranked;
use crate::AppState;
use crate::error::ApiError;

async fn cohere(
    state: AppState,
    request: CohereRerankRequest,
    version: &'static str,
) -> Result<CohereRerankResponse, ApiError> {
    if request.max_tokens_per_doc == Some(0) {
        return Err(ApiError::InvalidRequest("`max_tokens_per_doc` must be at least 1".into()));
    }
    let texts: Vec<String> = request.documents.into_iter().map(CohereDocument::into_text).collect();
    let documents = request.return_documents.then(|| texts.clone());
    let tokens = request.max_tokens_per_doc;
    let ranked = ranked(&state, request.query, texts, request.top_n, tokens, Priority::Interactive).await?;
    let ranked = ranked.into_iter().map(|(index, logit)| (index, sigmoid(logit))).collect();
    Ok(CohereRerankResponse::new(version, ranked, documents.as_deref()))
}

/// Cohere's v1 rerank: the documents' relevance to the query, best first.
#[utoipa::path(post, path = "/v1/rerank", tag = "rerank", request_body = CohereRerankRequest,
    responses((status = 200, description = "The documents' relevance, best first", body = CohereRerankResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/v1/rerank", documents = request.documents.len()))]
pub(crate) async fn rerank_v1(
    State(state): State<AppState>,
    Json(request): Json<CohereRerankRequest>,
) -> Result<axum::Json<CohereRerankResponse>, ApiError> {
    cohere(state, request, "1").await.map(axum::Json)
}

/// Cohere's v2 rerank: the same, as `cohere.ClientV2` and the v2 SDKs call it.
#[utoipa::path(post, path = "/v2/rerank", tag = "rerank", request_body = CohereRerankRequest,
    responses((status = 200, description = "The documents' relevance, best first", body = CohereRerankResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/v2/rerank", documents = request.documents.len()))]
pub(crate) async fn rerank_v2(
    State(state): State<AppState>,
    Json(request): Json<CohereRerankRequest>,
) -> Result<axum::Json<CohereRerankResponse>, ApiError> {
    cohere(state, request, "2").await.map(axum::Json)
}
