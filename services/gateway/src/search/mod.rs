//! `POST /search`: cache -> embed the query -> vector top-N -> rerank -> cache. Its request and
//! answer types are in `api`; identical concurrent searches share one computation (`flight`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{hex, hex_sha256};
use tracing::Instrument as _;

use crate::Gateway;
use crate::cache::Generation;
use crate::error::ApiError;
use crate::rerank::Reuse;
use crate::retrieval::{Fusion, Retrieval, SearchParams, StoreQuery};
use crate::store::{Found, SearchFilter, StoreError};
use crate::upstream::UpstreamError;

mod api;
pub mod flight;
mod validate;

pub use api::{
    CacheMode, CacheStatus, DEFAULT_RETRIEVAL, Hit, RerankStatus, Reranked, SearchRequest, SearchResponse, Timings,
};
pub use validate::normalize_query;

/// What is cached: the result without its timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Computed {
    hits: Vec<Hit>,
    retrieval: Retrieval,
    rerank: RerankStatus,
    reranked: Option<Reranked>,
    #[serde(skip)]
    timings: Timings,
}

/// A request that passed validation.
#[derive(Debug, Clone)]
struct Search {
    query: String,
    /// The caller's query vector, searched instead of the query's embedding.
    vector: Option<Vec<f32>>,
    collection: String,
    top_k: usize,
    candidates: usize,
    filter: Option<SearchFilter>,
    rerank: bool,
    retrieval: Retrieval,
    fusion: Fusion,
    params: SearchParams,
    mode: CacheMode,
}

/// A vector's numbers as the embedding cache stores them (little-endian f32s).
fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Everything that changes a result is in its key, the collection's generation included.
fn result_key(gateway: &Gateway, search: &Search, generation: u64) -> String {
    let numbers =
        format!("{}:{}:{}:{generation}{}", search.top_k, search.candidates, search.rerank, search.params.canonical());
    let retrieval = match search.retrieval {
        Retrieval::Dense => "dense".to_string(),
        Retrieval::Sparse => format!("sparse|{}", gateway.collections.bm25(&search.collection).identity()),
        Retrieval::Hybrid => {
            format!("hybrid|{}|{}", search.fusion.canonical(), gateway.collections.bm25(&search.collection).identity())
        }
    };
    let hash = hex_sha256(&[
        &search.query,
        &search.collection,
        &numbers,
        search.filter.as_ref().map_or("", SearchFilter::canonical),
        &match (search.retrieval.needs_dense(), &search.vector) {
            (false, _) => String::new(),
            (true, Some(vector)) => vector_identity(vector),
            (true, None) => gateway.collections.embedding_identity(&search.collection),
        },
        &if search.rerank { gateway.reranker.model() } else { String::new() },
        &retrieval,
    ]);
    format!("sg:v1:search:{}:{hash}", search.collection)
}

