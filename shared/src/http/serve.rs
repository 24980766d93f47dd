//! Serving connections: the serving options every service takes, limits on slow and broken
//! clients, and graceful shutdown on SIGINT/SIGTERM.
//!
//! hyper's header-read timer bounds how long a client may take to send a request's head. hyper
//! starts it as soon as a connection is ready for a request: on a new connection, and on a
//! kept-alive one right after its last response. So the same timer closes idle keep-alive
//! connections; hyper has no separate idle timer. tower-http's request-body timeout abandons a body
//! that stops arriving (408, connection closed).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody};

/// Serving options common to all services.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Seconds a client has to send a request's headers, counted from when its connection is
    /// ready for a request. A kept-alive connection is ready right after its last response, so
    /// this is also how long an idle connection stays open (hyper uses one timer for both).
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause; a stalled body gets 408 and its connection is closed.
    #[arg(long, env = "BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Log one JSON object per line instead of human-readable text.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
    #[command(flatten)]
    pub auth: super::auth::AuthArgs,
    #[command(flatten)]
    pub traces: crate::telemetry::TraceArgs,
}

impl ServeArgs {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            return Err("--header-timeout-secs and --body-timeout-secs must be at least 1".into());
        }
        self.traces.traces_url()?;
        self.auth.api_keys().map(drop)
    }
}

/// What a connection may cost the server, and how long shutdown waits for requests in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// From the moment a connection is ready for a request (new, or kept alive after a response)
    /// until the request's head is complete; also how long an idle connection is kept.
    pub header_timeout: Duration,
    /// Longest pause while a request body is being received.
    pub body_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub grace: Duration,
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

/// Serves `app` over HTTP/1.1 until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `limits.grace`. `draining` is set to true as soon as shutdown
/// begins (so `/ready` can fail).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
    draining: watch::Sender<bool>,
) -> std::io::Result<()> {
    // Clients that pool connections (Node's undici among them) read this and let an idle
    // connection go before the server closes it, instead of racing a request into the close.
    let keep_alive = format!("timeout={}", limits.header_timeout.as_secs().saturating_sub(1).max(1));
    let app = ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .map_request(|request: Request<TimeoutBody<Incoming>>| request.map(Body::new))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("keep-alive"),
            HeaderValue::from_str(&keep_alive).expect("an ASCII header value"),
        ))
        .service(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().map_err(|e: Infallible| match e {}));
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace_secs = limits.grace.as_secs_f64(), "shutting down: draining in-flight requests");
    draining.send_replace(true);
    if tokio::time::timeout(limits.grace, connections.shutdown()).await.is_err() {
        tracing::warn!("grace period over with requests still in flight; exiting");
    }
    Ok(())
}
