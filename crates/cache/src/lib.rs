//! The hot-score cache: one [`Cache`] trait, a Redis implementation for production and an
//! in-process one for the embedded mode. Values are opaque bytes; callers own the key scheme.

use moka::sync::Cache as Moka;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Errors of a cache operation; callers fall back to the database on any of them.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache not connected yet")]
    Unavailable,
    #[error("cache operation timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid redis URL: {0}")]
    Url(redis::RedisError),
}

/// A key-value cache of hot scores with a fixed time to live.
pub trait Cache: Send + Sync {
    /// The value under `key`, if cached.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, CacheError>> + Send;
    /// The values under `keys`, in order, in one round trip.
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, CacheError>> + Send;
    /// Stores `value` under `key` with the cache's time to live.
    fn set(&self, key: &str, value: Vec<u8>)
    -> impl Future<Output = Result<(), CacheError>> + Send;
    /// Stores several values in one round trip.
    fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;
}

/// Redis through a connection manager that reconnects on its own; every call is bounded by
/// a timeout so a slow or absent Redis never holds up a request.
#[derive(Clone)]
pub struct RedisCache {
    conn: Arc<OnceCell<ConnectionManager>>,
    ttl: Duration,
    timeout: Duration,
}

impl RedisCache {
    /// Starts connecting to `url` in the background; until connected, calls fail fast.
    pub fn connect(url: &str, ttl: Duration, timeout: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(CacheError::Url)?;
        let conn = Arc::new(OnceCell::new());
        let cell = conn.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
                .set_response_timeout(Some(timeout))
                .set_max_delay(Duration::from_secs(2));
            let mut delay = Duration::from_millis(100);
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(manager) => {
                        let _ = cell.set(manager);
                        tracing::info!("connected to redis");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "redis not reachable yet; serving from the database");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        Ok(RedisCache { conn, ttl, timeout })
    }

    /// Waits until the first connection is made (for start-up checks and tests).
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.conn.initialized() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.conn.initialized()
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        let mut conn = self.conn.get().cloned().ok_or(CacheError::Unavailable)?;
        tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(|_| CacheError::Timeout(self.timeout))?
            .map_err(CacheError::from)
    }
}

impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.run(redis::cmd("GET").arg(key).to_owned()).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(redis::cmd("MGET").arg(keys).to_owned()).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), CacheError> {
        let ttl = self.ttl.as_millis().max(1) as u64;
        self.run(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl)
                .to_owned(),
        )
        .await
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = self.ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        let mut conn = self.conn.get().cloned().ok_or(CacheError::Unavailable)?;
        tokio::time::timeout(self.timeout * 10, pipe.query_async::<()>(&mut conn))
            .await
            .map_err(|_| CacheError::Timeout(self.timeout * 10))?
            .map_err(CacheError::from)
    }
}

/// In-process cache for the embedded mode (one process, no Redis).
#[derive(Clone)]
pub struct MemoryCache {
    inner: Moka<String, Vec<u8>>,
}

impl MemoryCache {
    /// A cache of at most `capacity` entries living `ttl` each.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        MemoryCache {
            inner: Moka::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.inner.get(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        Ok(keys.iter().map(|k| self.inner.get(k)).collect())
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), CacheError> {
        self.inner.insert(key.to_owned(), value);
        Ok(())
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        for (key, value) in entries {
            self.inner.insert(key, value);
        }
        Ok(())
    }
}

/// The cache a process was configured with.
#[derive(Clone)]
pub enum AnyCache {
    Redis(RedisCache),
    Memory(MemoryCache),
}

impl Cache for AnyCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            AnyCache::Redis(c) => c.get(key).await,
            AnyCache::Memory(c) => c.get(key).await,
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        match self {
            AnyCache::Redis(c) => c.get_many(keys).await,
            AnyCache::Memory(c) => c.get_many(keys).await,
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), CacheError> {
        match self {
            AnyCache::Redis(c) => c.set(key, value).await,
            AnyCache::Memory(c) => c.set(key, value).await,
        }
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        match self {
            AnyCache::Redis(c) => c.set_many(entries).await,
            AnyCache::Memory(c) => c.set_many(entries).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_round_trip() {
        let cache = MemoryCache::new(100, Duration::from_secs(60));
        cache.set("a", b"1".to_vec()).await.unwrap();
        assert_eq!(cache.get("a").await.unwrap(), Some(b"1".to_vec()));
        let many = cache.get_many(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(many, vec![Some(b"1".to_vec()), None]);
        cache
            .set_many(vec![
                ("b".into(), b"2".to_vec()),
                ("c".into(), b"3".to_vec()),
            ])
            .await
            .unwrap();
        let many = cache.get_many(&["b".into(), "c".into()]).await.unwrap();
        assert_eq!(many, vec![Some(b"2".to_vec()), Some(b"3".to_vec())]);
    }

    #[tokio::test]
    async fn redis_that_is_not_there_fails_fast() {
        // Port 1 on loopback: nothing listens there.
        let cache = RedisCache::connect(
            "redis://127.0.0.1:1",
            Duration::from_secs(60),
            Duration::from_millis(50),
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
