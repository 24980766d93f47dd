//! The operational routes every service serves (`/health`, `/ready`, `/metrics`,
//! `/openapi.json`), with their OpenAPI description, the JSON 404/405 fallbacks, per-route
//! metrics and the API-key check around the whole router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use utoipa::ToSchema;

use super::auth::{ApiKeys, Unauthorized, require_key};
use super::error::{ErrorBody, error_response, method_not_allowed, not_found};
use super::metrics::{HttpMetrics, render, track};

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
/// metrics, (when keys are on) the API-key check, and each request's trace span to `api`.
pub fn ops_routes(api: Router, ops: Operations) -> Router {
    let openapi = to_json(&ops.openapi).into();
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
        .layer(axum::middleware::from_fn(crate::telemetry::propagation::request_span))
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

/// `GET /health` and `GET /ready`'s answer.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// `ok` (/health) or `ready` (/ready).
    pub status: String,
}

/// The operational routes, the same in every service.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready, metrics, openapi_json), components(schemas(ErrorBody, Status)))]
struct OperationsDocument;

/// The operational routes' part of every service's OpenAPI document.
pub(super) fn description() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    OperationsDocument::openapi()
}

/// The bytes `/openapi.json` serves.
pub fn to_json(document: &utoipa::openapi::OpenApi) -> String {
    document.to_pretty_json().expect("an OpenAPI document serializes")
}
