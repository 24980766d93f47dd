//! Building the gateway from its configuration, and the server process.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus_client::registry::Registry;
use shared::batcher::{BatcherMetrics, Readiness as EngineReadiness};
use shared::config::{EngineArgs, resolve_model};
use shared::http::{HttpMetrics, Readiness, ops_routes, serve, shutdown_signal};
use shared::{Embedder, Reranker};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::cache::{Cache, CacheLayer, MemoryCache, RedisCache};
use crate::config::{Backends, ServerArgs};
use crate::engines::{Embed, RemoteEmbedder, RemoteReranker, Rerank};
use crate::metrics::GatewayMetrics;
use crate::remote::RemoteService;
use crate::search::Limits;
use crate::store::{EdgeStore, QdrantStore, VectorStore};

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
    pub reranker: Arc<dyn Rerank>,
    pub store: Arc<dyn VectorStore>,
    pub cache: Arc<dyn Cache>,
    pub engines: Vec<(&'static str, watch::Receiver<EngineReadiness>)>,
    /// Set when the store is qdrant-edge, to flush it at shutdown.
    pub edge: Option<Arc<EdgeStore>>,
}

/// Starts the embedder: embed-service over HTTP, or the in-process engine.
pub async fn embedder(
    backends: &Backends,
    engine: &EngineArgs,
    registry: &mut Registry,
) -> Result<(Arc<dyn Embed>, Option<watch::Receiver<EngineReadiness>>), StartError> {
    if let Some(url) = &backends.embed_url {
        let service = RemoteService::new("embedder", url, backends.upstream_retries).map_err(StartError::Config)?;
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
        let service = RemoteService::new("reranker", url, backends.upstream_retries).map_err(StartError::Config)?;
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

/// The model name goes into cache keys; ask for it until the service answers.
fn learn_name_in_background(service: RemoteService) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(200);
        while !service.learn_model_name().await {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
        tracing::info!(url = service.base(), model = %service.model_name(), "remote engine identified");
    });
}

/// The vector store, and the same store as qdrant-edge when it is that (to flush it at shutdown).
pub type Store = (Arc<dyn VectorStore>, Option<Arc<EdgeStore>>);

/// Opens the vector store: a Qdrant server, or qdrant-edge under the data directory.
pub fn store(backends: &Backends) -> Result<Store, StartError> {
    match &backends.qdrant_url {
        Some(url) => {
            let timeout = Duration::from_millis(backends.qdrant_timeout_ms);
            let store =
                QdrantStore::connect(url, backends.qdrant_api_key.clone(), timeout).map_err(StartError::Config)?;
            Ok((Arc::new(store), None))
        }
        None => {
            let store = Arc::new(EdgeStore::open(&backends.data_dir).map_err(StartError::Config)?);
            Ok((store.clone(), Some(store)))
        }
    }
}

pub fn cache(backends: &Backends) -> Result<Arc<dyn Cache>, StartError> {
    match &backends.redis_url {
        Some(url) => {
            let timeout = Duration::from_millis(backends.redis_timeout_ms);
            Ok(Arc::new(RedisCache::new(url, timeout).map_err(StartError::Config)?))
        }
        None => Ok(Arc::new(MemoryCache::new(backends.cache_max_mib * 1024 * 1024))),
    }
}

impl Parts {
    pub async fn build(backends: &Backends, registry: &mut Registry) -> Result<Self, StartError> {
        let (store, edge) = store(backends)?;
        let cache = cache(backends)?;
        let engine = backends.server_engine_args();
        let (embedder, embed_ready) = embedder(backends, &engine, registry).await?;
        let (reranker, rerank_ready) = reranker(backends, &engine, registry).await?;
        let engines = [("embedder", embed_ready), ("reranker", rerank_ready)]
            .into_iter()
            .filter_map(|(name, ready)| ready.map(|r| (name, r)))
            .collect();
        Ok(Self { embedder, reranker, store, cache, engines, edge })
    }
}

