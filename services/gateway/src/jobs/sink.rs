//! Where the batch jobs (`ingest`, `reindex`) write documents: this process's own engines and
//! store (the same flags as the server), or a running gateway's API.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use shared::Priority;
use shared::batcher::Readiness;
use shared::config::{EngineArgs, Secret};

use crate::backends::StartError;
use crate::cache::CacheLayer;
use crate::collections::Collections;
use crate::collections::documents::{Document, Upserted, Writer};
use crate::config::Backends;
use crate::error::ApiError;
use crate::metrics::GatewayMetrics;
use crate::store::{EdgeStore, VectorStore};
use crate::upstream::RemoteService;

/// Where batches go.
pub enum Sink {
    Local(Box<LocalWriter>),
    Remote(RemoteService),
}

/// This process's engines, store and cache.
pub struct LocalWriter {
    pub collections: Collections,
    pub store: Arc<dyn VectorStore>,
    pub cache: CacheLayer,
    metrics: GatewayMetrics,
    embed_timeout: Duration,
    edge: Option<EdgeStore>,
}

impl Sink {
    /// A running gateway at `url`.
    pub fn remote(url: &str, key: Option<&Secret>, retries: u32) -> Result<Self, StartError> {
        Ok(Self::Remote(RemoteService::new("gateway", url, key, retries).map_err(StartError::Config)?))
    }

    /// This process's engines and store, once the embedders are ready; `embed_timeout` bounds
    /// one batch's embedding.
    pub async fn local(backends: &Backends, embed_timeout: Duration) -> Result<Self, StartError> {
        let profiles = crate::backends::profiles(backends)?;
        let (store, edge) = crate::backends::store(backends, &profiles).await?;
        let metrics = GatewayMetrics::default();
        let cache = CacheLayer::new(crate::backends::cache(backends)?, metrics.clone());
        let mut registry = Registry::default();
        // This process's engine runs the job alone, with no search to make room for: its bulk
        // batches may fill the whole token budget (the small ones cost ~15% of throughput).
        let engine = EngineArgs { bulk_batch_tokens: backends.engine.max_batch_tokens, ..backends.engine.clone() };
        let (embedder, readiness) = crate::backends::embedder(backends, &engine, &mut registry).await?;
        let (embedders, others) =
            crate::backends::collection_embedders(backends, &profiles, &engine, &mut registry).await?;
        for mut readiness in readiness.into_iter().chain(others) {
            let state = readiness.wait_for(|r| !matches!(r, Readiness::Loading)).await;
            if let Ok(Readiness::Failed(why)) = state.as_deref() {
                return Err(StartError::EngineFailed("embedder", why.clone()));
            }
        }
        let collections = Collections::new(profiles, embedders, embedder, store.clone());
        Ok(Self::Local(Box::new(LocalWriter { collections, store, cache, metrics, embed_timeout, edge })))
    }

    /// Engines and a store this process already runs (`eval` indexes a corpus into the gateway
    /// it searches); the caller flushes the store.
    pub fn from_parts(parts: &crate::backends::Parts, embed_timeout: Duration) -> Self {
        let metrics = GatewayMetrics::default();
        let collections = parts.collections();
        let cache = CacheLayer::new(parts.cache.clone(), metrics.clone());
        let store = parts.store.clone();
        Self::Local(Box::new(LocalWriter { collections, store, cache, metrics, embed_timeout, edge: None }))
    }

    pub async fn write(
        &self,
        collection: &str,
        documents: Vec<Document>,
        budget: Duration,
    ) -> Result<Upserted, String> {
        match self {
            Self::Local(local) => {
                let writer = Writer {
                    collections: &local.collections,
                    store: local.store.as_ref(),
                    cache: &local.cache,
                    metrics: &local.metrics,
                    embed_timeout: local.embed_timeout,
                };
                writer.upsert(collection, documents, Priority::Bulk).await.map_err(|e: ApiError| e.to_string())
            }
            Self::Remote(gateway) => {
                let path = format!("/collections/{collection}/documents");
                let body = serde_json::json!({ "documents": documents, "priority": Priority::Bulk });
                gateway.send(reqwest::Method::PUT, &path, &body, budget).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Flushes a qdrant-edge store at the end of the job.
    pub fn flush(&self) {
        if let Self::Local(local) = self
            && let Some(edge) = &local.edge
        {
            edge.flush();
        }
    }
}
