//! A model service over HTTP: one pooled client, a time budget per call, and bounded retries on
//! 429/503 that honour `Retry-After` without overrunning the budget.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::config::Secret;
use tokio::time::Instant;

use super::error::UpstreamError;
use super::replicas::Replicas;

/// Pooled connections are dropped after this long idle: well before the services close them
/// (`--header-timeout-secs`, 10 s by default), so a request never races a closing connection.
const POOL_IDLE: Duration = Duration::from_secs(4);
/// The longest pause between two attempts, whatever `Retry-After` says.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// The pause before sending again a request whose replica failed in transport (times the attempt).
const TRANSPORT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Why no answer came.
enum Failure {
    /// reqwest's own error (building the request, reading the answer).
    Http(reqwest::Error),
    /// The replica could not be reached, or its connection broke.
    Transport(tower::BoxError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => f.write_str(&error_chain(e)),
            Self::Transport(e) => f.write_str(&error_chain(e.as_ref())),
        }
    }
}

#[derive(Clone)]
pub struct RemoteService {
    role: &'static str,
    base: Arc<str>,
    client: reqwest::Client,
    /// Every replica the base URL(s) name, balanced.
    replicas: Replicas,
    retries: u32,
    /// What `GET /info` said, once the service has answered it.
    info: Arc<OnceLock<ServiceInfo>>,
}

/// What the gateway reads from a model service's `GET /info`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServiceInfo {
    /// The model's name (part of every cache key).
    pub model: String,
    /// A rerank-service's score fingerprint (`shared::Reranker::fingerprint`).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// A rerank-service's batching plan.
    #[serde(default)]
    pub batching: Option<Batching>,
}

/// The part of a service's batching plan that says how much work it takes at once.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Batching {
    pub max_batch_size: usize,
    pub workers: usize,
}

impl RemoteService {
    /// `role` names the dependency in errors ("embedder", "reranker"); `bases` is one URL or
    /// several, comma-separated (replicas; host names are re-resolved); `api_key`, if any, is
    /// sent as `Authorization: Bearer` with every request. Must run inside a tokio runtime.
    pub fn new(role: &'static str, bases: &str, api_key: Option<&Secret>, retries: u32) -> Result<Self, String> {
        let urls: Vec<reqwest::Url> = bases
            .split(',')
            .map(|base| base.trim().trim_end_matches('/'))
            .filter(|base| !base.is_empty())
            .map(|base| {
                let url = reqwest::Url::parse(base).map_err(|e| format!("invalid {role} URL {base:?}: {e}"))?;
                match (url.scheme(), url.path()) {
                    ("http" | "https", "/" | "") => Ok(url),
                    _ => Err(format!("invalid {role} URL {base:?}: give http(s)://host:port, without a path")),
                }
            })
            .collect::<Result<_, _>>()?;
        let Some(first) = urls.first() else { return Err(format!("no {role} URL given")) };
        let base = first.as_str().trim_end_matches('/').to_string();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key.filter(|k| !k.expose().is_empty()) {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| format!("the {role}'s API key holds characters a header cannot carry"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let replicas = Replicas::new(client.clone(), urls);
        Ok(Self { role, base: base.into(), client, replicas, retries, info: Arc::default() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The model's name as the service reports it, or its URL until it has been asked.
    pub fn model_name(&self) -> String {
        self.info.get().map_or_else(|| self.base.to_string(), |info| info.model.clone())
    }

    /// What `GET /info` said, once it has answered.
    pub fn info(&self) -> Option<&ServiceInfo> {
        self.info.get()
    }

    /// How many replicas the URLs stand for.
    pub fn replicas(&self) -> usize {
        self.replicas.count()
    }

    /// Asks `GET /info` for the model name (used in cache keys) and what else the gateway reads
    /// there; quiet on failure. A service answers it once its model is warm.
    pub async fn learn_info(&self) -> bool {
        let Ok(request) = self.client.get(format!("{}/info", self.base)).build() else { return false };
        let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(2), self.replicas.send(request)).await else {
            return false;
        };
        match response.error_for_status() {
            Ok(response) => match response.json::<ServiceInfo>().await {
                Ok(info) => {
                    let _ = self.info.set(info);
                    true
                }
                Err(_) => false,
            },
            Err(_) => false,
        }
    }

    /// POSTs `body` as JSON to `path` and decodes the answer, all within `budget`.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        budget: Duration,
    ) -> Result<R, UpstreamError> {
        self.send(reqwest::Method::POST, path, body, budget).await
    }

    /// Sends `body` as JSON to `path` and decodes the answer, all within `budget`.
    pub async fn send<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
        budget: Duration,
    ) -> Result<R, UpstreamError> {
        let deadline = Instant::now() + budget;
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            let call = async {
                let mut request =
                    self.client.request(method.clone(), &url).json(body).build().map_err(Failure::Http)?;
                shared::telemetry::inject_context(request.headers_mut());
                let response = self.replicas.send(request).await.map_err(Failure::Transport)?;
                let status = response.status();
                let retry_after = retry_after(&response);
                if status.is_success() {
                    return Ok(Ok(response.json::<R>().await.map_err(Failure::Http)?));
                }
                let detail = response.text().await.unwrap_or_default();
                Ok(Err((status, retry_after, detail)))
            };
            let outcome: Result<Result<R, _>, Failure> =
                tokio::time::timeout_at(deadline, call).await.map_err(|_| UpstreamError::Timeout(self.role))?;
            let (status, pause, detail) = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(Failure::Http(e)) if e.is_timeout() => return Err(UpstreamError::Timeout(self.role)),
                Err(Failure::Http(e)) if e.is_decode() => return Err(UpstreamError::Failed(self.role, e.to_string())),
                Err(failure) => {
                    // Refused or reset: that replica cools down, and another takes the request.
                    let pause = TRANSPORT_RETRY_PAUSE * (attempt + 1);
                    if attempt < self.retries && Instant::now() + pause < deadline {
                        attempt += 1;
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    return Err(UpstreamError::Unavailable(self.role, failure.to_string()));
                }
            };
            let retryable = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
            // Retry-After when given, else exponential backoff from 100 ms.
            let pause = pause.unwrap_or(Duration::from_millis(100 << attempt.min(4))).min(MAX_RETRY_PAUSE);
            if retryable && attempt < self.retries && Instant::now() + pause < deadline {
                attempt += 1;
                tokio::time::sleep(pause).await;
                continue;
            }
            return Err(match status {
                StatusCode::TOO_MANY_REQUESTS => UpstreamError::Overloaded(self.role),
                StatusCode::SERVICE_UNAVAILABLE => UpstreamError::Unavailable(self.role, message(&detail)),
                StatusCode::GATEWAY_TIMEOUT => UpstreamError::Timeout(self.role),
                StatusCode::UNAUTHORIZED => UpstreamError::Failed(
                    self.role,
                    format!(
                        "the {role} refused this gateway's API key (HTTP 401); check its key setting",
                        role = self.role
                    ),
                ),
                _ => UpstreamError::Failed(self.role, format!("HTTP {status}: {}", message(&detail))),
            });
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// The `error` field of a service's JSON error body, or the body itself.
fn message(body: &str) -> String {
    serde_json::from_str::<shared::http::ErrorBody>(body).map(|e| e.error).unwrap_or_else(|_| body.to_string())
}

/// reqwest's errors say "error sending request"; the cause ("connection refused") is below.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
