//! The life of a model service: its metrics, its router (its API plus the operational routes),
//! its readiness, and running it until it is told to stop.

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::HttpMetrics;
use super::ops::{Operations, Readiness, ops_routes};
use super::serve::{ConnectionLimits, ServeArgs, serve, shutdown_signal};
use crate::batcher::Readiness as EngineReadiness;

/// The metrics a model service exports, all under its prefix (`embed_...`, `rerank_...`).
pub struct ServiceMetrics {
    pub registry: Registry,
    pub batcher: crate::batcher::BatcherMetrics,
    pub http: HttpMetrics,
}

impl ServiceMetrics {
    pub fn new(prefix: &str) -> Self {
        let mut registry = Registry::with_prefix(prefix);
        let batcher = crate::batcher::BatcherMetrics::default();
        batcher.register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        Self { registry, batcher, http }
    }
}

/// A model service's whole router: its API routes under the body limit (and the API-key check
/// when keys are on), plus `/health`, `/ready`, `/metrics` and `/openapi.json`.
pub fn model_router(
    api: Router,
    metrics: ServiceMetrics,
    ready: Readiness,
    serve: &ServeArgs,
    openapi: utoipa::openapi::OpenApi,
) -> Router {
    let api = api.layer(axum::extract::DefaultBodyLimit::max(serve.max_body_bytes));
    // An unreadable key file stops the service at validation, before this runs.
    let keys = serve.auth.api_keys().unwrap_or_else(|why| panic!("API keys: {why}"));
    let ops = Operations { ready, registry: Arc::new(metrics.registry), http: metrics.http, keys, openapi };
    ops_routes(api, ops)
}

/// `/ready` of a model service: ready once its engine is loaded and warmed up, not while draining.
pub fn engine_readiness(engine: watch::Receiver<EngineReadiness>, draining: watch::Receiver<bool>) -> Readiness {
    Arc::new(move || {
        if *draining.borrow() {
            return Err("shutting down".to_string());
        }
        match &*engine.borrow() {
            EngineReadiness::Ready => Ok(()),
            EngineReadiness::Loading => Err("the model is loading".to_string()),
            EngineReadiness::Failed(why) => Err(format!("the model failed: {why}")),
        }
    })
}

/// Where and how a model service listens.
#[derive(Debug, Clone)]
pub struct Listen {
    pub host: std::net::IpAddr,
    pub port: u16,
    pub limits: ConnectionLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("the model failed: {0}")]
    ModelFailed(String),
}

/// Runs a model service: binds, logs `listening addr=...`, builds the app with `build` (given the
/// draining flag; it returns the router and the engine's readiness), serves until SIGINT/SIGTERM
/// and drains. Fails if the model fails to load.
pub async fn run_model_service<E>(
    listen: Listen,
    build: impl FnOnce(watch::Receiver<bool>) -> Result<(Router, watch::Receiver<EngineReadiness>), E>,
) -> Result<(), ServiceError>
where
    ServiceError: From<E>,
{
    let addr = format!("{}:{}", listen.host, listen.port);
    let listener =
        TcpListener::bind((listen.host, listen.port)).await.map_err(|source| ServiceError::Bind { addr, source })?;
    let (draining_tx, draining_rx) = watch::channel(false);
    let (app, mut readiness) = build(draining_rx)?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let server = serve(listener, app, shutdown_signal(), listen.limits, draining_tx);
    tokio::select! {
        result = server => Ok(result?),
        state = readiness.wait_for(|r| matches!(r, EngineReadiness::Failed(_))) => {
            match state.as_deref() {
                Ok(EngineReadiness::Failed(why)) => Err(ServiceError::ModelFailed(why.clone())),
                _ => Err(ServiceError::ModelFailed("the inference threads stopped".into())),
            }
        }
    }
}
