//! Redis (`REDIS_URL`, password in the URL). The connection is made on first use and remade by
//! redis' `ConnectionManager` after an outage; every command has a short time budget, so a slow
//! Redis costs a request at most that budget.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use super::{Cache, CacheError};
use crate::BoxFuture;

/// Pause between connection attempts while Redis cannot be reached.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

pub struct RedisCache {
    client: redis::Client,
    timeout: Duration,
    connection: Mutex<Connection>,
}

#[derive(Default)]
struct Connection {
    manager: Option<ConnectionManager>,
    last_attempt: Option<Instant>,
}

impl RedisCache {
    /// Checks the URL; connects on first use.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        Ok(Self { client, timeout, connection: Mutex::default() })
    }

    async fn manager(&self) -> Result<ConnectionManager, CacheError> {
        let mut connection = self.connection.lock().await;
        if let Some(manager) = &connection.manager {
            return Ok(manager.clone());
        }
        if connection.last_attempt.is_some_and(|t| t.elapsed() < RECONNECT_PAUSE) {
            return Err(CacheError("Redis is unreachable".into()));
        }
        connection.last_attempt = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let manager =
            tokio::time::timeout(self.timeout * 2, ConnectionManager::new_with_config(self.client.clone(), config))
                .await
                .map_err(|_| CacheError("connecting to Redis timed out".into()))?
                .map_err(|e| CacheError(format!("cannot connect to Redis: {e}")))?;
        connection.manager = Some(manager.clone());
        Ok(manager)
    }

    /// Runs one command within the time budget.
    async fn run<T, F>(&self, command: impl FnOnce(ConnectionManager) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let manager = self.manager().await?;
        match tokio::time::timeout(self.timeout, command(manager)).await {
            Ok(result) => result.map_err(|e| CacheError(format!("Redis: {e}"))),
            Err(_) => Err(CacheError(format!("Redis did not answer within {:?}", self.timeout))),
        }
    }
}

impl Cache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        Box::pin(self.run(move |mut c| async move { c.get(key).await }))
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>> {
        let seconds = ttl.as_secs().max(1);
        Box::pin(self.run(move |mut c| async move { c.set_ex(key, value, seconds).await }))
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, CacheError>> {
        // MGET of one key answers a bare value, not a list: ask in a list always.
        Box::pin(self.run(move |mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }))
    }

    fn set_many<'a>(&'a self, entries: Vec<(String, Vec<u8>)>, ttl: Duration) -> BoxFuture<'a, Result<(), CacheError>> {
        let seconds = ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for (key, value) in &entries {
            pipe.set_ex(key, value, seconds).ignore();
        }
        Box::pin(self.run(move |mut c| async move { pipe.query_async(&mut c).await }))
    }

    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(async move {
            Ok(self.run(move |mut c| async move { c.get::<_, Option<u64>>(key).await }).await?.unwrap_or(0))
        })
    }

    fn increment<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(self.run(move |mut c| async move { c.incr(key, 1u64).await }))
    }
}
