//! Operational routes, serving, and graceful shutdown on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

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
        .route(
            "/metrics",
            get(|State(ops): State<Ops>| async move { render(&ops.registry) }),
        )
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

/// Serves `app` until `shutdown` resolves, then stops accepting and lets in-flight requests finish
/// for at most `grace`. `draining` is set to true as soon as shutdown begins (so `/ready` can fail).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    draining: watch::Sender<bool>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop_wait = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_wait.wait_for(|s| *s).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    draining.send_replace(true);
    stop_tx.send_replace(true);
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("grace period over with requests still in flight; exiting");
            Ok(())
        }
    }
}
