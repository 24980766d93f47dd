//! What `eval` searches: this process's gateway (the same engines, store and search code as the
//! server, built from the same flags), or a running gateway over HTTP.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use shared::batcher::Readiness;
use shared::config::Secret;

use crate::Gateway;
use crate::backends::{Parts, StartError};
use crate::cache::CacheLayer;
use crate::config::JobArgs;
use crate::jobs::sink::Sink;
use crate::metrics::GatewayMetrics;
use crate::search::{Limits, SearchRequest};

pub(super) enum Target {
    Local { gateway: Arc<Gateway>, parts: Parts },
    Remote { client: reqwest::Client, url: String, key: Option<Secret> },
}

/// One search's hits as the eval reads them, best first.
pub(super) struct Ranking {
    /// The documents' ids.
    pub ids: Vec<String>,
    /// What the hits were ordered by (`score`), in the same order. Kept in `--per-query` so that
    /// a checker can see where an engine's ordering was a free choice between equal scores.
    pub scores: Vec<f32>,
}

impl Target {
    /// A gateway in this process once its engines are ready, or the one at `--gateway-url`.
    pub(super) async fn new(job: &JobArgs, max_candidates: usize) -> Result<Self, StartError> {
        if let Some(url) = &job.gateway_url {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(job.batch_timeout_secs)).build();
            let client = client.map_err(|e| StartError::Config(format!("HTTP client: {e}")))?;
            let url = url.trim_end_matches('/').to_string();
            return Ok(Self::Remote { client, url, key: job.gateway_api_key.clone() });
        }
        let parts = Parts::build(&job.backends, &mut Registry::default()).await?;
        for (name, readiness) in &parts.engines {
            let mut readiness = readiness.clone();
            let state = readiness.wait_for(|r| !matches!(r, Readiness::Loading)).await;
            if let Ok(Readiness::Failed(why)) = state.as_deref() {
                return Err(StartError::EngineFailed(name, why.clone()));
            }
        }
        let metrics = GatewayMetrics::default();
        let collections = parts.collections();
        // Each stage gets a batch job's budget: an evaluation waits for answers rather than failing.
        let budget = Duration::from_secs(job.batch_timeout_secs);
        let limits = Limits {
            default_collection: String::new(),
            max_candidates,
            max_query_bytes: 64 * 1024,
            max_upsert_documents: job.batch_size.max(1),
            cache_ttl: Duration::ZERO,
            embedding_cache_ttl: Duration::ZERO,
            embed_timeout: budget,
            rerank_budget: budget,
            rerank_timeout: budget,
            score_cache_ttl: Duration::from_secs(1),
            rerank_background_pairs: 0,
        };
        let cache = CacheLayer::new(parts.cache.clone(), metrics.clone());
        let gateway = Gateway::new(collections, parts.reranker.clone(), parts.store.clone(), cache, metrics, limits);
        Ok(Self::Local { gateway: Arc::new(gateway), parts })
    }

    /// Where ingest writes the corpus: the same gateway.
    pub(super) fn sink(&self, job: &JobArgs) -> Result<Sink, StartError> {
        match self {
            Self::Local { parts, .. } => Ok(Sink::from_parts(parts, Duration::from_secs(job.batch_timeout_secs))),
            Self::Remote { url, .. } => Sink::remote(url, job.gateway_api_key.as_ref(), job.retries),
        }
    }

    /// One search's hits, best first, and the retrieval that ran; the cache is bypassed.
    pub(super) async fn search(&self, request: Value) -> Result<(Ranking, String), String> {
        match self {
            Self::Local { gateway, .. } => {
                let request: SearchRequest = serde_json::from_value(request).map_err(|e| e.to_string())?;
                let answer = crate::search::search(gateway, request).await.map_err(|e| e.to_string())?;
                let (ids, scores) = answer.hits.into_iter().map(|h| (h.id, h.score)).unzip();
                Ok((Ranking { ids, scores }, answer.retrieval.as_str().to_string()))
            }
            Self::Remote { .. } => {
                let (status, body) = self.call(reqwest::Method::POST, "/search", Some(&request)).await?;
                if status != 200 {
                    return Err(format!("POST /search answered {status}: {body}"));
                }
                let hits = body["hits"].as_array().into_iter().flatten();
                let (ids, scores) = hits
                    .filter_map(|h| {
                        Some((h["id"].as_str()?.to_string(), h["score"].as_f64().unwrap_or(f64::NAN) as f32))
                    })
                    .unzip();
                Ok((Ranking { ids, scores }, body["retrieval"].as_str().unwrap_or("unknown").to_string()))
            }
        }
    }

    /// Whether the collection exists.
    pub(super) async fn exists(&self, collection: &str) -> Result<bool, String> {
        match self {
            Self::Local { parts, .. } => {
                Ok(parts.store.collections().await.map_err(|e| e.to_string())?.iter().any(|c| c == collection))
            }
            Self::Remote { .. } => {
                let (status, body) =
                    self.call(reqwest::Method::GET, &format!("/collections/{collection}"), None).await?;
                match status {
                    200 => Ok(true),
                    404 => Ok(false),
                    _ => Err(format!("GET /collections/{collection} answered {status}: {body}")),
                }
            }
        }
    }

    /// How many of `ids` the collection does not hold.
    pub(super) async fn missing(&self, collection: &str, ids: &[String]) -> Result<usize, String> {
        match self {
            Self::Local { parts, .. } => {
                let mut found = 0;
                for chunk in ids.chunks(256) {
                    found += parts.store.content_hashes(collection, chunk).await.map_err(|e| e.to_string())?.len();
                }
                Ok(ids.len() - found)
            }
            Self::Remote { .. } => {
                let mut missing = 0;
                for id in ids {
                    let path = format!("/collections/{collection}/documents/{}", urlencoding(id));
                    match self.call(reqwest::Method::GET, &path, None).await? {
                        (200, _) => {}
                        (404, _) => missing += 1,
                        (status, body) => return Err(format!("GET {path} answered {status}: {body}")),
                    }
                }
                Ok(missing)
            }
        }
    }

    /// Waits for the in-process store's optimizer to finish with what was just indexed, then
    /// writes the store to disk, so that every configuration ranks the same, optimized store (one
    /// searched while the optimizer runs could meet the plain segments, the next the HNSW index).
    /// A remote gateway is evaluated as it serves, optimizing or not.
    pub(super) async fn settle(&self) {
        if let Self::Local { parts, .. } = self
            && let Some(edge) = parts.edge.clone()
        {
            let settled = tokio::task::spawn_blocking(move || {
                edge.settle();
                edge.flush();
            });
            settled.await.expect("the store's settle and flush do not panic");
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let Self::Remote { client, url, key } = self else { unreachable!("only a remote gateway is called") };
        let mut request = client.request(method, format!("{url}{path}"));
        if let Some(key) = key {
            request = request.bearer_auth(key.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| format!("{url}{path}: {e}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(json!(null))))
    }
}

/// A document id as one URL path segment.
fn urlencoding(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
