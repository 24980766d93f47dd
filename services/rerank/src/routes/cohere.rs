//! Cohere's rerank API, `POST /v1/rerank` and `POST /v2/rerank`: the shape that the Cohere SDKs,
//! LangChain's and LlamaIndex's rerankers, Haystack and Dify call (and that Jina, Voyage, vLLM
//! and Infinity serve). Mapped onto the same engine, limits and errors as `/rerank`; scores are
//! sigmoid(logit), as Cohere's `relevance_score` is a probability.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::http::Json;
use shared::http::openapi::{BadBody, EngineBusy, Unauthorized};
use shared::reranker::sigmoid;
use utoipa::ToSchema;

use super::rerank::ranked;
use crate::AppState;
use crate::error::ApiError;

/// A Cohere rerank request.
#[derive(Deserialize, ToSchema)]
// Keys in sorted order: serde_json keeps insertion order in some builds of the workspace and sorts
// in others (its `preserve_order` feature), and the checked-in document must not depend on which.
#[schema(example = json!({"documents": ["Writes Rust at a bank", "Bakes bread"], "model": "bge-reranker-base", "query": "rust engineer", "top_n": 1}))]
pub(crate) struct CohereRerankRequest {
    /// Accepted for compatibility; this service serves one model, whatever is named (`/info`).
    #[serde(default)]
    #[allow(dead_code)] // Read by the schema and the deserializer only.
    model: Option<String>,
    /// Not empty or only whitespace (422 `empty_query`).
    #[schema(pattern = r"\S")]
    query: String,
    /// 1 to --max-documents documents, as strings or `{"text": ...}` objects (other fields of
    /// an object are ignored).
    #[schema(min_items = 1)]
    documents: Vec<CohereDocument>,
    /// Keep only the best `top_n` results [default: all].
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_f64)]
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    top_n: Option<usize>,
    /// Include each result's document as `{"text": ...}`.
    #[serde(default)]
    return_documents: bool,
    /// Cut each document to its first this many tokens before scoring [default: as much as the
    /// model's max_length leaves beside the query].
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_f64)]
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    max_tokens_per_doc: Option<usize>,
}

/// A document: its text, or an object holding it under `text`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum CohereDocument {
    Text(String),
    Object(DocumentText),
}

impl CohereDocument {
    fn into_text(self) -> String {
        match self {
            Self::Text(text) | Self::Object(DocumentText { text }) => text,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub(crate) struct DocumentText {
    text: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CohereRerankResult {
    /// The document's position in the request's `documents`.
    index: usize,
    /// sigmoid(logit), in 0..1.
    relevance_score: f32,
    /// The document, with `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<DocumentText>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApiVersion {
    /// `1` or `2`, the route's version.
    version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BilledUnits {
    /// Always 1: one search per request (nothing is billed here).
    search_units: u32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Meta {
    api_version: ApiVersion,
    billed_units: BilledUnits,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "9b1f2c1e-3f0a-4c53-9d0e-5ab41f3e2c77", "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}, "results": [{"index": 0, "relevance_score": 0.93}]}))]
pub(crate) struct CohereRerankResponse {
    /// A new id per request.
    id: String,
    /// Best first, `top_n` of them.
    results: Vec<CohereRerankResult>,
    meta: Meta,
}

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
    let ranked = ranked(&state, request.query, texts, request.top_n, request.max_tokens_per_doc).await?;
    let results = ranked
        .into_iter()
        .map(|(index, logit)| CohereRerankResult {
            index,
            relevance_score: sigmoid(logit),
            document: documents.as_ref().map(|d| DocumentText { text: d[index].clone() }),
        })
        .collect();
    let meta = Meta { api_version: ApiVersion { version }, billed_units: BilledUnits { search_units: 1 } };
    Ok(CohereRerankResponse { id: uuid::Uuid::new_v4().to_string(), results, meta })
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
