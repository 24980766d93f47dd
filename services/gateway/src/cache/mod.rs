//! The result cache: Redis when `REDIS_URL` is set, else in process. [`CacheLayer`] is what the
//! gateway uses: it never fails a request (a cache that is down or slow is a miss, logged at most
//! once per interval and counted), and it keys results by a per-collection generation that every
//! write bumps, so an upsert or delete never serves stale results.

mod memory;
mod redis;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use memory::MemoryCache;
pub use redis::RedisCache;

use crate::engines::BoxFuture;
use crate::metrics::GatewayMetrics;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// A key-value store with expiry and counters.
pub trait Cache: Send + Sync {
    fn backend(&self) -> &'static str;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, CacheError>>;
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>>;
    /// The counter at `key` (0 if unset).
    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>>;
    /// Adds one to the counter at `key`.
    fn increment<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>>;
}

/// Errors are logged at most this often.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct CacheLayer {
    inner: Arc<dyn Cache>,
    metrics: GatewayMetrics,
    last_logged: Arc<Mutex<Option<Instant>>>,
    /// Collections whose generation could not be bumped (the cache was down during a write):
    /// their cached results may be stale, so they bypass the cache until the bump succeeds.
    unbumped: Arc<Mutex<HashSet<String>>>,
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
        Self { inner, metrics, last_logged: Arc::default(), unbumped: Arc::default() }
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
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.inner.get(key).await {
            Ok(value) => value,
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        if let Err(e) = self.inner.set(key, value, ttl).await {
            self.failed("set", &e);
        }
    }

    /// The current generation of `collection`'s results.
    pub async fn generation(&self, collection: &str) -> Generation {
        if self.unbumped.lock().unwrap_or_else(|p| p.into_inner()).contains(collection) {
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
        if let Err(e) = self.inner.increment(&generation_key(collection)).await {
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

fn generation_key(collection: &str) -> String {
    format!("sg:v1:gen:{collection}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A cache that works until it is switched off (a real Redis outage is tested end to end).
    struct Switchable {
        up: AtomicBool,
        memory: MemoryCache,
    }

    impl Switchable {
        fn check(&self) -> Result<(), CacheError> {
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
        let cache = Arc::new(Switchable { up: AtomicBool::new(true), memory: MemoryCache::new(1 << 20) });
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
}
