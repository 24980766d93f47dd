//! embed-service: multilingual E5 embeddings over HTTP on the shared batching engine.

pub mod config;
mod error;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use shared::Embedder;
use shared::http::{ServiceMetrics, engine_readiness, model_router};
use tokio::sync::watch;

pub use config::Config;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    embedder: Embedder,
    config: Arc<Config>,
}

/// Everything `app` needs: the engine (loading in the background), the metrics, and the
/// draining flag that turns `/ready` off at shutdown.
pub struct Service {
    pub state: AppState,
    pub metrics: ServiceMetrics,
    pub draining: watch::Receiver<bool>,
}

impl Service {
    /// Starts the engine for `model_dir`; must run inside a tokio runtime.
    pub fn start(
        config: Config,
        model_dir: &shared::ModelDir,
        draining: watch::Receiver<bool>,
    ) -> Result<Self, shared::model::ModelError> {
        let metrics = ServiceMetrics::new("embed");
        let embedder = Embedder::start(model_dir, &config.engine, metrics.batcher.clone())?;
        Ok(Self { state: AppState { embedder, config: Arc::new(config) }, metrics, draining })
    }

    pub fn embedder(&self) -> &Embedder {
        &self.state.embedder
    }
}

/// The router: API routes plus `/health`, `/ready`, `/metrics`.
pub fn app(service: Service) -> Router {
    let Service { state, metrics, draining } = service;
    let ready = engine_readiness(state.embedder.batcher().readiness(), draining);
    let max_body = state.config.serve.max_body_bytes;
    let api = Router::new()
        .route("/embed", post(routes::embed::single))
        .route("/embed/batch", post(routes::embed::batch))
        .route("/v1/embeddings", post(routes::openai::embeddings))
        .route("/info", get(routes::info::info))
        .with_state(state);
    model_router(api, metrics, ready, max_body)
}

#[cfg(test)]
mod tests;