fn limits(args: &ServerArgs) -> Limits {
    Limits {
        default_collection: args.default_collection.clone(),
        max_candidates: args.max_candidates,
        max_query_bytes: args.max_query_bytes,
        max_upsert_documents: args.max_upsert_documents,
        cache_ttl: args.cache_ttl(),
        embedding_cache_ttl: args.embedding_cache_ttl(),
        embed_timeout: args.backends.embed_timeout(),
        rerank_timeout: args.backends.rerank_timeout(),
    }
}

/// `/ready`: the in-process engines are loaded and warm, and the server is not draining.
fn readiness(
    engines: Vec<(&'static str, watch::Receiver<EngineReadiness>)>,
    draining: watch::Receiver<bool>,
) -> Readiness {
    Arc::new(move || {
        if *draining.borrow() {
            return Err("shutting down".into());
        }
        for (name, ready) in &engines {
            match &*ready.borrow() {
                EngineReadiness::Ready => {}
                EngineReadiness::Loading => return Err(format!("the {name} model is loading")),
                EngineReadiness::Failed(why) => return Err(format!("the {name} model failed: {why}")),
            }
        }
        Ok(())
    })
}

/// The whole router, given the built parts.
pub fn app(
    args: &ServerArgs,
    parts: &Parts,
    mut registry: Registry,
    draining: watch::Receiver<bool>,
) -> (Router, Arc<Gateway>) {
    let metrics = GatewayMetrics::default();
    metrics.register(&mut registry);
    let http = HttpMetrics::register(&mut registry);
    let cache = CacheLayer::new(parts.cache.clone(), metrics.clone());
    let gateway = Arc::new(Gateway::new(
        parts.embedder.clone(),
        parts.reranker.clone(),
        parts.store.clone(),
        cache,
        metrics,
        limits(args),
    ));
    let api =
        crate::routes::api(gateway.clone()).layer(axum::extract::DefaultBodyLimit::max(args.serve.max_body_bytes));
    let ready = readiness(parts.engines.clone(), draining);
    (ops_routes(api, ready, Arc::new(registry), http), gateway)
}

/// Runs the server until SIGINT/SIGTERM, then drains and flushes the store.
pub async fn run(args: ServerArgs) -> Result<(), StartError> {
    let addr = format!("{}:{}", args.host, args.port);
    let listener =
        TcpListener::bind((args.host, args.port)).await.map_err(|source| StartError::Bind { addr, source })?;
    let mut registry = Registry::with_prefix("gateway");
    let parts = Parts::build(&args.backends, &mut registry).await?;
    tracing::info!(
        store = parts.store.backend(),
        cache = parts.cache.backend(),
        embedder = if args.backends.embed_url.is_some() { "remote" } else { "in-process" },
        reranker = if args.backends.rerank_url.is_some() { "remote" } else { "in-process" },
        "backends"
    );
    let (draining_tx, draining_rx) = watch::channel(false);
    let (app, gateway) = app(&args, &parts, registry, draining_rx);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(args.serve.shutdown_grace_secs);
    let server = serve(listener, app, shutdown_signal(), grace, draining_tx);
    let result = tokio::select! {
        result = server => result.map_err(StartError::from),
        (name, why) = engine_failure(parts.engines.clone()) => Err(StartError::EngineFailed(name, why)),
    };
    drop(gateway);
    if let Some(edge) = &parts.edge {
        edge.flush();
        tracing::info!("vector store flushed");
    }
    result
}

/// Resolves when an in-process engine fails (never if there is none).
async fn engine_failure(engines: Vec<(&'static str, watch::Receiver<EngineReadiness>)>) -> (&'static str, String) {
    let waits = engines.into_iter().map(|(name, mut ready)| {
        Box::pin(async move {
            match ready.wait_for(|r| matches!(r, EngineReadiness::Failed(_))).await.as_deref() {
                Ok(EngineReadiness::Failed(why)) => (name, why.clone()),
                _ => (name, "the inference threads stopped".to_string()),
            }
        })
    });
    let waits: Vec<_> = waits.collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures_select_all(waits).await
}

/// The first of several futures to finish.
async fn futures_select_all<F: Future + Unpin>(mut futures: Vec<F>) -> F::Output {
    std::future::poll_fn(|cx| {
        for f in &mut futures {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
