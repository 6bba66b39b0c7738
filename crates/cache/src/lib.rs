//! The hot-score cache: one [`Cache`] trait, a Redis implementation for production and an
//! in-process one for the embedded mode. Values are opaque bytes; callers own the key scheme.
//!
//! Writers of one key may be several replicas at once, and their writes may arrive in any
//! order: a write names the [`Version`] of what it stores and never replaces a newer one,
//! and a refill from the database (a read-through) stores only where nothing is cached.

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

/// What a cached value was computed from, compared as a pair: a newer one has a higher first
/// number (a revision), or the same first and a higher or equal second (a time).
pub type Version = (i64, i64);

/// A value to cache, with its key and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub key: String,
    pub version: Version,
    pub value: Vec<u8>,
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
    /// Stores each entry unless its key holds a newer version, in one round trip.
    fn put_many(
        &self,
        entries: Vec<Versioned>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;
    /// Stores each value only where its key holds nothing (a refill from the database, which
    /// a concurrent [`Cache::put_many`] of a newer value must win over), in one round trip.
    fn fill_many(
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

/// TLS towards Redis (`rediss://` URLs): the CA to trust instead of the system's, and a
/// client certificate for a server that requires one; all PEM.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisCache {
    /// Starts connecting to `url` in the background; until connected, calls fail fast. A
    /// `rediss://` URL connects over TLS, with `tls` when given.
    pub fn connect(
        url: &str,
        ttl: Duration,
        timeout: Duration,
        tls: Option<RedisTls>,
    ) -> Result<Self, CacheError> {
        let client = match tls {
            Some(tls) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: tls.client.map(|(client_cert, client_key)| {
                        redis::ClientTlsConfig {
                            client_cert,
                            client_key,
                        }
                    }),
                    root_cert: tls.ca,
                },
            ),
            _ => redis::Client::open(url),
        }
        .map_err(CacheError::Url)?;
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

    async fn put_many(&self, entries: Vec<Versioned>) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut call = PUT_NEWER.prepare_invoke();
        call.arg(self.ttl.as_millis().max(1) as u64);
        for e in entries {
            call.key(&e.key)
                .key(format!("{}{VERSION_SUFFIX}", e.key))
                .arg(e.version.0)
                .arg(e.version.1)
                .arg(e.value);
        }
        let mut conn = self.conn.get().cloned().ok_or(CacheError::Unavailable)?;
        tokio::time::timeout(self.timeout * 10, call.invoke_async::<()>(&mut conn))
            .await
            .map_err(|_| CacheError::Timeout(self.timeout * 10))?
            .map_err(CacheError::from)
    }

    async fn fill_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = self.ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
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

/// Where Redis keeps a key's version: beside it, with the same time to live.
const VERSION_SUFFIX: &str = "#version";

/// Stores each (value key, version key) pair's value unless the version key holds a newer
/// version, atomically. ARGV: the time to live (ms), then per pair its version's two numbers
/// and its value.
static PUT_NEWER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local ttl = ARGV[1]
for i = 1, #KEYS, 2 do
  local a = 2 + (i - 1) / 2 * 3
  local rev, at = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local newer = true
  local held = redis.call('GET', KEYS[i + 1])
  if held then
    local sep = string.find(held, ':', 1, true)
    local hrev, hat = tonumber(string.sub(held, 1, sep - 1)), tonumber(string.sub(held, sep + 1))
    newer = rev > hrev or (rev == hrev and at >= hat)
  end
  if newer then
    redis.call('SET', KEYS[i], ARGV[a + 2], 'PX', ttl)
    redis.call('SET', KEYS[i + 1], ARGV[a] .. ':' .. ARGV[a + 1], 'PX', ttl)
  end
end
return 0
"#,
    )
});

/// In-process cache for the embedded mode (one process, no Redis).
#[derive(Clone)]
pub struct MemoryCache {
    inner: Moka<String, (Version, Vec<u8>)>,
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

/// The version a refill stores under: older than any written version.
const FILLED: Version = (i64::MIN, i64::MIN);

impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.inner.get(key).map(|(_, v)| v))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        Ok(keys
            .iter()
            .map(|k| self.inner.get(k).map(|(_, v)| v))
            .collect())
    }

    async fn put_many(&self, entries: Vec<Versioned>) -> Result<(), CacheError> {
        use moka::ops::compute::Op;
        for e in entries {
            self.inner.entry(e.key).and_compute_with(|held| match held {
                Some(held) if held.value().0 > e.version => Op::Nop,
                _ => Op::Put((e.version, e.value)),
            });
        }
        Ok(())
    }

    async fn fill_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        for (key, value) in entries {
            self.inner.entry(key).or_insert((FILLED, value));
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

    async fn put_many(&self, entries: Vec<Versioned>) -> Result<(), CacheError> {
        match self {
            AnyCache::Redis(c) => c.put_many(entries).await,
            AnyCache::Memory(c) => c.put_many(entries).await,
        }
    }

    async fn fill_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), CacheError> {
        match self {
            AnyCache::Redis(c) => c.fill_many(entries).await,
            AnyCache::Memory(c) => c.fill_many(entries).await,
        }
    }
}

/// The contract every [`Cache`] keeps, as a check each implementation's tests run.
pub mod conformance {
    use super::*;

    fn put(key: &str, version: Version, value: &[u8]) -> Versioned {
        Versioned {
            key: key.to_owned(),
            version,
            value: value.to_vec(),
        }
    }

    /// Writes arriving out of order keep the newest; a refill never replaces a value (fails
    /// the caller's test otherwise).
    pub async fn newest_wins(cache: &impl Cache) {
        cache.put_many(vec![put("a", (2, 10), b"2")]).await.unwrap();
        cache
            .put_many(vec![put("a", (1, 99), b"1"), put("b", (1, 1), b"b")])
            .await
            .unwrap();
        assert_eq!(cache.get("a").await.unwrap(), Some(b"2".to_vec()));
        cache
            .put_many(vec![put("a", (2, 11), b"2'")])
            .await
            .unwrap();
        cache
            .put_many(vec![put("a", (2, 9), b"old")])
            .await
            .unwrap();
        assert_eq!(cache.get("a").await.unwrap(), Some(b"2'".to_vec()));
        cache
            .fill_many(vec![
                ("a".into(), b"db".to_vec()),
                ("c".into(), b"c".to_vec()),
            ])
            .await
            .unwrap();
        let many = cache
            .get_many(&["a".into(), "b".into(), "c".into(), "d".into()])
            .await
            .unwrap();
        assert_eq!(
            many,
            vec![
                Some(b"2'".to_vec()),
                Some(b"b".to_vec()),
                Some(b"c".to_vec()),
                None
            ]
        );
        cache.put_many(vec![put("c", (0, 0), b"c'")]).await.unwrap();
        assert_eq!(
            cache.get("c").await.unwrap(),
            Some(b"c'".to_vec()),
            "a write replaces a refill"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_keeps_the_newest() {
        conformance::newest_wins(&MemoryCache::new(100, Duration::from_secs(60))).await;
    }

    #[tokio::test]
    async fn redis_that_is_not_there_fails_fast() {
        // Port 1 on loopback: nothing listens there.
        let cache = RedisCache::connect(
            "redis://127.0.0.1:1",
            Duration::from_secs(60),
            Duration::from_millis(50),
            None,
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
