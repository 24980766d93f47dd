//! The OTLP/HTTP span exporter, sending with the workspace's `reqwest` on a small runtime of its
//! own: the SDK's batch processor exports from its own thread, outside any tokio runtime, and the
//! services' runtimes are not started yet when logging is set up.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// How long one export may take before it is abandoned (its spans are dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A tracer provider exporting batches of spans to `url` as `service`.
pub(super) fn provider(url: &str, service: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ReqwestOnItsOwnRuntime::start()?)
        .with_endpoint(url)
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("the OTLP exporter for {url}: {e}"))?;
    let resource = Resource::builder().with_service_name(service.to_string()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// `reqwest` driven by a one-thread tokio runtime that lives as long as the process.
#[derive(Debug)]
struct ReqwestOnItsOwnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ReqwestOnItsOwnRuntime {
    fn start() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the trace exporter's runtime: {e}"))?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("cannot start the trace exporter's thread: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("the trace exporter's HTTP client: {e}"))?;
        Ok(Self { client, runtime: handle })
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOnItsOwnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let client = self.client.clone();
        // A tokio JoinHandle can be awaited from any executor, the SDK's included.
        self.runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let mut answer = Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    *headers = response.headers().clone();
                }
                Ok(answer.body(response.bytes().await?)?)
            })
            .await?
    }
}
