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
pub mod retrieval;
pub mod search;
pub mod store;
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
    pub store: Arc<dyn VectorStore>,
    pub cache: CacheLayer,
    pub metrics: GatewayMetrics,
    pub limits: Limits,
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
        Self {
            collections,
            reranker,
            store,
            cache,
            metrics,
            limits,
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

    /// Logs a rerank fallback at most every 10 s (a down reranker would otherwise flood the log).
    fn log_rerank_fallback(&self, error: &UpstreamError) {
        let mut last = self.last_fallback_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(%error, "reranking failed; serving vector order");
        }
    }
}
