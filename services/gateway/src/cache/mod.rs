//! The result cache: Redis when `REDIS_URL` is set, else in process. [`CacheLayer`] is what the
//! gateway uses: it never fails a request (a cache that is down or slow is a miss, logged at most
//! once per interval and counted), and it keys results by a per-collection generation that every
//! write bumps, so an upsert or delete never serves stale results.
//!
//! A circuit breaker keeps an outage from costing every search its commands' timeouts: after a
//! failure the cache is not asked at all while a background task probes it, at pauses that grow
//! from [`FIRST_PROBE`] to [`LAST_PROBE`]; the first answer closes the breaker.

mod memory;
mod redis;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use memory::MemoryCache;
pub use redis::RedisCache;

use crate::BoxFuture;
use crate::metrics::GatewayMetrics;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// A key-value store with expiry and counters.
pub trait Cache: Send + Sync {
    fn backend(&self) -> &'static str;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, CacheError>>;
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>>;
    /// The values at `keys`, in order, in one round trip.
    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, CacheError>>;
    /// Sets every entry, each with `ttl`, in one round trip.
    fn set_many<'a>(&'a self, entries: Vec<(String, Vec<u8>)>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>>;
    /// The counter at `key` (0 if unset).
    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>>;
    /// Adds one to the counter at `key`.
    fn increment<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>>;
}

/// Errors are logged at most this often.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The pause before the first probe of a cache that failed; it doubles up to [`LAST_PROBE`].
const FIRST_PROBE: Duration = Duration::from_millis(200);
const LAST_PROBE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CacheLayer {
    inner: Arc<dyn Cache>,
    metrics: GatewayMetrics,
    last_logged: Arc<Mutex<Option<Instant>>>,
    /// Collections whose generation could not be bumped (the cache was down during a write):
    /// their cached results may be stale, so they bypass the cache until the bump succeeds.
    unbumped: Arc<Mutex<HashSet<String>>>,
    /// Set after a failure until a background probe gets an answer: the cache is not asked.
    open: Arc<AtomicBool>,
}

/// Where a search result can be cached, or why it cannot.
#[derive(Debug, Clone, PartialEq)]
pub enum Generation {
    Known(u64),
    /// The generation is unknown (cache down, or a write could not be recorded): do not cache.
    Unknown,
}

impl CacheLayer {
    pub fn new(inner: Arc<dyn Cache>, metrics: GatewayMetrics) -> Self {
        Self { inner, metrics, last_logged: Arc::default(), unbumped: Arc::default(), open: Arc::default() }
    }

    pub fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn failed(&self, operation: &'static str, error: &CacheError) {
        self.metrics.cache_error(operation);
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(backend = self.inner.backend(), operation, %error, "cache unavailable; serving uncached");
        }
        if !self.open.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().probe_until_it_answers());
        }
    }

    /// Whether the breaker is open: the cache failed and has not answered a probe since.
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    async fn probe_until_it_answers(self) {
        let mut pause = FIRST_PROBE;
        loop {
            tokio::time::sleep(pause).await;
            if self.inner.counter(PROBE_KEY).await.is_ok() {
                self.open.store(false, Ordering::SeqCst);
                tracing::info!(backend = self.inner.backend(), "cache answers again; caching resumes");
                return;
            }
            pause = (pause * 2).min(LAST_PROBE);
        }
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        if self.is_open() {
            return None;
        }
        match self.inner.get(key).await {
            Ok(value) => value,
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        if self.is_open() {
            return;
        }
        if let Err(e) = self.inner.set(key, value, ttl).await {
            self.failed("set", &e);
        }
    }

    /// The values at `keys`, in order (all missing when the cache cannot answer).
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        if self.is_open() || keys.is_empty() {
            return vec![None; keys.len()];
        }
        match self.inner.get_many(keys).await {
            Ok(values) if values.len() == keys.len() => values,
            Ok(_) => vec![None; keys.len()],
            Err(e) => {
                self.failed("get_many", &e);
                vec![None; keys.len()]
            }
        }
    }

    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>, ttl: Duration) {
        if self.is_open() || entries.is_empty() {
            return;
        }
        if let Err(e) = self.inner.set_many(entries, ttl).await {
            self.failed("set_many", &e);
        }
    }

    /// The current generation of `collection`'s results.
    pub async fn generation(&self, collection: &str) -> Generation {
        if self.is_open() || self.unbumped.lock().unwrap_or_else(|p| p.into_inner()).contains(collection) {
            return Generation::Unknown;
        }
        match self.inner.counter(&generation_key(collection)).await {
            Ok(generation) => Generation::Known(generation),
            Err(e) => {
                self.failed("generation", &e);
                Generation::Unknown
            }
        }
    }

    /// Marks every cached result of `collection` stale. If the cache cannot record it now, the
    /// collection bypasses the cache until a background retry succeeds.
    pub async fn bump(&self, collection: &str) {
        let result = match self.is_open() {
            true => Err(CacheError("the cache is not answering".into())),
            false => self.inner.increment(&generation_key(collection)).await,
        };
        if let Err(e) = result {
            self.failed("bump", &e);
            let first = self.unbumped.lock().unwrap_or_else(|p| p.into_inner()).insert(collection.to_string());
            if first {
                tokio::spawn(self.clone().retry_bump(collection.to_string()));
            }
        }
    }

    async fn retry_bump(self, collection: String) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.inner.increment(&generation_key(&collection)).await.is_ok() {
                self.unbumped.lock().unwrap_or_else(|p| p.into_inner()).remove(&collection);
                tracing::info!(%collection, "cache generation recorded; caching resumes");
                return;
            }
        }
    }
}

