//! Which database answers a read: the seed's QueryRouter.
//!
//! - strong: the primary.
//! - eventual: a replica whose lag is under the threshold (and under the
//!   caller's `max_lag_seconds`), else the primary.
//! - analytics: the least-lagging replica within the caller's bound, else
//!   the primary (the warehouse takes this over with the CDC issue).
//!
//! A replica's lag is the primary's newest `replication_heartbeat` row minus
//! the replica's newest (`atlas_freshness`'s one definition): as the lag
//! checker last published it in `freshness_status` while that is recent,
//! else measured here at most once per `lag_check` and shared by every
//! request meanwhile. A replica that fails a check or a read is left
//! alone for `retry_after`. Reads that fall back to the primary because every
//! replica lags pass a breaker: at most `fallback_max` at once, the rest are
//! 503s, so a replica outage cannot pile the whole read load onto the
//! primary. Each fallback is counted as a metric.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_cloud::metrics::{Metrics, Sample, Unit};
use atlas_freshness::measure::{NEWEST_BEAT, heartbeat_lag};
use atlas_freshness::status::StatusCache;
use atlas_store::{Pool, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Consistency;

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// `ATLAS_REPLICA_MAX_LAG_SECS`: the most an eventual read may lag.
    pub max_lag: Duration,
    /// `ATLAS_REPLICA_LAG_CHECK_MS`: how long a lag measurement is reused.
    pub lag_check: Duration,
    /// `ATLAS_REPLICA_RETRY_SECS`: how long a failed replica is skipped.
    pub retry_after: Duration,
    /// `ATLAS_PRIMARY_FALLBACK_MAX`: most fallback reads on the primary at once.
    pub fallback_max: usize,
    /// `ATLAS_FRESHNESS_MAX_AGE_MS`: the lag checker's published lag of a
    /// replica is used while it is at most this old; older (or none), the
    /// router measures for itself. `None` (0): always measure.
    pub status_max_age: Option<Duration>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(5),
            lag_check: Duration::from_secs(1),
            retry_after: Duration::from_secs(5),
            fallback_max: 16,
            status_max_age: Some(Duration::from_secs(15)),
        }
    }
}

/// The newest heartbeat a database has, as last measured.
#[derive(Debug, Default)]
struct Beat {
    checked: Option<Instant>,
    /// `None` when the database could not be asked.
    newest: Option<DateTime<Utc>>,
    down_until: Option<Instant>,
}

impl Beat {
    /// The database failed: forget its heartbeat and leave it alone for
    /// `retry_after`.
    fn fail(&mut self, retry_after: Duration) {
        let now = Instant::now();
        self.checked = Some(now);
        self.newest = None;
        self.down_until = Some(now + retry_after);
    }
}

/// One streaming replica.
pub struct Replica {
    pub name: String,
    pub pool: Pool,
    beat: Mutex<Beat>,
}

impl Replica {
    pub fn new(name: impl Into<String>, pool: Pool) -> Self {
        Self {
            name: name.into(),
            pool,
            beat: Mutex::default(),
        }
    }
}

/// Where a read goes, and what its answer may claim about freshness.
pub struct Route<'a> {
    pub pool: &'a Pool,
    /// `primary` or `replica:<name>`.
    pub source: String,
    pub lag_seconds: f64,
    replica: Option<&'a Replica>,
    _fallback: Option<SemaphorePermit<'a>>,
}

/// Why no source could answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NoSource {
    /// The least lag among replicas, when any could be measured.
    pub lag_seconds: Option<f64>,
    pub fallback_max: usize,
}

impl std::fmt::Display for NoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lag_seconds {
            Some(lag) => write!(f, "every replica lags (least {lag:.3} s)")?,
            None => write!(f, "no replica can be reached")?,
        }
        write!(
            f,
            " and the primary is already serving {} fallback reads; retry shortly",
            self.fallback_max
        )
    }
}

impl std::error::Error for NoSource {}

pub struct Router {
    primary: Pool,
    status: Option<StatusCache>,
    primary_beat: Mutex<Beat>,
    replicas: Vec<Replica>,
    config: RoutingConfig,
    fallback: Semaphore,
    metrics: Metrics,
}

impl Router {
    /// A router with only the primary, until `with_replicas`.
    pub fn new(primary: Pool, config: RoutingConfig, metrics: Metrics) -> Self {
        Self {
            status: config
                .status_max_age
                .map(|max_age| StatusCache::new(primary.clone(), config.lag_check, max_age)),
            primary,
            primary_beat: Mutex::default(),
            replicas: Vec::new(),
            fallback: Semaphore::new(config.fallback_max),
            config,
            metrics,
        }
    }

    pub fn with_replicas(mut self, replicas: Vec<Replica>) -> Self {
        self.replicas = replicas;
        self
    }

    pub fn primary(&self) -> &Pool {
        &self.primary
    }

