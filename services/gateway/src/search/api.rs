//! The JSON of `POST /search`: the request, its defaults, and the answer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::retrieval::{Fusion, Retrieval};

/// A search.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"query": "rust engineer who knows search", "top_k": 5, "filter": {"must": [{"key": "city", "match": {"value": "Berlin"}}]}}))]
pub struct SearchRequest {
    /// The query, embedded with the query prefix (unless `vector` is given); not empty or only
    /// whitespace, at most --max-query-bytes (4096).
    #[schema(pattern = r"\S")]
    pub query: String,
    /// The query's embedding, if the caller has it: searched instead of embedding `query`,
    /// which the reranker and BM25 still read. As many finite numbers as the collection's
    /// dimension (1-65536).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 65536)]
    pub vector: Option<Vec<f32>>,
    /// The collection to search [default: --default-collection, `profiles`].
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
    pub collection: Option<String>,
    /// Hits to return, at most `candidates`.
    #[serde(default = "default_top_k", deserialize_with = "shared::http::integer::count")]
    #[schema(default = 10, minimum = 1)]
    pub top_k: usize,
    /// Vector hits to rerank, at most --max-candidates (200) [default: 50, or --max-candidates
    /// if lower].
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    #[schema(minimum = 1)]
    pub candidates: Option<usize>,
    /// A Qdrant filter (`must`, `should`, `must_not`, `min_should` with `match`, `range`,
    /// `geo_*`, `values_count`, `is_empty`, `is_null`, `has_id` conditions) on the payload.
    #[serde(default)]
    pub filter: Option<Value>,
    /// Rerank the candidates with the cross-encoder (otherwise retrieval order).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub rerank: bool,
    /// How candidates are found: `dense` (the embedding), `sparse` (BM25 over the words) or
    /// `hybrid` (both, fused by the vector store) [default: `hybrid`]. A collection built before
    /// sparse vectors answers `hybrid` dense-only (the answer's `retrieval` says so).
    #[serde(default)]
    pub retrieval: Option<Retrieval>,
    /// How `hybrid` fuses the two rankings [default: RRF, k 5, the sparse ranking weighing 0.05].
    #[serde(default)]
    pub fusion: Option<Fusion>,
    /// The HNSW search's beam, 1-10000 [default: the engine's, 100 or `candidates` if larger]:
    /// larger finds more of the true nearest neighbours, slower.
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    #[schema(minimum = 1, maximum = 10000)]
    pub hnsw_ef: Option<usize>,
    /// Search every vector instead of the HNSW index (exact, slow on a large collection: the
    /// reference the index is measured against).
    #[serde(default)]
    pub exact: bool,
    #[serde(default)]
    pub cache: CacheMode,
}

fn default_top_k() -> usize {
    10
}

pub(crate) const DEFAULT_CANDIDATES: usize = 50;

/// The retrieval of a search that names none: hybrid with the default fusion, which beat dense
/// and BM25 on every test collection and lost nothing on the cross-lingual pool (BENCHMARKS.md,
/// "Relevance"). A collection without sparse vectors answers it dense.
pub const DEFAULT_RETRIEVAL: Retrieval = Retrieval::Hybrid;

fn default_true() -> bool {
    true
}

/// `use`: read and write the cache; `bypass`: neither; `refresh`: recompute and write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    #[default]
    Use,
    Bypass,
    Refresh,
}

/// `applied`: every candidate reranked; `partial`: the rerank budget (--rerank-budget-ms) ran
/// out, or the reranker failed, after the first `reranked.window` candidates: those come first by
/// rerank score, then the others in retrieval order, exactly what `candidates` =
/// `reranked.window` would have given (the others are scored in the background, so the next
/// identical search is complete); `skipped`: not asked for (or nothing to rerank); `fallback`:
/// nothing could be reranked in time, so the hits are in retrieval order. Partial and fallback
/// answers are not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RerankStatus {
    Applied,
    Partial,
    Skipped,
    Fallback,
}

impl RerankStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Partial => "partial",
            Self::Skipped => "skipped",
            Self::Fallback => "fallback",
        }
    }
}

/// What the reranker did for this answer (present unless reranking was skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reranked {
    /// The first `window` candidates, in retrieval order, were reranked: all of them unless
    /// `rerank` is `partial` (or `fallback`: 0).
    pub window: usize,
    /// Scores of the window read from the score cache (0 on a cache hit: nothing was scored).
    pub reused: usize,
    /// Pairs the model scored for this answer.
    pub scored: usize,
}

/// Whether the result came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// What the hits are ordered by: `rerank_score` when reranked, else `vector_score`.
    pub score: f32,
    /// The retrieval's score: the cosine similarity of query and document (dense), their BM25
    /// score (sparse), or the fusion's score (hybrid).
    pub vector_score: f32,
    /// The cross-encoder's sigmoid score, when reranked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rerank_score: Option<f32>,
    /// The document's payload as upserted.
    pub payload: Map<String, Value>,
}

/// Milliseconds spent in each stage (0 for a stage that did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    pub cache: f64,
    pub embed: f64,
    pub search: f64,
    pub rerank: f64,
    pub total: f64,
}

/// The hits, best first, and how they were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// The retrieval that ran: the one asked for, or `dense` for a collection without sparse
    /// vectors.
    pub retrieval: Retrieval,
    pub rerank: RerankStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reranked: Option<Reranked>,
    pub cache: CacheStatus,
    pub timings_ms: Timings,
}
