//! The server process: the router over the gateway built from its backends, serving, draining.

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use shared::batcher::Readiness as EngineReadiness;
use shared::http::{HttpMetrics, Operations, Readiness, ops_routes, serve, shutdown_signal};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::backends::{Parts, StartError};
use crate::cache::CacheLayer;
use crate::config::ServerArgs;
use crate::metrics::GatewayMetrics;
use crate::search::Limits;

fn limits(args: &ServerArgs) -> Limits {
    Limits {
        default_collection: args.default_collection.clone(),
        max_candidates: args.max_candidates,
        max_query_bytes: args.max_query_bytes,
        max_upsert_documents: args.max_upsert_documents,
        cache_ttl: args.cache_ttl(),
        embedding_cache_ttl: args.embedding_cache_ttl(),
        embed_timeout: args.backends.embed_timeout(),
        rerank_budget: args.rerank_budget(),
        rerank_timeout: args.backends.rerank_timeout(),
        score_cache_ttl: args.score_cache_ttl(),
        rerank_background_pairs: args.rerank_background_pairs,
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
        parts.collections(),
        parts.reranker.clone(),
        parts.store.clone(),
        cache,
        metrics,
        limits(args),
    ));
    let mut api = crate::http::routes::api(gateway.clone())
        .layer(axum::extract::DefaultBodyLimit::max(args.serve.max_body_bytes));
    if args.playground {
        api = api.merge(crate::http::playground::routes());
    }
    let ops = Operations {
        ready: readiness(parts.engines.clone(), draining),
        registry: Arc::new(registry),
        http,
        // An unreadable key file stops the gateway at validation, before this runs.
        keys: args.serve.auth.api_keys().unwrap_or_else(|why| panic!("API keys: {why}")),
        openapi: crate::http::routes::openapi(),
    };
    (ops_routes(api, ops), gateway)
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
    let backends = &args.backends;
    let ready = parts.engines.iter().map(|(_, r)| r.clone()).collect();
    crate::sync::start(&gateway, &backends.data_dir, backends.qdrant_url(), (&args.sync).into(), ready);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let server = serve(listener, app, shutdown_signal(), args.serve.limits(), draining_tx);
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
