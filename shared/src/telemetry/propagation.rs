//! W3C trace context across processes: an incoming `traceparent` is continued by the request's
//! span, and every call to another service carries the current span's.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes `traceparent`/`tracestate` the process's propagation format.
pub(super) fn install() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Adds the current span's `traceparent` (and `tracestate`) to an outgoing request's headers.
/// Adds nothing when tracing is off or the current span is not traced.
pub fn inject_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Routes that are polled, not used: no span for them, or health checks would fill the traces.
const UNTRACED: [&str; 4] = ["/health", "/ready", "/metrics", "/openapi.json"];

/// Middleware: runs each request in a server span named `METHOD /route`, a child of the caller's
/// span when the request carries a valid `traceparent`, with the response status recorded on it.
pub async fn request_span(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
    if UNTRACED.contains(&route) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    // Off (no OpenTelemetry layer) or a span filtered out: nothing to continue, nothing lost.
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    response
}
