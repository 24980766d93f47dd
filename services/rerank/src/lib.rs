//! rerank-service: BGE cross-encoder reranking over HTTP on the shared batching engine.

pub mod config;
mod error;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use shared::Reranker;
use shared::http::{ServiceMetrics, engine_readiness, model_router};
use tokio::sync::watch;

pub use config::Config;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    reranker: Reranker,
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
        let metrics = ServiceMetrics::new("rerank");
        let reranker = Reranker::start(model_dir, &config.engine, metrics.batcher.clone())?;
        Ok(Self { state: AppState { reranker, config: Arc::new(config) }, metrics, draining })
    }

    pub fn reranker(&self) -> &Reranker {
        &self.state.reranker
    }
}

/// The rerank-service's routes, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(routes::rerank::rerank, routes::cohere::rerank_v1, routes::cohere::rerank_v2, routes::info::info))]
struct Api;

/// The OpenAPI 3.1 document served at `/openapi.json` (and checked in as openapi/rerank-service.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    shared::http::openapi::document(
        Api::openapi(),
        "rerank-service",
        "BGE cross-encoder reranking on ONNX Runtime with dynamic batching. Errors are \
         `{\"error\": \"...\", \"code\": \"...\"}`; 429 and 503 carry `Retry-After`.",
    )
}

/// The router: API routes plus `/health`, `/ready`, `/metrics`, `/openapi.json`.
pub fn app(service: Service) -> Router {
    let Service { state, metrics, draining } = service;
    let ready = engine_readiness(state.reranker.batcher().readiness(), draining);
    let serve = state.config.serve.clone();
    let api = Router::new()
        .route("/rerank", post(routes::rerank::rerank))
        .route("/v1/rerank", post(routes::cohere::rerank_v1))
        .route("/v2/rerank", post(routes::cohere::rerank_v2))
        .route("/info", get(routes::info::info))
        .with_state(state);
    model_router(api, metrics, ready, &serve, openapi())
}

#[cfg(test)]
mod tests;