    /// The newest heartbeat on `pool`, reusing a measurement younger than
    /// `lag_check`. Concurrent callers may both measure; that is harmless.
    async fn newest(&self, pool: &Pool, beat: &Mutex<Beat>) -> Option<DateTime<Utc>> {
        {
            let b = beat.lock().expect("beat lock");
            if let Some(until) = b.down_until
                && Instant::now() < until
            {
                return None;
            }
            if b.checked
                .is_some_and(|at| at.elapsed() < self.config.lag_check)
            {
                return b.newest;
            }
        }
        let measured = async {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(NEWEST_BEAT).await?;
            Ok::<_, StoreError>(client.query_one(&stmt, &[]).await?.get(0))
        };
        let measured = match tokio::time::timeout(Duration::from_secs(2), measured).await {
            Ok(Ok(newest)) => Ok(newest),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        let mut b = beat.lock().expect("beat lock");
        match measured {
            Ok(newest) => {
                b.checked = Some(Instant::now());
                b.newest = newest;
                b.down_until = None;
            }
            Err(why) => {
                tracing::warn!(error = %why, "heartbeat check failed");
                b.fail(self.config.retry_after);
            }
        }
        b.newest
    }

    /// How far `replica` lags the primary, or `None` when it cannot be told
    /// (which is also what the lag checker publishes for one it finds down).
    pub async fn lag(&self, replica: &Replica) -> Option<f64> {
        if let Some(status) = &self.status
            && let Some(published) = status.fresh(&format!("replica:{}", replica.name)).await
        {
            return published.lag_seconds;
        }
        let replica_beat = self.newest(&replica.pool, &replica.beat).await?;
        let primary_beat = self.newest(&self.primary, &self.primary_beat).await?;
        Some(heartbeat_lag(primary_beat, replica_beat))
    }

    /// Marks a replica that failed a read, so the next ones skip it.
    fn mark_down(&self, replica: &Replica) {
        replica
            .beat
            .lock()
            .expect("beat lock")
            .fail(self.config.retry_after);
    }

    /// Picks the source for a read at `consistency` within `max_lag`.
    pub async fn route(
        &self,
        consistency: Consistency,
        max_lag: Option<f64>,
    ) -> Result<Route<'_>, NoSource> {
        if consistency == Consistency::Strong || self.replicas.is_empty() {
            return Ok(self.on_primary(None));
        }
        let bound = match consistency {
            Consistency::Eventual => {
                let threshold = self.config.max_lag.as_secs_f64();
                max_lag.map_or(threshold, |m| m.min(threshold))
            }
            _ => max_lag.unwrap_or(f64::INFINITY),
        };
        let mut best: Option<(&Replica, f64)> = None;
        let mut least_lag: Option<f64> = None;
        for r in &self.replicas {
            let Some(lag) = self.lag(r).await else {
                continue;
            };
            least_lag = Some(least_lag.map_or(lag, |l| l.min(lag)));
            if lag <= bound && best.is_none_or(|(_, l)| lag < l) {
                best = Some((r, lag));
            }
        }
        match best {
            Some((r, lag)) => Ok(Route {
                pool: &r.pool,
                source: format!("replica:{}", r.name),
                lag_seconds: lag,
                replica: Some(r),
                _fallback: None,
            }),
            None => self.fallback(least_lag),
        }
    }

    fn on_primary<'a>(&'a self, permit: Option<SemaphorePermit<'a>>) -> Route<'a> {
        Route {
            pool: &self.primary,
            source: "primary".into(),
            lag_seconds: 0.0,
            replica: None,
            _fallback: permit,
        }
    }

    /// The primary in place of every replica, through the breaker.
    fn fallback(&self, least_lag: Option<f64>) -> Result<Route<'_>, NoSource> {
        self.metrics.record(&Sample {
            dimensions: vec![("Function", "query-api".into())],
            values: vec![("PrimaryFallbackReads", 1.0, Unit::Count)],
        });
        match self.fallback.try_acquire() {
            Ok(permit) => Ok(self.on_primary(Some(permit))),
            Err(_) => Err(NoSource {
                lag_seconds: least_lag,
                fallback_max: self.config.fallback_max,
            }),
        }
    }

    /// Runs `read` on the source for `consistency`. A replica that fails
    /// the read is marked down and the read is run again on the primary,
    /// so a replica going away costs one slow answer, not an error.
    pub async fn read<T, F, Fut>(
        &self,
        consistency: Consistency,
        max_lag: Option<f64>,
        read: F,
    ) -> Result<(T, Route<'_>), ReadError>
    where
        F: Fn(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let route = self
            .route(consistency, max_lag)
            .await
            .map_err(ReadError::NoSource)?;
        match read(route.pool.clone()).await {
            Ok(v) => Ok((v, route)),
            Err(e) => match route.replica {
                Some(r) => {
                    tracing::warn!(replica = %r.name, error = %e, "replica read failed; using the primary");
                    self.mark_down(r);
                    drop(route);
                    let route = self.fallback(None).map_err(ReadError::NoSource)?;
                    let v = read(route.pool.clone()).await.map_err(ReadError::Store)?;
                    Ok((v, route))
                }
                None => Err(ReadError::Store(e)),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    NoSource(NoSource),
    #[error(transparent)]
    Store(StoreError),
}
