//! search-gateway: cache -> embed the query -> vector top-N -> rerank -> cache, with every
//! dependency either in process (the default, one command to start) or a real server.

pub mod backends;
pub mod cache;
pub mod collections;
pub mod config;
pub mod documents;
pub mod engines;
pub mod error;
pub mod flight;
pub mod ingest;
pub mod metrics;
pub mod playground;
pub mod profiles;
pub mod reindex;
pub mod remote;
pub mod replicas;
pub mod routes;
pub mod search;
pub mod serve;
pub mod sink;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::Config;

use crate::cache::CacheLayer;
use crate::collections::Collections;
use crate::engines::{Rerank, UpstreamError};
use crate::error::ApiError;
use crate::flight::Flights;
use crate::metrics::GatewayMetrics;
use crate::search::Limits;
use crate::store::VectorStore;

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