/// The SHA-256 of `parts` in hex, each part's length hashed before it, so that parts cannot run
/// into each other: what every cache key is made of.
pub(crate) fn hex_sha256(parts: &[&str]) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a probe reads (any answer, even "unset", means the cache is back).
const PROBE_KEY: &str = "sg:v1:probe";

fn generation_key(collection: &str) -> String {
    format!("sg:v1:gen:{collection}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn key_parts_cannot_run_into_each_other() {
        assert_ne!(hex_sha256(&["ab", "c"]), hex_sha256(&["a", "bc"]));
    }

    /// A cache that works until it is switched off (a real Redis outage is tested end to end).
    struct Switchable {
        up: AtomicBool,
        memory: MemoryCache,
        /// Commands received (answered or not).
        asked: AtomicUsize,
    }

    impl Switchable {
        fn new() -> Arc<Self> {
            Arc::new(Self { up: AtomicBool::new(true), memory: MemoryCache::new(1 << 20), asked: AtomicUsize::new(0) })
        }

        fn check(&self) -> Result<(), CacheError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if self.up.load(Ordering::SeqCst) { Ok(()) } else { Err(CacheError("down".into())) }
        }
    }

    impl Cache for Switchable {
        fn backend(&self) -> &'static str {
            "switchable"
        }
        fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.get(key).await
            })
        }
        fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.set(key, value, ttl).await
            })
        }
        fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.get_many(keys).await
            })
        }
        fn set_many<'a>(
            &'a self,
            entries: Vec<(String, Vec<u8>)>,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<(), CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.set_many(entries, ttl).await
            })
        }
        fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.counter(key).await
            })
        }
        fn increment<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
            Box::pin(async move {
                self.check()?;
                self.memory.increment(key).await
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_during_an_outage_bypasses_the_cache_until_it_is_recorded() {
        let cache = Switchable::new();
        let layer = CacheLayer::new(cache.clone(), GatewayMetrics::default());
        assert_eq!(layer.generation("c").await, Generation::Known(0));
        layer.bump("c").await;
        assert_eq!(layer.generation("c").await, Generation::Known(1));

        cache.up.store(false, Ordering::SeqCst);
        assert_eq!(layer.get("k").await, None, "a cache that is down is a miss");
        layer.bump("c").await;
        cache.up.store(true, Ordering::SeqCst);
        assert_eq!(layer.generation("c").await, Generation::Unknown, "stale until the bump is recorded");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(layer.generation("c").await, Generation::Known(2));
        assert_eq!(layer.generation("other").await, Generation::Known(0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_opens_the_breaker_until_a_probe_gets_an_answer() {
        let cache = Switchable::new();
        let layer = CacheLayer::new(cache.clone(), GatewayMetrics::default());
        layer.set("k", b"v".to_vec(), Duration::from_secs(60)).await;
        cache.up.store(false, Ordering::SeqCst);
        assert_eq!(layer.get("k").await, None);
        let asked = cache.asked.load(Ordering::SeqCst);
        // Open: searches do not ask the cache at all.
        for _ in 0..10 {
            assert_eq!(layer.generation("c").await, Generation::Unknown);
            assert_eq!(layer.get("k").await, None);
            layer.set("k2", b"v".to_vec(), Duration::from_secs(60)).await;
        }
        assert_eq!(cache.asked.load(Ordering::SeqCst), asked, "asked while the breaker was open");
        // Probes at 0.2, 0.6, 1.4, 3.0 s ... keep failing while it is down.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let probes = cache.asked.load(Ordering::SeqCst) - asked;
        assert!((3..=4).contains(&probes), "{probes} probes in 3 s");
        cache.up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(layer.get("k").await, Some(b"v".to_vec()), "caching resumes after a probe succeeds");
        assert_eq!(layer.generation("c").await, Generation::Known(0));
    }
}
