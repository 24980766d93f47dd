//! Operational routes (`/health`, `/ready`, `/metrics`, `/openapi.json`) and the life of a model
//! service.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{ApiKeys, require_key};
use super::error::{ErrorBody, error_response, method_not_allowed, not_found};
use super::metrics::{HttpMetrics, render, track};
use super::openapi::{Status, Unauthorized};
use super::serve::{ConnectionLimits, serve, shutdown_signal};
use crate::batcher::Readiness as EngineReadiness;

/// Whether a service can take traffic; `Err` carries the reason shown by `/ready`.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the operational routes need, besides the API itself.
pub struct Operations {
    pub ready: Readiness,
    pub registry: Arc<Registry>,
    pub http: HttpMetrics,
    /// `Some` when API keys are on.
    pub keys: Option<ApiKeys>,
    /// The service's OpenAPI document, served at `/openapi.json`.
    pub openapi: utoipa::openapi::OpenApi,
}

#[derive(Clone)]
pub(super) struct OpsState {
    ready: Readiness,
    registry: Arc<Registry>,
    openapi: Arc<str>,
}

/// Adds `/health`, `/ready`, `/metrics`, `/openapi.json`, JSON 404/405 fallbacks, per-route
/// metrics and (when keys are on) the API-key check to `api`.
pub fn ops_routes(api: Router, ops: Operations) -> Router {
    let openapi = super::openapi::to_json(&ops.openapi).into();
    let state = OpsState { ready: ops.ready, registry: ops.registry, openapi };
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .with_state(state);
    let mut app = api.merge(routes).fallback(not_found).method_not_allowed_fallback(method_not_allowed);
    if let Some(keys) = ops.keys {
        app = app.layer(axum::middleware::from_fn_with_state(Arc::new(keys), require_key));
    }
    app.layer(axum::middleware::from_fn_with_state(ops.http, track))
}

/// Liveness: the process answers. Always open, for container health checks.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The process is alive", body = Status, example = json!({"status": "ok"}))))]
pub(super) async fn health() -> axum::Json<Status> {
    axum::Json(Status { status: "ok".into() })
}

/// Readiness: 200 once the models are loaded and warmed up; 503 while loading or shutting down.
#[utoipa::path(get, path = "/ready", tag = "operations", security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Ready for traffic", body = Status, example = json!({"status": "ready"})),
        (status = 503, description = "Loading, failed or draining (`not_ready`)", body = ErrorBody),
        Unauthorized,
    ))]
pub(super) async fn ready(State(ops): State<OpsState>) -> Response {
    match (ops.ready)() {
        Ok(()) => axum::Json(Status { status: "ready".into() }).into_response(),
        Err(reason) => error_response(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason),
    }
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("api_key" = [])),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), Unauthorized))]
pub(super) async fn metrics(State(ops): State<OpsState>) -> Response {
    render(&ops.registry)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", content_type = "application/json")))]
pub(super) async fn openapi_json(State(ops): State<OpsState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], ops.openapi.to_string()).into_response()
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

/// A model service's whole router: its API routes under the body limit (and the API-key check
/// when keys are on), plus `/health`, `/ready`, `/metrics` and `/openapi.json`.
pub fn model_router(
    api: Router,
    metrics: ServiceMetrics,
    ready: Readiness,
    serve: &crate::config::ServeArgs,
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
