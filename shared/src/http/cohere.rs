//! Cohere's rerank API (`POST /v1/rerank`, `POST /v2/rerank`), the shape that the Cohere SDKs,
//! LangChain's and LlamaIndex's rerankers, Haystack and Dify call (and that Jina, Voyage, vLLM
//! and Infinity serve): its request and answer, for every service that serves it on its own
//! engine and errors (rerank-service, and the gateway through its reranker).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A Cohere rerank request.
#[derive(Deserialize, ToSchema)]
// Keys in sorted order: serde_json keeps insertion order in some builds of the workspace and sorts
// in others (its `preserve_order` feature), and the checked-in document must not depend on which.
#[schema(example = json!({"documents": ["Writes Rust at a bank", "Bakes bread"], "model": "bge-reranker-base", "query": "rust engineer", "top_n": 1}))]
pub struct CohereRerankRequest {
    /// Accepted for compatibility; a service serves one model, whatever is named (`/info`).
    #[serde(default)]
    pub model: Option<String>,
    /// Not empty or only whitespace (422 `empty_query`).
    #[schema(pattern = r"\S")]
    pub query: String,
    /// At least one, and no more than the service's limit (413 `too_many_documents`): strings,
    /// or `{"text": ...}` objects (their other fields are ignored).
    #[schema(min_items = 1)]
    pub documents: Vec<CohereDocument>,
    /// Keep only the best `top_n` results [default: all].
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_f64)]
    #[serde(default, deserialize_with = "super::integer::optional_count")]
    pub top_n: Option<usize>,
    /// Include each result's document as `{"text": ...}`.
    #[serde(default)]
    pub return_documents: bool,
    /// The fields of `{"text": ...}` documents to rank by (v1): only `text` is read, so only
    /// `["text"]` is accepted; any other field is refused rather than ignored.
    #[serde(default)]
    pub rank_fields: Option<Vec<RankField>>,
    /// Cut each document to its first this many tokens before scoring [default: as much as the
    /// model's max_length leaves beside the query].
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_f64)]
    #[serde(default, deserialize_with = "super::integer::optional_count")]
    pub max_tokens_per_doc: Option<usize>,
}

/// A field documents are ranked by: `text`, the one field read.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RankField {
    Text,
}

/// A document: its text, or an object holding it under `text`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CohereDocument {
    Text(String),
    Object(DocumentText),
}

impl CohereDocument {
    pub fn into_text(self) -> String {
        match self {
            Self::Text(text) | Self::Object(DocumentText { text }) => text,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct DocumentText {
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct CohereRerankResult {
    /// The document's position in the request's `documents`.
    pub index: usize,
    /// sigmoid(logit), in 0..1.
    pub relevance_score: f32,
    /// The document, with `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentText>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiVersion {
    /// `1` or `2`, the route's version.
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct BilledUnits {
    /// Always 1: one search per request (nothing is billed here).
    pub search_units: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Meta {
    pub api_version: ApiVersion,
    pub billed_units: BilledUnits,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "9b1f2c1e-3f0a-4c53-9d0e-5ab41f3e2c77", "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}, "results": [{"index": 0, "relevance_score": 0.93}]}))]
pub struct CohereRerankResponse {
    /// A new id per request.
    pub id: String,
    /// Best first, `top_n` of them.
    pub results: Vec<CohereRerankResult>,
    pub meta: Meta,
}

impl CohereRerankResponse {
    /// The answer of route `version` (`"1"` or `"2"`): `ranked` holds `(index, relevance score)`
    /// best first; `documents`, when asked for, the request's texts.
    pub fn new(version: &'static str, ranked: Vec<(usize, f32)>, documents: Option<&[String]>) -> Self {
        let results = ranked
            .into_iter()
            .map(|(index, relevance_score)| CohereRerankResult {
                index,
                relevance_score,
                document: documents.map(|d| DocumentText { text: d[index].clone() }),
            })
            .collect();
        let meta = Meta { api_version: ApiVersion { version }, billed_units: BilledUnits { search_units: 1 } };
        Self { id: uuid::Uuid::new_v4().to_string(), results, meta }
    }
}
