//! The measurements, each one statement, each bounded in time.
//!
//! A replica's lag is the primary's newest `replication_heartbeat` row
//! minus the replica's newest (the seed's definition, and the query API's
//! routing uses [`heartbeat_lag`] too). That reads as zero when the
//! heartbeat writer has died, so the heartbeat's own age is measured
//! beside it. `now() - pg_last_xact_replay_timestamp()` is reported as
//! well, but it grows on an idle primary however current the replica is,
//! which is why it is not the lag.

use std::time::Duration;

use atlas_cache::HotCache;
use atlas_store::{Pool, StoreError};
use atlas_warehouse::Warehouse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::PgLsn;

/// The newest heartbeat a database holds.
pub const NEWEST_BEAT: &str = "SELECT max(\"timestamp\") FROM replication_heartbeat";

/// How far a database whose newest heartbeat is `replica` lags the primary,
/// whose newest is `primary`.
pub fn heartbeat_lag(primary: DateTime<Utc>, replica: DateTime<Utc>) -> f64 {
    (primary - replica).as_seconds_f64().max(0.0)
}

/// The longest one measurement of one database may take.
pub const MEASURE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaFigures {
    pub name: String,
    pub reachable: bool,
    /// `None` when unreachable, or when either side has no heartbeat.
    pub heartbeat_lag_s: Option<f64>,
    pub replay_age_s: Option<f64>,
    /// WAL bytes the primary has written that the replica has not replayed.
    pub replay_distance_bytes: Option<i64>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotFigures {
    pub name: String,
    pub found: bool,
    /// A consumer (Debezium) is streaming from it now.
    pub active: bool,
    /// WAL the slot keeps because its consumer has not confirmed it.
    pub retained_bytes: Option<i64>,
}

/// One measurement of everything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub measured_at: DateTime<Utc>,
    pub replicas: Vec<ReplicaFigures>,
    /// Age of the primary's newest heartbeat; `None` when it has none.
    pub heartbeat_age_s: Option<f64>,
    pub staging_depth: i64,
    /// Age of staging's oldest row; `None` when staging is empty.
    pub staging_oldest_s: Option<f64>,
    /// `None` when no slot is watched.
    pub cdc: Option<SlotFigures>,
    /// Hot projections checked against their latest readings; `None` when
    /// not sampled.
    pub divergence: Option<DivergenceFigures>,
    /// Now minus the newest source commit the warehouse holds; `None` when
    /// there is no warehouse, it holds nothing yet, or it failed.
    pub analytics_lag_s: Option<f64>,
    pub warehouse_error: Option<String>,
    /// `None` when there is no cache.
    pub cache: Option<CacheFigures>,
}

/// The hot-entity cache: whether Redis answers, and how old an entry may
/// be (the flusher drops changed entities at once; the TTL bounds what a
/// lost invalidation leaves).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheFigures {
    pub reachable: bool,
    pub ping_ms: Option<f64>,
    pub ttl_s: f64,
    pub error: Option<String>,
}

/// PINGs the cache once.
pub async fn cache(cache: &HotCache) -> CacheFigures {
    let ping = tokio::time::timeout(MEASURE_TIMEOUT, cache.ping())
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()));
    CacheFigures {
        reachable: ping.is_ok(),
        ping_ms: ping.as_ref().ok().map(|took| took.as_secs_f64() * 1000.0),
        ttl_s: cache.ttl().as_secs_f64(),
        error: ping.err(),
    }
}

/// A sample of hot projections held against their latest readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DivergenceFigures {
    pub sampled: i64,
    /// Entities whose projection differs (as `atlas reconcile` judges it).
    pub divergent: i64,
}

/// The reconcile check's rule (`atlas_store::hot::divergent`), on a sample
/// of pages of `entity_jsonb` rather than a tenant's whole time series: a
/// hot attribute whose projected value is not its latest reading, or a cold
/// one in the projection at all. An entity mid-promotion counts until the
/// background work reaches it.
const DIVERGENT_SAMPLE: &str = r#"
WITH sample AS (
    SELECT tenant_id, entity_id, hot_attrs FROM entity_jsonb TABLESAMPLE SYSTEM ($1) LIMIT $2
)
SELECT count(*),
       count(*) FILTER (WHERE
           EXISTS (SELECT 1 FROM attributes a
                   WHERE a.tenant_id = s.tenant_id AND NOT a.is_hot
                     AND s.hot_attrs ? a.attribute_name::text)
        OR EXISTS (SELECT 1 FROM attributes a
                   WHERE a.tenant_id = s.tenant_id AND a.is_hot
                     AND (s.hot_attrs -> a.attribute_name::text) IS DISTINCT FROM
                         (SELECT coalesce(to_jsonb(ts.value_int), to_jsonb(ts.value_decimal),
                                          to_jsonb(ts.value_bool), to_jsonb(ts.value_timestamp),
                                          to_jsonb(ts.value))
                          FROM entity_values_ts ts
                          WHERE ts.tenant_id = s.tenant_id AND ts.entity_id = s.entity_id
                            AND ts.attribute_id = a.attribute_id
                          ORDER BY ts.ingested_at DESC LIMIT 1)))
FROM sample s
"#;

