//! The in-process cache (no `REDIS_URL`): moka, bounded by bytes, with a TTL per entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use moka::Expiry;

use super::{Cache, CacheError};
use crate::BoxFuture;

#[derive(Clone)]
struct Entry {
    value: std::sync::Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(&self, _: &String, entry: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
    counters: Mutex<HashMap<String, u64>>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .build();
        Self { entries, counters: Mutex::default() }
    }
}

impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        Box::pin(async move { Ok(self.entries.get(key).await.map(|e| e.value.to_vec())) })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            self.entries.insert(key.to_string(), Entry { value: value.into(), ttl }).await;
            Ok(())
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, CacheError>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.entries.get(key).await.map(|e| e.value.to_vec()));
            }
            Ok(values)
        })
    }

    fn set_many<'a>(&'a self, entries: Vec<(String, Vec<u8>)>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            for (key, value) in entries {
                self.entries.insert(key, Entry { value: value.into(), ttl }).await;
            }
            Ok(())
        })
    }

    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
        let value = self.counters.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied().unwrap_or(0);
        Box::pin(async move { Ok(value) })
    }

    fn increment<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let counter = counters.entry(key.to_string()).or_insert(0);
        *counter += 1;
        let value = *counter;
        Box::pin(async move { Ok(value) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_counts_and_expires() {
        let cache = MemoryCache::new(1 << 20);
        cache.set("a", b"one".to_vec(), Duration::from_secs(60)).await.unwrap();
        cache.set("short", b"two".to_vec(), Duration::from_millis(20)).await.unwrap();
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.get("missing").await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get("short").await.unwrap(), None, "expired after its own TTL");
        assert_eq!(cache.counter("g").await.unwrap(), 0);
        assert_eq!(cache.increment("g").await.unwrap(), 1);
        assert_eq!(cache.counter("g").await.unwrap(), 1);
        let entries = vec![("m1".to_string(), b"x".to_vec()), ("m2".to_string(), b"y".to_vec())];
        cache.set_many(entries, Duration::from_secs(60)).await.unwrap();
        let keys = ["m2", "missing", "m1"].map(String::from);
        assert_eq!(cache.get_many(&keys).await.unwrap(), vec![Some(b"y".to_vec()), None, Some(b"x".to_vec())]);
    }
}
