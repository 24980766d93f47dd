//! Logs and traces. Logs: `tracing` with `RUST_LOG`-style filters, human-readable or JSON lines.
//! Traces (off unless an OTLP endpoint is given): the same `tracing` spans, exported over OTLP/HTTP
//! as protobuf through `tracing-opentelemetry`, continued from and passed on in W3C `traceparent`
//! headers (see [`propagation`]).
//!
//! Exporting never waits on the collector: a finished span goes into the SDK's bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 spans by default; when it is full, new spans are dropped), and a
//! thread of its own sends batches (every `OTEL_BSP_SCHEDULE_DELAY` ms, 5000 by default) with a
//! timeout, so a slow or dead collector costs spans, never requests.

mod otlp;
pub mod propagation;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use propagation::inject_context;

/// Where traces go, if anywhere. Shared by every service (flattened into their serving options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceArgs {
    /// Export traces to this OpenTelemetry collector (Tempo, Jaeger, an OpenTelemetry Collector):
    /// its OTLP/HTTP base URL, e.g. `http://otel-collector:4318`; spans are POSTed as protobuf to
    /// `<URL>/v1/traces`. Tracing is off when this is unset or empty.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` this process's spans carry [default: the binary's name].
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME")]
    pub service_name: Option<String>,
}

impl TraceArgs {
    /// The URL spans are sent to, `None` when tracing is off. An error names what is wrong.
    pub fn traces_url(&self) -> Result<Option<String>, String> {
        let Some(base) = self.otlp_endpoint.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let parsed = url::Url::parse(base).map_err(|e| format!("--otlp-endpoint {base:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!("--otlp-endpoint {base:?}: expected an http:// or https:// URL with a host"));
        }
        // The OTLP rule for the generic endpoint: the signal's path is appended to it.
        Ok(Some(format!("{}/v1/traces", base.trim_end_matches('/'))))
    }
}

/// Keeps the trace exporter alive; dropping it sends the spans still queued (bounded by the
/// exporter's timeout), so `main` holds it until the process ends.
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "the trace exporter did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber: logs to stderr (`json`: one JSON object per line) and, when
/// `traces` names an endpoint, the OpenTelemetry layer. `service` is the default `service.name`.
pub fn init(service: &str, json: bool, traces: &TraceArgs) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,ort=warn,qdrant_edge=warn,qdrant_edge::common=error"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    let fmt = if json { fmt.json().boxed() } else { fmt.boxed() };
    let url = traces.traces_url()?;
    let provider = match &url {
        Some(url) => Some(otlp::provider(url, traces.service_name.as_deref().unwrap_or(service))?),
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        propagation::install();
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("weavink"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(exported_spans())
    });
    // A second init (tests start several apps in one process) is harmless, so its error is ignored.
    let _ = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init();
    if let Some(url) = &url {
        tracing::info!(%url, "exporting traces");
    }
    Ok(Telemetry { provider })
}

/// The spans worth a trace: this project's at info and above. Dependencies' spans (hyper,
/// reqwest, ONNX Runtime, qdrant-edge) and debug spans stay out of the export.
fn exported_spans() -> Targets {
    Targets::new()
        .with_target("shared", LevelFilter::INFO)
        .with_target("embed_service", LevelFilter::INFO)
        .with_target("rerank_service", LevelFilter::INFO)
        .with_target("search_gateway", LevelFilter::INFO)
}

#[cfg(test)]
mod tests {
    use super::TraceArgs;

    fn args(endpoint: Option<&str>) -> TraceArgs {
        TraceArgs { otlp_endpoint: endpoint.map(String::from), service_name: None }
    }

    #[test]
    fn the_traces_path_is_appended_to_the_base_url_as_otlp_says() {
        assert_eq!(
            args(Some("http://tempo:4318")).traces_url().unwrap().as_deref(),
            Some("http://tempo:4318/v1/traces")
        );
        assert_eq!(
            args(Some("https://collector.example/otlp/")).traces_url().unwrap().as_deref(),
            Some("https://collector.example/otlp/v1/traces")
        );
    }

    #[test]
    fn unset_or_empty_is_off_and_a_bad_url_is_refused() {
        assert_eq!(args(None).traces_url(), Ok(None));
        assert_eq!(args(Some("  ")).traces_url(), Ok(None));
        let bad = args(Some("tempo:4318")).traces_url().unwrap_err();
        assert!(bad.contains("--otlp-endpoint") && bad.contains("http://"), "{bad}");
        assert!(args(Some("not a url")).traces_url().unwrap_err().contains("--otlp-endpoint"));
    }
}