/// A caller's query vector in a cache key: the SHA-256 of its numbers.
fn vector_identity(vector: &[f32]) -> String {
    format!("vector:{}", hex(&Sha256::digest(vector_bytes(vector))))
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

pub async fn search(gateway: &Arc<Gateway>, request: SearchRequest) -> Result<SearchResponse, ApiError> {
    let started = Instant::now();
    let mut search = validate::validate(gateway, request)?;
    // An alias is searched as the collection it names: same results, keys and generation.
    search.collection = gateway.collections.resolve(&search.collection).await;
    let cache_started = Instant::now();
    let lookup = async {
        let key = match search.mode {
            CacheMode::Bypass => None,
            CacheMode::Use | CacheMode::Refresh => match gateway.cache.generation(&search.collection).await {
                Generation::Known(generation) => Some(result_key(gateway, &search, generation)),
                Generation::Unknown => None,
            },
        };
        let cached = match (search.mode, &key) {
            (CacheMode::Use, Some(key)) => gateway.cache.get(key).await,
            _ => None,
        };
        let hit = cached.and_then(|bytes| serde_json::from_slice::<Computed>(&bytes).ok());
        tracing::Span::current().record("hit", hit.is_some());
        (key, hit)
    };
    let (key, hit) = lookup.instrument(tracing::info_span!("cache_lookup", hit = tracing::field::Empty)).await;
    if let Some(cached) = hit {
        let cache = millis(cache_started);
        let timings = Timings { cache, total: millis(started), ..Timings::default() };
        gateway.metrics.search("hit");
        gateway.metrics.stage("cache", cache / 1000.0);
        // Nothing was scored for this answer.
        let reranked = cached.reranked.map(|r| Reranked { reused: 0, scored: 0, ..r });
        return Ok(SearchResponse {
            hits: cached.hits,
            retrieval: cached.retrieval,
            rerank: cached.rerank,
            reranked,
            cache: CacheStatus::Hit,
            timings_ms: timings,
        });
    }
    let cache_ms = millis(cache_started);
    let status = if key.is_some() { CacheStatus::Miss } else { CacheStatus::Bypass };
    let computed = match (search.mode, key) {
        // Identical concurrent misses are computed once.
        (CacheMode::Use, Some(key)) => {
            // The flight runs on a task of its own: it stays in this request's trace.
            let work = compute(gateway.clone(), search, Some(key.clone())).instrument(tracing::Span::current());
            gateway.flights.run(key, work).await.unwrap_or(Err(ApiError::Internal))?
        }
        (_, key) => compute(gateway.clone(), search, key).await?,
    };
    // The cache stage is the lookup here plus the write inside `compute`.
    let timings = Timings { cache: cache_ms + computed.timings.cache, total: millis(started), ..computed.timings };
    gateway.metrics.search(match status {
        CacheStatus::Miss => "miss",
        _ => "bypass",
    });
    gateway.metrics.stage("cache", timings.cache / 1000.0);
    gateway.metrics.stage("total", timings.total / 1000.0);
    Ok(SearchResponse {
        hits: computed.hits.clone(),
        retrieval: computed.retrieval,
        rerank: computed.rerank,
        reranked: computed.reranked,
        cache: status,
        timings_ms: timings,
    })
}

/// Embeds, searches, reranks, and caches the result under `key` (unless reranking fell back).
async fn compute(gateway: Arc<Gateway>, search: Search, key: Option<String>) -> Result<Arc<Computed>, ApiError> {
    // With both engines in process, no bulk batch (an ingest's) starts on these cores from the
    // query's embedding to the end of its rerank.
    let embedder_foreground = gateway.collections.embedder(&search.collection).foreground();
    let _foreground = embedder_foreground.filter(|_| gateway.reranker.in_process()).map(|f| f.enter());
    let use_embedding_cache = search.mode != CacheMode::Bypass;
    let embed_started = Instant::now();
    let dense = match (search.retrieval.needs_dense(), &search.vector) {
        (false, _) => None,
        (true, Some(vector)) => Some(vector.clone()),
        (true, None) => Some(
            embed_query(&gateway, &search, use_embedding_cache)
                .instrument(tracing::info_span!("embed_query"))
                .await
                .inspect_err(|_| gateway.metrics.dependency_error("embedder"))?,
        ),
    };
    let sparse =
        search.retrieval.needs_sparse().then(|| gateway.collections.bm25(&search.collection).query(&search.query));
    // A stage that did not run takes 0: nothing is embedded for the caller's own vector.
    let embedded = search.vector.is_none() || sparse.is_some();
    let embed = if embedded { millis(embed_started) } else { 0.0 };

    let search_started = Instant::now();
    let query = StoreQuery { dense, sparse, fusion: search.fusion, limit: search.candidates, params: search.params };
    let span =
        tracing::info_span!("vector_search", candidates = search.candidates, retrieval = search.retrieval.as_str());
    let searched = gateway
        .store
        .search(&search.collection, query, search.filter.as_ref())
        .instrument(span)
        .await
        .inspect_err(|e| {
            if matches!(e, StoreError::Unavailable(_) | StoreError::Failed(_)) {
                gateway.metrics.dependency_error("vector_store");
            }
        })
        .map_err(|e| match (e, &search.vector) {
            // The caller's vector, not the collection's model, is the wrong size.
            (StoreError::Dimension { collection, expected, got }, Some(_)) => {
                ApiError::Invalid(format!("`vector` has {got} dimensions; collection {collection:?} has {expected}"))
            }
            (e, _) => e.into(),
        })?;
    let search_ms = millis(search_started);
    let (found, retrieval) = (searched.found, searched.retrieval);

    let rerank_started = Instant::now();
    let rerank_span = tracing::info_span!(
        "rerank",
        documents = found.len(),
        status = tracing::field::Empty,
        window = tracing::field::Empty,
        pairs_reused = tracing::field::Empty,
        pairs_scored = tracing::field::Empty,
    );
    let (hits, rerank, reranked) = rerank(&gateway, &search, found).instrument(rerank_span.clone()).await;
    rerank_span.record("status", rerank.as_str());
    if let Some(r) = reranked {
        rerank_span.record("window", r.window).record("pairs_reused", r.reused).record("pairs_scored", r.scored);
    }
    let rerank_ms = millis(rerank_started);
    gateway.metrics.rerank(rerank.as_str());
    gateway.metrics.stage("embed", embed / 1000.0);
    gateway.metrics.stage("search", search_ms / 1000.0);
    gateway.metrics.stage("rerank", rerank_ms / 1000.0);

    let mut computed = Computed { hits, retrieval, rerank, reranked, timings: Timings::default() };
    let write_started = Instant::now();
    // A partial or fallback result is not cached: the next search should get the reranked one.
    if let Some(key) = key
        && !matches!(rerank, RerankStatus::Fallback | RerankStatus::Partial)
        && let Ok(bytes) = serde_json::to_vec(&computed)
    {
        gateway.cache.set(&key, bytes, gateway.limits.cache_ttl).instrument(tracing::info_span!("cache_write")).await;
    }
    let cache = millis(write_started);
    computed.timings = Timings { cache, embed, search: search_ms, rerank: rerank_ms, total: 0.0 };
    Ok(Arc::new(computed))
}

/// The query's vector, embedded as the collection's documents were, from the embedding cache
/// when it has it.
async fn embed_query(gateway: &Gateway, search: &Search, use_cache: bool) -> Result<Vec<f32>, ApiError> {
    let (query, collection) = (&search.query, &search.collection);
    let identity = gateway.collections.embedding_identity(collection);
    let key = format!("sg:v1:qemb:{}", hex_sha256(&[&identity, query]));
    if use_cache
        && let Some(bytes) = gateway.cache.get(&key).await
        && !bytes.is_empty()
        && bytes.len() % 4 == 0
    {
        return Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
    }
    let (input_type, _) = gateway.collections.profiles.input_types(collection);
    let embedder = gateway.collections.embedder(collection);
    let priority = shared::Priority::Interactive;
    let mut vectors =
        embedder.embed(vec![query.to_string()], input_type, priority, gateway.limits.embed_timeout).await?;
    let vector = vectors.pop().ok_or(ApiError::Internal)?;
    if use_cache {
        let bytes = vector_bytes(&vector);
        gateway.cache.set(&key, bytes, gateway.limits.embedding_cache_ttl).await;
    }
    Ok(vector)
}

/// The best `top_k` hits: the candidates the reranker scored in time (a prefix in retrieval order:
/// all of them, unless its budget ran out or it failed) by score, then the others in retrieval
/// order.
async fn rerank(gateway: &Gateway, search: &Search, found: Vec<Found>) -> (Vec<Hit>, RerankStatus, Option<Reranked>) {
    if !search.rerank || found.is_empty() {
        return (window_order(found, &[], search.top_k), RerankStatus::Skipped, None);
    }
    let documents = found.iter().map(|f| f.text.clone().unwrap_or_default()).collect();
    let reuse = match search.mode {
        CacheMode::Use => Reuse::Use,
        CacheMode::Bypass => Reuse::Bypass,
        CacheMode::Refresh => Reuse::Refresh,
    };
    let budget = gateway.limits.rerank_budget;
    let scored = gateway.reranking.score(search.query.clone(), documents, None, reuse, budget).await;
    let window = scored.scores.len();
    let status = match (&scored.stopped, window) {
        (None, _) => RerankStatus::Applied,
        (Some(_), 0) => RerankStatus::Fallback,
        (Some(_), _) => RerankStatus::Partial,
    };
    match &scored.stopped {
        // A budget that runs out after some of the window is the stage working as configured.
        Some(UpstreamError::Timeout(_)) if window > 0 => tracing::debug!(window, "rerank budget ran out"),
        Some(error) => {
            gateway.metrics.dependency_error("reranker");
            gateway.log_rerank_stop(error, window);
        }
        None => {}
    }
    let reranked = Reranked { window, reused: scored.reused, scored: scored.scored };
    (window_order(found, &scored.scores, search.top_k), status, Some(reranked))
}

/// The first `top_k` of: the first `scores.len()` candidates by score (equal scores keep their
/// retrieval order), then the others in retrieval order.
fn window_order(found: Vec<Found>, scores: &[f32], top_k: usize) -> Vec<Hit> {
    let order = shared::reranker::rank(scores).into_iter().chain(scores.len()..found.len());
    let mut found: Vec<Option<Found>> = found.into_iter().map(Some).collect();
    order
        .filter_map(|i| {
            let f = found[i].take()?;
            let rerank_score = scores.get(i).copied();
            let score = rerank_score.unwrap_or(f.score);
            Some(Hit { id: f.id, score, vector_score: f.score, rerank_score, payload: f.payload })
        })
        .take(top_k)
        .collect()
}

/// Limits and budgets of the search path.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_collection: String,
    pub max_candidates: usize,
    pub max_query_bytes: usize,
    pub max_upsert_documents: usize,
    pub cache_ttl: Duration,
    pub embedding_cache_ttl: Duration,
    pub embed_timeout: Duration,
    /// A search's rerank budget: then the answer keeps the scored prefix (`partial`).
    pub rerank_budget: Duration,
    /// The limit of a rerank with no partial answer (Cohere's routes).
    pub rerank_timeout: Duration,
    /// How long a (query, document) score stays in the score cache.
    pub score_cache_ttl: Duration,
    /// Pairs a budget left unscored that may wait for the background at once.
    pub rerank_background_pairs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_the_contract_defaults() {
        let request: SearchRequest = serde_json::from_str(r#"{"query": "x"}"#).unwrap();
        assert_eq!(
            (request.top_k, request.candidates, request.rerank, request.cache),
            (10, None, true, CacheMode::Use)
        );
        assert_eq!((request.retrieval, request.fusion), (None, None));
        assert!(serde_json::from_str::<SearchRequest>(r#"{"query": "x", "topk": 3}"#).is_err(), "typos are refused");
    }
}
