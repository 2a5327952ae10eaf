//! The hot-entity cache: Redis in front of point reads (cache-aside).
//!
//! The query API reads an entity here first and stores what the database
//! answered; the flusher drops an entity's key as soon as its projection
//! changes. Keys expire after a TTL, which bounds the age of any cached
//! answer even if an invalidation is lost.
//!
//! Redis is an optimisation, never a dependency: every operation has a
//! short timeout, and after a failure the cache is skipped for a second
//! (callers see `Lookup::Down` and answer from PostgreSQL) instead of each
//! request waiting for a dead server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// `ATLAS_REDIS_URL` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `ATLAS_REDIS_URL`: `redis://host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// `ATLAS_CACHE_TTL_SECS`: how long an entry lives at most.
    pub ttl: Duration,
    /// `ATLAS_REDIS_TIMEOUT_MS`: the most one connect or command may take.
    pub timeout: Duration,
    /// How long the cache is skipped after a failure.
    pub retry_after: Duration,
    /// `ATLAS_CACHE_NAMESPACE`: the prefix of every key, so deployments
    /// (or test runs) may share one Redis.
    pub namespace: String,
}

impl CacheConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ttl: Duration::from_secs(30),
            timeout: Duration::from_millis(100),
            retry_after: Duration::from_secs(1),
            namespace: "atlas".into(),
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(String),
    Miss,
    /// Redis is unreachable or failing; it was not asked.
    Down,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis URL: {0}")]
    Url(#[source] redis::RedisError),
}

pub struct HotCache {
    client: redis::Client,
    config: CacheConfig,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    down_until: Mutex<Option<Instant>>,
}

impl HotCache {
    /// Connects lazily: a cache built while Redis is down works once it is up.
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        Ok(Self {
            client: redis::Client::open(config.url.as_str()).map_err(CacheError::Url)?,
            config,
            conn: tokio::sync::Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// The key of one tenant's entity. The tenant is part of every key, so
    /// no lookup can return another tenant's entity.
    pub fn entity_key(&self, tenant: i64, entity: i64) -> String {
        format!("{}:v1:entity:{tenant}:{entity}", self.config.namespace)
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .expect("cache state")
            .is_some_and(|until| Instant::now() < until)
    }

    fn mark_down(&self, why: &dyn std::fmt::Display) {
        tracing::warn!(error = %why, "Redis is unavailable; serving without the cache");
        *self.down_until.lock().expect("cache state") =
            Some(Instant::now() + self.config.retry_after);
    }

    /// A connection, opened when there is none. Multiplexed connections are
    /// cheap clones of one socket, shared by every request.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        if self.is_down() {
            return None;
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
        {
            Ok(c) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    /// Forgets a broken connection so the next use reconnects.
    async fn failed(&self, e: &redis::RedisError) {
        *self.conn.lock().await = None;
        self.mark_down(e);
    }

    pub async fn get(&self, key: &str) -> Lookup {
        let Some(mut c) = self.connection().await else {
            return Lookup::Down;
        };
        match c.get::<_, Option<String>>(key).await {
            Ok(Some(v)) => Lookup::Hit(v),
            Ok(None) => Lookup::Miss,
            Err(e) => {
                self.failed(&e).await;
                Lookup::Down
            }
        }
    }

    /// One PING, for the lag checker: how long Redis took to answer. A
    /// failure marks the cache down like any other.
    pub async fn ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let Some(mut c) = self.connection().await else {
            return Err(format!(
                "no connection within {} ms",
                self.config.timeout.as_millis()
            ));
        };
        match redis::cmd("PING").query_async::<String>(&mut c).await {
            Ok(_) => Ok(started.elapsed()),
            Err(e) => {
                self.failed(&e).await;
                Err(e.to_string())
            }
        }
    }

    /// Stores `value` for the TTL. A failure only costs a later miss.
    pub async fn put(&self, key: &str, value: &str) {
        let Some(mut c) = self.connection().await else {
            return;
        };
        let ttl = self.config.ttl.as_secs().max(1);
        if let Err(e) = c.set_ex::<_, _, ()>(key, value, ttl).await {
            self.failed(&e).await;
        }
    }

    pub async fn forget(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let Some(mut c) = self.connection().await else {
            return;
        };
        if let Err(e) = c.del::<_, ()>(keys).await {
            self.failed(&e).await;
        }
    }
}

/// The flusher's side: drop the keys of entities whose projection changed.
/// If Redis is down then, the TTL still bounds what it may later serve.
#[async_trait::async_trait]
impl atlas_store::flush::ProjectionListener for HotCache {
    async fn changed(&self, entities: &[(i64, i64)]) {
        // Bounded DELs: a 20,000-row batch may change thousands of entities.
        for chunk in entities.chunks(1000) {
            let keys: Vec<String> = chunk.iter().map(|&(t, e)| self.entity_key(t, e)).collect();
            self.forget(&keys).await;
        }
    }
}
