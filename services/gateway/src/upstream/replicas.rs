//! Replicas of one model service: the endpoints a comma-separated URL list names, host names
//! re-resolved every few seconds (compose `--scale`, Kubernetes headless services), balanced by
//! tower's power-of-two-choices balancer over peak-EWMA latency. A replica whose request fails
//! in transport (refused, reset) is passed over for a cool-down, then tried again, so a restarted
//! replica gets traffic back; the caller retries the failed request on another.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::Change;
use tower::load::peak_ewma::{Cost, PeakEwma};
use tower::load::{CompleteOnResponse, Load};
use tower::util::BoxService;
use tower::{BoxError, Service, ServiceExt};

/// How often host names are resolved again.
const REFRESH: Duration = Duration::from_secs(2);
/// How long a replica whose request failed in transport is passed over.
const COOL_DOWN: Duration = Duration::from_secs(1);
/// The latency a new replica is assumed to have, and how fast old latencies are forgotten.
const DEFAULT_RTT: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);

pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, BoxError>> + Send>>;

/// The balanced replicas; clones share them.
#[derive(Clone)]
pub struct Replicas {
    balancer: Buffer<reqwest::Request, ResponseFuture>,
    /// Endpoints found at the last resolution.
    count: Arc<AtomicUsize>,
}

impl Replicas {
    /// Balances over the endpoints of `bases` (URLs without a path), resolving host names now and
    /// every [`REFRESH`]. Must run inside a tokio runtime.
    pub fn new(client: reqwest::Client, bases: Vec<reqwest::Url>) -> Self {
        let (changes, discovered) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(bases.len()));
        tokio::spawn(discover(client, bases, changes, count.clone()));
        let balance = Balance::new(Discovered(discovered));
        let balancer = Buffer::new(BoxService::new(balance.map_err(BoxError::from)), 1024);
        Self { balancer, count }
    }

    /// How many replicas the names stood for when last resolved.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed).max(1)
    }

    /// Sends `request` (its URL's origin is replaced by the chosen replica's).
    pub fn send(&self, request: reqwest::Request) -> ResponseFuture {
        // Boxed: the balancer's own future type trips the compiler's Send inference in callers.
        Box::pin(self.balancer.clone().oneshot(request))
    }
}

/// One replica's HTTP endpoint.
#[derive(Clone)]
struct Endpoint {
    client: reqwest::Client,
    origin: reqwest::Url,
    down_until: Arc<Mutex<Option<Instant>>>,
}

impl Service<reqwest::Request> for Endpoint {
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: reqwest::Request) -> Self::Future {
        let url = request.url_mut();
        // Both are absolute http(s) URLs, so these cannot fail.
        let _ = url.set_scheme(self.origin.scheme());
        let _ = url.set_host(self.origin.host_str());
        let _ = url.set_port(self.origin.port_or_known_default());
        let (client, down_until) = (self.client.clone(), self.down_until.clone());
        Box::pin(async move {
            let result = client.execute(request).await;
            if result.is_err() {
                *down_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + COOL_DOWN);
            }
            Ok(result?)
        })
    }
}

/// An endpoint with its load: a replica cooling down after a failure weighs more than any
/// healthy one, then by peak-EWMA latency times requests in flight.
struct Replica {
    inner: PeakEwma<Endpoint, CompleteOnResponse>,
    down_until: Arc<Mutex<Option<Instant>>>,
}

impl Service<reqwest::Request> for Replica {
    type Response = reqwest::Response;
    type Error = BoxError;
    type Future = <PeakEwma<Endpoint, CompleteOnResponse> as Service<reqwest::Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        self.inner.call(request)
    }
}

impl Load for Replica {
    type Metric = (bool, Cost);

    fn load(&self) -> Self::Metric {
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| Instant::now() < t);
        (down, self.inner.load())
    }
}

/// The balancer's view of the endpoints as they come and go.
struct Discovered(mpsc::UnboundedReceiver<Change<String, Replica>>);

impl futures_core::Stream for Discovered {
    type Item = Result<Change<String, Replica>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|change| change.map(Ok))
    }
}

/// Resolves `bases` now and every [`REFRESH`], announcing endpoints that appear and vanish.
/// Ends when the balancer is gone.
async fn discover(
    client: reqwest::Client,
    bases: Vec<reqwest::Url>,
    changes: mpsc::UnboundedSender<Change<String, Replica>>,
    count: Arc<AtomicUsize>,
) {
    let mut current: HashMap<String, ()> = HashMap::new();
    loop {
        let mut found = HashMap::new();
        for base in &bases {
            for origin in resolve(base).await {
                found.insert(origin.to_string(), origin);
            }
        }
        for key in current.keys().filter(|k| !found.contains_key(*k)) {
            tracing::info!(replica = %key, "replica gone");
            if changes.send(Change::Remove(key.clone())).is_err() {
                return;
            }
        }
        for (key, origin) in &found {
            if current.contains_key(key) {
                continue;
            }
            tracing::info!(replica = %key, "replica found");
            let down_until = Arc::new(Mutex::new(None));
            let endpoint = Endpoint { client: client.clone(), origin: origin.clone(), down_until: down_until.clone() };
            let inner = PeakEwma::new(endpoint, DEFAULT_RTT, DECAY.as_nanos() as f64, CompleteOnResponse::default());
            if changes.send(Change::Insert(key.clone(), Replica { inner, down_until })).is_err() {
                return;
            }
        }
        count.store(found.len(), Ordering::Relaxed);
        current = found.into_keys().map(|k| (k, ())).collect();
        tokio::time::sleep(REFRESH).await;
        if changes.is_closed() {
            return;
        }
    }
}

/// The origins `base` stands for: itself when its host is an address, else one per address its
/// host name resolves to. A name that does not resolve (yet) stands for itself, so that calls
/// fail at once, as unreachable, instead of waiting for a replica.
async fn resolve(base: &reqwest::Url) -> Vec<reqwest::Url> {
    let (Some(host), Some(port)) = (base.host(), base.port_or_known_default()) else { return vec![base.clone()] };
    let name = match host {
        url::Host::Domain(name) => name.to_string(),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => return vec![base.clone()],
    };
    let resolved: Vec<reqwest::Url> = match tokio::net::lookup_host((name.as_str(), port)).await {
        Ok(addresses) => addresses
            .map(|address| {
                let mut origin = base.clone();
                let _ = origin.set_ip_host(address.ip());
                origin
            })
            .collect(),
        Err(e) => {
            tracing::debug!(host = name, error = %e, "cannot resolve a replica's host name yet");
            Vec::new()
        }
    };
    if resolved.is_empty() { vec![base.clone()] } else { resolved }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_is_its_own_endpoint_and_a_name_is_each_of_its_addresses() {
        let ip = reqwest::Url::parse("http://127.0.0.1:5555").unwrap();
        assert_eq!(resolve(&ip).await, vec![ip]);
        let name = reqwest::Url::parse("http://localhost:5555").unwrap();
        let resolved = resolve(&name).await;
        assert!(!resolved.is_empty(), "localhost resolves");
        assert!(resolved.iter().all(|u| u.port() == Some(5555) && u.host_str() != Some("localhost")), "{resolved:?}");
        let unknown = reqwest::Url::parse("http://no-such-host.invalid:1").unwrap();
        assert_eq!(resolve(&unknown).await, vec![unknown], "stands for itself until it resolves");
    }
}