/// About `n` projections, from whole pages (TABLESAMPLE SYSTEM, so the
/// table is never scanned whole): the percentage is sized from the
/// planner's row estimate, twice over, and the rows cut to `n`.
async fn sample_divergence(
    client: &tokio_postgres::Client,
    n: i64,
) -> Result<DivergenceFigures, StoreError> {
    let rows: f64 = client
        .query_one(
            "SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)::float8 \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'entity_jsonb'::regclass",
            &[],
        )
        .await?
        .get(0);
    let percent = if rows <= 2.0 * n as f64 {
        100.0
    } else {
        (200.0 * n as f64 / rows).clamp(0.01, 100.0)
    };
    let row = client
        .query_one(DIVERGENT_SAMPLE, &[&(percent as f32), &n])
        .await?;
    Ok(DivergenceFigures {
        sampled: row.get(0),
        divergent: row.get(1),
    })
}

/// What a replica says of itself.
struct ReplicaRead {
    newest_beat: Option<DateTime<Utc>>,
    replay_age_s: Option<f64>,
    replay_lsn: Option<PgLsn>,
}

async fn bounded<T>(work: impl Future<Output = Result<T, StoreError>>) -> Result<T, String> {
    match tokio::time::timeout(MEASURE_TIMEOUT, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {MEASURE_TIMEOUT:?}")),
    }
}

async fn read_replica(pool: &Pool) -> Result<ReplicaRead, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT (SELECT max(\"timestamp\") FROM replication_heartbeat), \
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, \
                    pg_last_wal_replay_lsn()",
            &[],
        )
        .await?;
    Ok(ReplicaRead {
        newest_beat: row.get(0),
        replay_age_s: row.get(1),
        replay_lsn: row.get(2),
    })
}

/// What the primary says: its newest heartbeat and the heartbeat's age,
/// its WAL position, staging, and the slot.
struct PrimaryRead {
    newest_beat: Option<DateTime<Utc>>,
    heartbeat_age_s: Option<f64>,
    wal_lsn: PgLsn,
    staging_depth: i64,
    staging_oldest_s: Option<f64>,
    slot: Option<SlotFigures>,
    divergence: Option<DivergenceFigures>,
}

/// Staging is counted whole: it is small while the flusher keeps up, and
/// a backlog is when its true depth matters.
async fn read_primary(
    pool: &Pool,
    slot: Option<&str>,
    divergence_sample: i64,
) -> Result<PrimaryRead, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT b.newest, extract(epoch FROM now() - b.newest)::float8, pg_current_wal_lsn(), \
                    s.depth, extract(epoch FROM now() - s.oldest)::float8 \
             FROM (SELECT max(\"timestamp\") AS newest FROM replication_heartbeat) b, \
                  (SELECT count(*) AS depth, min(staged_at) AS oldest FROM entity_values_ingest) s",
            &[],
        )
        .await?;
    let slot = match slot {
        None => None,
        Some(name) => {
            let found = client
                .query_opt(
                    "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
                     FROM pg_replication_slots WHERE slot_name = $1",
                    &[&name],
                )
                .await?;
            Some(SlotFigures {
                name: name.to_owned(),
                found: found.is_some(),
                active: found.as_ref().is_some_and(|r| r.get(0)),
                retained_bytes: found.and_then(|r| r.get(1)),
            })
        }
    };
    let divergence = match divergence_sample {
        0 => None,
        n => Some(sample_divergence(&client, n).await?),
    };
    Ok(PrimaryRead {
        divergence,
        newest_beat: row.get(0),
        heartbeat_age_s: row.get(1),
        wal_lsn: row.get(2),
        staging_depth: row.get(3),
        staging_oldest_s: row.get(4),
        slot,
    })
}

/// Measures the replicas first and the primary after, so a replica never
/// seems ahead of the primary's WAL. Fails only when the primary does.
pub async fn figures(
    primary: &Pool,
    replicas: &[(String, Pool)],
    slot: Option<&str>,
    divergence_sample: i64,
    warehouse: Option<&dyn Warehouse>,
) -> Result<Figures, StoreError> {
    // At once, so an unreachable replica's bound does not delay the rest.
    let read = futures_util::future::join_all(
        replicas
            .iter()
            .map(|(name, pool)| async move { (name, bounded(read_replica(pool)).await) }),
    )
    .await;
    let p = read_primary(primary, slot, divergence_sample).await?;
    let replicas = read
        .into_iter()
        .map(|(name, r)| match r {
            Ok(r) => ReplicaFigures {
                name: name.clone(),
                reachable: true,
                heartbeat_lag_s: p
                    .newest_beat
                    .zip(r.newest_beat)
                    .map(|(p, r)| heartbeat_lag(p, r)),
                replay_age_s: r.replay_age_s,
                replay_distance_bytes: r
                    .replay_lsn
                    .map(|l| u64::from(p.wal_lsn).saturating_sub(u64::from(l)) as i64),
                error: None,
            },
            Err(e) => ReplicaFigures {
                name: name.clone(),
                reachable: false,
                heartbeat_lag_s: None,
                replay_age_s: None,
                replay_distance_bytes: None,
                error: Some(e),
            },
        })
        .collect();
    let (analytics_lag_s, warehouse_error) = match warehouse {
        None => (None, None),
        Some(w) => match tokio::time::timeout(MEASURE_TIMEOUT * 5, w.data_as_of()).await {
            Ok(Ok(t)) => (t.map(|t| (Utc::now() - t).as_seconds_f64().max(0.0)), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some("no answer in time".to_owned())),
        },
    };
    Ok(Figures {
        measured_at: Utc::now(),
        replicas,
        heartbeat_age_s: p.heartbeat_age_s,
        staging_depth: p.staging_depth,
        staging_oldest_s: p.staging_oldest_s,
        cdc: p.slot,
        divergence: p.divergence,
        analytics_lag_s,
        warehouse_error,
        cache: None,
    })
}
