//! Building the gateway's dependencies from [`Backends`]: the engines (in process or remote),
//! the vector store and the cache. Shared by the server and the batch jobs.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use shared::batcher::{BatcherMetrics, Readiness as EngineReadiness};
use shared::config::{EngineArgs, resolve_model};
use shared::{Embedder, Reranker};
use tokio::sync::watch;

use crate::cache::{Cache, MemoryCache, RedisCache};
use crate::collections::profiles::Profiles;
use crate::collections::{CollectionEmbedders, Collections};
use crate::config::Backends;
use crate::store::{EdgeOptions, EdgeStore, QdrantStore, VectorStore};
use crate::upstream::RemoteService;
use crate::upstream::{Embed, RemoteEmbedder, RemoteReranker, Rerank};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Runtime(#[from] shared::runtime::RuntimeError),
    #[error(transparent)]
    Fetch(#[from] shared::fetch::FetchError),
    #[error(transparent)]
    Model(#[from] shared::model::ModelError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error("the {0} model failed: {1}")]
    EngineFailed(&'static str, String),
}

/// The dependencies built from [`Backends`], and the in-process engines' readiness.
pub struct Parts {
    pub embedder: Arc<dyn Embed>,
    pub profiles: Arc<Profiles>,
    pub collection_embedders: CollectionEmbedders,
    pub reranker: Arc<dyn Rerank>,
    pub store: Arc<dyn VectorStore>,
    pub cache: Arc<dyn Cache>,
    pub engines: Vec<(&'static str, watch::Receiver<EngineReadiness>)>,
    /// Set when the store is qdrant-edge, to flush it at shutdown.
    pub edge: Option<EdgeStore>,
}

/// Starts the embedder: embed-service over HTTP, or the in-process engine.
pub async fn embedder(
    backends: &Backends,
    engine: &EngineArgs,
    registry: &mut Registry,
) -> Result<(Arc<dyn Embed>, Option<watch::Receiver<EngineReadiness>>), StartError> {
    if let Some(url) = &backends.embed_url {
        let service = RemoteService::new("embedder", url, backends.embed_api_key.as_ref(), backends.upstream_retries)
            .map_err(StartError::Config)?;
        learn_name_in_background(service.clone());
        return Ok((Arc::new(RemoteEmbedder::new(service)), None));
    }
    shared::runtime::init()?;
    let dir = resolve_model(backends.embed_model_dir.as_deref(), &backends.embed_model, &backends.models_dir).await?;
    let metrics = BatcherMetrics::default();
    metrics.register(registry.sub_registry_with_prefix("embed"));
    let embedder = Embedder::start(&dir, engine, metrics)?;
    tracing::info!(model = %dir.path.display(), "in-process embedder");
    let readiness = embedder.batcher().readiness();
    Ok((Arc::new(embedder), Some(readiness)))
}

async fn reranker(
    backends: &Backends,
    engine: &EngineArgs,
    registry: &mut Registry,
) -> Result<(Arc<dyn Rerank>, Option<watch::Receiver<EngineReadiness>>), StartError> {
    if let Some(url) = &backends.rerank_url {
        let service = RemoteService::new("reranker", url, backends.rerank_api_key.as_ref(), backends.upstream_retries)
            .map_err(StartError::Config)?;
        learn_name_in_background(service.clone());
        return Ok((Arc::new(RemoteReranker::new(service)), None));
    }
    shared::runtime::init()?;
    let dir = resolve_model(backends.rerank_model_dir.as_deref(), &backends.rerank_model, &backends.models_dir).await?;
    let metrics = BatcherMetrics::default();
    metrics.register(registry.sub_registry_with_prefix("rerank"));
    let reranker = Reranker::start(&dir, engine, metrics)?;
    tracing::info!(model = %dir.path.display(), "in-process reranker");
    let readiness = reranker.batcher().readiness();
    Ok((Arc::new(reranker), Some(readiness)))
}

/// `--collections-config`, or no configured collection.
pub fn profiles(backends: &Backends) -> Result<Arc<Profiles>, StartError> {
    // An empty COLLECTIONS_CONFIG= (compose's unset `${VAR:-}`) means none.
    match &backends.collections_config {
        Some(path) if !path.as_os_str().is_empty() => Ok(Arc::new(Profiles::load(path).map_err(StartError::Config)?)),
        _ => Ok(Arc::default()),
    }
}

/// Starts the embedders of configured collections that name their own model (in process, or an
/// embed-service), and returns them with the in-process ones' readiness.
pub async fn collection_embedders(
    backends: &Backends,
    profiles: &Profiles,
    engine: &EngineArgs,
    registry: &mut Registry,
) -> Result<(CollectionEmbedders, Vec<watch::Receiver<EngineReadiness>>), StartError> {
    let (mut embedders, mut ready) = (CollectionEmbedders::new(), Vec::new());
    for (collection, profile) in profiles.iter() {
        let embedder: Arc<dyn Embed> = if let Some(url) = &profile.embed_url {
            let key = backends.embed_api_key.as_ref();
            let service =
                RemoteService::new("embedder", url, key, backends.upstream_retries).map_err(StartError::Config)?;
            learn_name_in_background(service.clone());
            Arc::new(RemoteEmbedder::new(service))
        } else if let Some(dir) = &profile.embed_model_dir {
            shared::runtime::init()?;
            let metrics = BatcherMetrics::default();
            metrics.register(registry.sub_registry_with_prefix(format!("embed_{}", collection.replace('-', "_"))));
            let embedder = Embedder::start(&shared::ModelDir::open(dir)?, engine, metrics)?;
            tracing::info!(collection, model = %dir.display(), "in-process embedder of a configured collection");
            ready.push(embedder.batcher().readiness());
            Arc::new(embedder)
        } else {
            continue;
        };
        embedders.insert(collection.clone(), embedder);
    }
    Ok((embedders, ready))
}

/// The model name goes into cache keys; ask for it until the service answers.
fn learn_name_in_background(service: RemoteService) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(200);
        while !service.learn_info().await {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
        tracing::info!(url = service.base(), model = %service.model_name(), "remote engine identified");
    });
}

/// The vector store, and the same store as qdrant-edge when it is that (to flush it at shutdown).
pub type Store = (Arc<dyn VectorStore>, Option<EdgeStore>);

/// Opens the vector store: a Qdrant server (whose answer to the API key is checked once), or
/// qdrant-edge under the data directory.
pub async fn store(backends: &Backends, profiles: &Profiles) -> Result<Store, StartError> {
    let layouts = Arc::new(profiles.layouts());
    match backends.qdrant_url() {
        Some(url) => {
            let timeout = Duration::from_millis(backends.qdrant_timeout_ms);
            let store = QdrantStore::connect(
                url,
                backends.qdrant_api_key.as_ref().map(|k| k.expose().to_string()),
                timeout,
                backends.qdrant_layout(),
                layouts,
            )
            .map_err(StartError::Config)?;
            store.check_access().await.map_err(StartError::Config)?;
            Ok((Arc::new(store), None))
        }
        None => {
            let options = EdgeOptions {
                checkpoint_bytes: backends.journal_checkpoint_kib.saturating_mul(1024),
                wal_file_bytes: backends.wal_file_kib * 1024,
            };
            let store = EdgeStore::open(&backends.data_dir, options, layouts).map_err(StartError::Config)?;
            Ok((Arc::new(store.clone()), Some(store)))
        }
    }
}

pub fn cache(backends: &Backends) -> Result<Arc<dyn Cache>, StartError> {
    match &backends.redis_url {
        Some(url) => {
            let timeout = Duration::from_millis(backends.redis_timeout_ms);
            Ok(Arc::new(RedisCache::new(url.expose(), timeout).map_err(StartError::Config)?))
        }
        None => Ok(Arc::new(MemoryCache::new(backends.cache_max_mib * 1024 * 1024))),
    }
}

impl Parts {
    /// The collections over these engines and this store: what the server, `eval` and a batch
    /// job writing beside a gateway all route documents and queries through.
    pub fn collections(&self) -> Collections {
        Collections::new(
            self.profiles.clone(),
            self.collection_embedders.clone(),
            self.embedder.clone(),
            self.store.clone(),
        )
    }

    pub async fn build(backends: &Backends, registry: &mut Registry) -> Result<Self, StartError> {
        let profiles = profiles(backends)?;
        let (store, edge) = store(backends, &profiles).await?;
        let cache = cache(backends)?;
        let engine = backends.server_engine_args();
        let (embedder, embed_ready) = embedder(backends, &engine, registry).await?;
        let (reranker, rerank_ready) = reranker(backends, &engine, registry).await?;
        let (collection_embedders, collection_ready) =
            collection_embedders(backends, &profiles, &engine, registry).await?;
        let engines = [("embedder", embed_ready), ("reranker", rerank_ready)]
            .into_iter()
            .filter_map(|(name, ready)| ready.map(|r| (name, r)))
            .chain(collection_ready.into_iter().map(|r| ("collection embedder", r)))
            .collect();
        Ok(Self { embedder, profiles, collection_embedders, reranker, store, cache, engines, edge })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// compose.yaml's unset `COLLECTIONS_CONFIG=` reaches the gateway as an empty path.
    #[test]
    fn an_empty_collections_config_is_no_configured_collection() {
        let config = crate::config::Config::try_parse_from(["search-gateway", "--collections-config="]).unwrap();
        assert_eq!(*super::profiles(&config.server.backends).unwrap(), Default::default());
    }
}
