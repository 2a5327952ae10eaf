//! The heartbeat: a row in `replication_heartbeat` every few seconds on the
//! primary. A replica's lag is then `now() - max(timestamp)` read on the
//! replica itself, which is how the query router will judge freshness.
//!
//! One invocation beats until shortly before its deadline, then prunes rows
//! past the retention. Two runs at once are harmless: each beats (more
//! rows, the same maximum), and pruning skips rows the other has locked.

use std::time::{Duration, Instant};

use crate::{Pool, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// `ATLAS_HEARTBEAT_INTERVAL_MS` (default 5000, 100 to 60000).
    pub interval: Duration,
    /// `ATLAS_HEARTBEAT_RETENTION_SECS` (default 86400): older rows are pruned.
    pub retention: Duration,
    /// `ATLAS_HEARTBEAT_STOP_MARGIN_MS` (default 2000): stop this long
    /// before the deadline.
    pub stop_margin: Duration,
    /// `ATLAS_HEARTBEAT_SOURCE` (default `primary`): the `source` column,
    /// naming the writer (a region, say) when several write.
    pub source: String,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            retention: Duration::from_secs(86_400),
            stop_margin: Duration::from_secs(2),
            source: "primary".into(),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Beats {
    pub written: u64,
    pub pruned: u64,
}

/// Rows deleted per pruning statement, so a long backlog never holds many
/// locks at once.
const PRUNE_BATCH: i64 = 10_000;

/// Beats at once and then every `interval` until `deadline - stop_margin`,
/// then prunes. `pool` must act as the worker role.
pub async fn beat_until(
    pool: &Pool,
    cfg: &HeartbeatConfig,
    deadline: Instant,
) -> Result<Beats, StoreError> {
    let stop = deadline.checked_sub(cfg.stop_margin).unwrap_or(deadline);
    let mut beats = Beats::default();
    let mut next = Instant::now();
    loop {
        beat(pool, &cfg.source).await?;
        beats.written += 1;
        next += cfg.interval;
        if next >= stop {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    beats.pruned = prune(pool, cfg.retention).await?;
    Ok(beats)
}

/// One heartbeat row, timestamped by the database's clock.
pub async fn beat(pool: &Pool, source: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("INSERT INTO replication_heartbeat (source) VALUES ($1)")
        .await?;
    client.execute(&stmt, &[&source]).await?;
    Ok(())
}

/// Deletes rows older than `retention`; returns how many.
pub async fn prune(pool: &Pool, retention: Duration) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "DELETE FROM replication_heartbeat WHERE id IN ( \
                 SELECT id FROM replication_heartbeat \
                 WHERE \"timestamp\" < now() - make_interval(secs => $1) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    let mut total = 0;
    loop {
        let n = client
            .execute(&stmt, &[&retention.as_secs_f64(), &PRUNE_BATCH])
            .await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}
