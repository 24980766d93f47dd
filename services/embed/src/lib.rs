//! embed-service: multilingual E5 embeddings over HTTP on the shared batching engine.

pub mod config;
mod error;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use shared::Embedder;
use shared::batcher::BatcherMetrics;
use shared::http::{HttpMetrics, engine_readiness, ops_routes};
use tokio::sync::watch;

pub use config::Config;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    embedder: Embedder,
    config: Arc<Config>,
}

/// Everything `app` needs, built from the config: the engine (loading in the background), the
/// metrics registry, and the draining flag that turns `/ready` off at shutdown.
pub struct Service {
    pub state: AppState,
    pub registry: Registry,
    pub http_metrics: HttpMetrics,
    pub draining: watch::Receiver<bool>,
}

impl Service {
    /// Starts the engine for `model_dir`; must run inside a tokio runtime.
    pub fn start(
        config: Config,
        model_dir: &shared::ModelDir,
        draining: watch::Receiver<bool>,
    ) -> Result<Self, shared::model::ModelError> {
        let mut registry = Registry::with_prefix("embed");
        let batcher_metrics = BatcherMetrics::default();
        batcher_metrics.register(&mut registry);
        let http_metrics = HttpMetrics::register(&mut registry);
        let embedder = Embedder::start(model_dir, &config.engine, batcher_metrics)?;
        Ok(Self { state: AppState { embedder, config: Arc::new(config) }, registry, http_metrics, draining })
    }

    pub fn embedder(&self) -> &Embedder {
        &self.state.embedder
    }
}

/// The router: API routes plus `/health`, `/ready`, `/metrics`.
pub fn app(service: Service) -> Router {
    let Service { state, registry, http_metrics, draining } = service;
    let ready = engine_readiness(state.embedder.batcher().readiness(), draining);
    let max_body = state.config.serve.max_body_bytes;
    let api = Router::new()
        .route("/embed", post(routes::embed::single))
        .route("/embed/batch", post(routes::embed::batch))
        .route("/v1/embeddings", post(routes::openai::embeddings))
        .route("/info", get(routes::info::info))
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body));
    ops_routes(api, ready, Arc::new(registry), http_metrics)
}

#[cfg(test)]
mod tests;
