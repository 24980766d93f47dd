//! Operational routes (`/health`, `/ready`, `/metrics`) and the life of a model service.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::error::{error_response, method_not_allowed, not_found};
use super::metrics::{HttpMetrics, render, track};
use super::serve::{ConnectionLimits, serve, shutdown_signal};
use crate::batcher::Readiness as EngineReadiness;

/// Whether a service can take traffic; `Err` carries the reason shown by `/ready`.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Ops {
    ready: Readiness,
    registry: Arc<Registry>,
}

/// Adds `/health`, `/ready`, `/metrics`, JSON 404/405 fallbacks and per-route metrics to `api`.
pub fn ops_routes(api: Router, ready: Readiness, registry: Arc<Registry>, http: HttpMetrics) -> Router {
    let ops = Router::new()
        .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(|State(ops): State<Ops>| async move { render(&ops.registry) }))
        .with_state(Ops { ready, registry });
    api.merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(http, track))
}

async fn ready_handler(State(ops): State<Ops>) -> Response {
    match (ops.ready)() {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(reason) => error_response(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason),
    }
}

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

/// A model service's whole router: its API routes under the body limit, plus `/health`,
/// `/ready` and `/metrics`.
pub fn model_router(api: Router, metrics: ServiceMetrics, ready: Readiness, max_body_bytes: usize) -> Router {
    let api = api.layer(axum::extract::DefaultBodyLimit::max(max_body_bytes));
    ops_routes(api, ready, Arc::new(metrics.registry), metrics.http)
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
