//! search-gateway: cache -> embed the query -> vector top-N -> rerank -> cache, with every
//! dependency either in process (the default, one command to start) or a real server.

pub mod backends;
pub mod cache;
pub mod collections;
pub mod config;
pub mod error;
pub mod eval;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod rerank;
pub mod retrieval;
pub mod search;
pub mod store;
pub mod sync;
pub mod upstream;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::Config;

use crate::cache::CacheLayer;
use crate::collections::Collections;
use crate::collections::documents;
use crate::error::ApiError;
use crate::metrics::GatewayMetrics;
use crate::rerank::Reranking;
use crate::search::Limits;
use crate::search::flight::Flights;
use crate::store::VectorStore;
use crate::upstream::{Rerank, UpstreamError};

/// The future of a trait method that must stay object-safe (the stores, caches and engines are
/// `dyn`): boxed, sendable.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a search or a write needs; shared by the handlers.
pub struct Gateway {
    /// Aliases, and each collection's embedder and layout.
    pub collections: Collections,
    pub reranker: Arc<dyn Rerank>,
    /// The reranker with its score cache, budgets and background.
    pub reranking: Reranking,
    pub store: Arc<dyn VectorStore>,
    pub cache: CacheLayer,
    pub metrics: GatewayMetrics,
    pub limits: Limits,
    /// The collections that follow a table, once their workers are started.
    pub sync: sync::Registry,
    flights: Flights<Result<Arc<search::Computed>, ApiError>>,
    last_fallback_log: Mutex<Option<Instant>>,
}

impl Gateway {
    pub fn new(
        collections: Collections,
        reranker: Arc<dyn Rerank>,
        store: Arc<dyn VectorStore>,
        cache: CacheLayer,
        metrics: GatewayMetrics,
        limits: Limits,
    ) -> Self {
        let settings =
            rerank::Settings { ttl: limits.score_cache_ttl, background_pairs: limits.rerank_background_pairs };
        let reranking = Reranking::new(reranker.clone(), cache.clone(), metrics.clone(), settings);
        Self {
            collections,
            reranker,
            reranking,
            store,
            cache,
            metrics,
            limits,
            sync: sync::Registry::default(),
            flights: Flights::default(),
            last_fallback_log: Mutex::default(),
        }
    }

    /// Writes documents with this gateway's engines, store and cache.
    pub fn writer(&self) -> documents::Writer<'_> {
        documents::Writer {
            collections: &self.collections,
            store: self.store.as_ref(),
            cache: &self.cache,
            metrics: &self.metrics,
            embed_timeout: self.limits.embed_timeout,
        }
    }

    /// Logs a rerank that stopped short at most every 10 s (a down reranker would otherwise
    /// flood the log); `window` candidates were reranked.
    fn log_rerank_stop(&self, error: &UpstreamError, window: usize) {
        let mut last = self.last_fallback_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(%error, window, "reranking stopped short; the rest is in vector order");
        }
    }
}
