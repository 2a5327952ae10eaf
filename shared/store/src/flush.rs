//! Staging → `entity_values_ts` (every attribute) + `entity_jsonb` (hot
//! attributes) + `entities` (new ones), one batch per transaction.
//!
//! Staging is sixteen slots, one per second (migration V15). A batch takes
//! one of two shapes:
//! - a slot whose second is over is *drained*: taken whole under a table
//!   lock, moved in one statement and emptied with TRUNCATE;
//! - otherwise the slot being written is flushed *row by row*: the oldest free
//!   rows are claimed with `FOR UPDATE SKIP LOCKED` and deleted in the
//!   statement that inserts them downstream.
//!
//! Either way:
//! - a flusher killed mid-batch rolls back and leaves its rows in staging;
//! - two flushers never move the same row;
//! - a row already in `entity_values_ts` (a replay) is skipped by its key.

use std::time::{Duration, Instant};

use atlas_cloud::metrics::{Metrics, Sample, Unit};
use atlas_core::AcceptWindow;
use tokio_postgres::error::SqlState;

use crate::projection::{RECLUSTER_BELOW, RECLUSTER_MIN_ROWS, recluster_one};
use crate::{Pool, StoreError, Transaction, ensure_partitions};

/// The batch statement over `moved`, the rows it takes out of staging;
/// `$conflict` is what the time-series insert does about a key that is
/// already there.
macro_rules! flush_sql {
    ($moved:literal, $conflict:literal) => {
        concat!(
            "\nWITH moved AS (",
            $moved,
            r#"
), ts AS (
    -- Key order: two flushers meeting the same replayed keys wait on each
    -- other in one direction only, and the primary key's B-tree fills in order.
    INSERT INTO entity_values_ts (entity_id, tenant_id, attribute_id, value, value_int, value_decimal,
                                  value_bool, value_timestamp, ingested_at)
    SELECT entity_id, tenant_id, attribute_id, value, value_int, value_decimal,
           value_bool, value_timestamp, ingested_at
    FROM moved
    ORDER BY tenant_id, entity_id, attribute_id, ingested_at
    "#,
            $conflict,
            r#"    RETURNING 1
), ents AS (
    INSERT INTO entities (entity_id, tenant_id, entity_type)
    SELECT entity_id, tenant_id, coalesce(max(entity_type), 'device')
    FROM moved
    GROUP BY tenant_id, entity_id
    ORDER BY tenant_id, entity_id
    ON CONFLICT DO NOTHING
), latest AS (
    SELECT DISTINCT ON (m.tenant_id, m.entity_id, m.attribute_id)
           m.tenant_id, m.entity_id, a.attribute_name, m.ingested_at,
           coalesce(to_jsonb(m.value_int), to_jsonb(m.value_decimal), to_jsonb(m.value_bool),
                    to_jsonb(m.value_timestamp), to_jsonb(m.value)) AS v
    FROM moved m
    JOIN attributes a ON a.tenant_id = m.tenant_id AND a.attribute_id = m.attribute_id AND a.is_hot
    ORDER BY m.tenant_id, m.entity_id, m.attribute_id, m.ingested_at DESC
), hot AS (
    -- Ordered so concurrent flushers lock projection rows in one global order.
    INSERT INTO entity_jsonb AS ej (tenant_id, entity_id, hot_attrs, hot_attrs_ts, updated_at)
    SELECT tenant_id, entity_id,
           jsonb_object_agg(attribute_name, v),
           jsonb_object_agg(attribute_name, (extract(epoch FROM ingested_at) * 1000000)::bigint),
           max(ingested_at)
    FROM latest
    GROUP BY tenant_id, entity_id
    ORDER BY tenant_id, entity_id
    ON CONFLICT (tenant_id, entity_id) DO UPDATE SET
        hot_attrs = atlas_hot_merge(ej.hot_attrs, ej.hot_attrs_ts, EXCLUDED.hot_attrs, EXCLUDED.hot_attrs_ts),
        hot_attrs_ts = atlas_hot_merge(ej.hot_attrs_ts, ej.hot_attrs_ts, EXCLUDED.hot_attrs_ts, EXCLUDED.hot_attrs_ts),
        updated_at = greatest(ej.updated_at, EXCLUDED.updated_at)
    RETURNING tenant_id, entity_id
)
SELECT (SELECT count(*) FROM moved),
       (SELECT count(*) FROM ts),
       (SELECT count(*) FROM hot),
       coalesce((SELECT extract(epoch FROM now() - min(staged_at)) * 1000 FROM moved), 0)::float8,
       coalesce((SELECT sum(s.n_live_tup) FROM pg_stat_user_tables s JOIN pg_inherits i ON i.inhrelid = s.relid
                 WHERE i.inhparent = 'entity_values_ingest'::regclass), 0)::bigint,
       coalesce((SELECT array_agg(tenant_id) FROM hot), '{}'),
       coalesce((SELECT array_agg(entity_id) FROM hot), '{}')
"#
        )
    };
}

/// Row by row: the oldest free rows of slot `$3` whose tenants (`$2`) the
/// batch has locked, at most `$1`. `slot = $3` keeps the statement on one
/// partition, where a ctid names one row.
macro_rules! rows_sql {
    ($conflict:literal) => {
        flush_sql!(
            r#"
    DELETE FROM entity_values_ingest
    WHERE slot = $3
      AND ctid = ANY (ARRAY(SELECT ctid FROM entity_values_ingest
                            WHERE slot = $3 AND tenant_id = ANY ($2::bigint[])
                            LIMIT $1 FOR UPDATE SKIP LOCKED))
    RETURNING *"#,
            $conflict
        )
    };
}

/// A drain: everything in slot `$1`, which the batch holds locked.
macro_rules! drain_sql {
    ($conflict:literal) => {
        flush_sql!(
            "\n    SELECT * FROM entity_values_ingest WHERE slot = $1",
            $conflict
        )
    };
}

/// Replays are rare, so batches first insert without `ON CONFLICT`: the
/// speculative-insertion bookkeeping costs about a quarter of the insert.
/// A batch that meets a key already stored fails as a whole, and is rerun
/// in `Safe` mode, which skips such keys.
const ROWS_FAST: &str = rows_sql!("");
const ROWS_SAFE: &str = rows_sql!("ON CONFLICT DO NOTHING");
const DRAIN_FAST: &str = drain_sql!("");
const DRAIN_SAFE: &str = drain_sql!("ON CONFLICT DO NOTHING");

/// How a batch treats readings whose key is already in `entity_values_ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Assume there are none; a duplicate fails the batch.
    Fast,
    /// Skip them.
    Safe,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Rows taken out of staging.
    pub moved: i64,
    /// Rows new to `entity_values_ts`; fewer than `moved` means replays.
    pub inserted: i64,
    /// Entities whose hot projection changed.
    pub projected: i64,
    /// Age of the oldest row in the batch: acknowledgement → flushed.
    pub max_lag_ms: f64,
    /// Rows left in staging (the statistics' estimate).
    pub staging_depth: i64,
    pub elapsed: Duration,
    /// `(tenant_id, entity_id)` of each entity whose projection changed.
    pub changed: Vec<(i64, i64)>,
    /// The batch was a whole slot, drained and emptied; another slot may
    /// be ready too.
    pub drained: bool,
}

#[derive(Debug, Clone)]
pub struct FlushConfig {
    /// `ATLAS_FLUSH_BATCH` (1 to 1,000,000): staged rows per row-by-row
    /// batch.
    pub batch_size: i64,
    /// `ATLAS_FLUSH_DRAIN_MB` (1 to 1024): the biggest slot drained whole in
    /// one batch; a bigger one (a backlog) goes `batch_size` rows at a time.
    pub drain_max_bytes: i64,
    /// `ATLAS_FLUSH_INTERVAL_MS` (100 to 1000): pause between batches when
    /// staging is drained.
    pub idle_interval: Duration,
    /// `ATLAS_FLUSH_STOP_MARGIN_MS`: stop this long before the deadline, so
    /// the last batch can commit.
    pub stop_margin: Duration,
    /// `ATLAS_FLUSH_MAX_RUN_MS` (0: none): work at most this long per run,
    /// whatever the deadline says.
    pub max_run: Option<Duration>,
    /// Time a run must have left to rewrite a projection partition (about
    /// a second per 160,000 rows), so the rewrite ends inside the run.
    pub recluster_headroom: Duration,
    pub window: AcceptWindow,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            batch_size: 20_000,
            // ~600,000 staged readings: a few seconds of a busy second.
            drain_max_bytes: 64 << 20,
            idle_interval: Duration::from_millis(250),
            stop_margin: Duration::from_secs(3),
            max_run: None,
            recluster_headroom: Duration::from_secs(10),
            window: AcceptWindow::default(),
        }
    }
}

/// Flushes one batch. Transaction conflicts are retried; a reading whose
/// month has no partition yet gets one and the batch is retried, so neither
/// loses a row: until the batch commits, its rows stay in staging.
pub async fn flush_batch(pool: &Pool, cfg: &FlushConfig) -> Result<Batch, StoreError> {
    const ATTEMPTS: u32 = 10;
    let mut attempt = 0;
    let mut mode = Mode::Fast;
    loop {
        attempt += 1;
        match try_flush(pool, cfg, mode).await {
            Ok(b) => return Ok(b),
            Err(e) if mode == Mode::Fast && e.sql_state() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tracing::debug!("batch holds replayed readings; flushing it again, skipping them");
                mode = Mode::Safe;
            }
            Err(e) if attempt < ATTEMPTS && e.is_retryable() => {
                tracing::debug!(error = %e, attempt, "flush conflict; retrying");
                // Jitter, so two flushers that just collided do not collide again.
                let ms = u64::from(attempt) * 10 + fastrand::u64(0..25);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Err(e) if attempt < ATTEMPTS && e.sql_state() == Some(&SqlState::CHECK_VIOLATION) => {
                // "no partition of relation found for row": cover what staging holds.
                let client = pool.get().await?;
                client
                    .execute(
                        "SELECT atlas_ensure_ts_partitions(min(ingested_at), max(ingested_at)) \
                         FROM entity_values_ingest HAVING count(*) > 0",
                        &[],
                    )
                    .await?;
                tracing::warn!(error = %e, "created a missing time-series partition during flush");
            }
            Err(e) => return Err(e),
        }
    }
}

async fn try_flush(pool: &Pool, cfg: &FlushConfig, mode: Mode) -> Result<Batch, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let batch = flush_in(&tx, cfg, mode).await?;
    tx.commit().await?;
    Ok(batch)
}

/// The namespace of the advisory locks (two-key form, the slot as second
/// key) by which flushers share out the slots to drain ("ATST" in ASCII).
pub const STAGING_LOCK: i32 = 0x4154_5354;

/// A slot whose second is over: nothing starts staging into it any more.
const DRAIN_AGE: i16 = 1;

/// One batch inside the caller's transaction; nothing is final until the
/// caller commits. Exposed so tests can kill a flusher mid-batch.
///
/// It drains the oldest slot old enough that no other flusher holds
/// (`atlas_staging_pick`), in `batch_size` pieces if it is bigger than
/// `drain_max_bytes`; with none, it flushes the young slots row by row,
/// older first. An empty batch means staging had nothing this flusher
/// could take.
pub async fn flush_in(
    tx: &Transaction<'_>,
    cfg: &FlushConfig,
    mode: Mode,
) -> Result<Batch, StoreError> {
    let started = Instant::now();
    // The batch need not wait for its WAL to reach disk: if the server
    // crashes first, the whole transaction is lost, its staging deletes with
    // it, and the rows (whose staging inserts were committed durably before
    // the 202) are flushed again. WAL is replayed in order, so a later
    // synchronous commit also makes this one durable.
    //
    // Oldest first is what keeps the flush lag down, so row-by-row scans
    // start at the heap's head: a synchronized scan (PostgreSQL's default
    // once a table outgrows a quarter of shared_buffers) would start where
    // another flusher's scan is, among newer rows.
    //
    // Each batch is planned with its own values: a generic plan, kept for
    // the connection's life, may have been made while staging was small, and
    // a plan that scans staging testing every row against the claimed ctids
    // took 9 s for 10,000 rows, holding their tenants' locks.
    tx.batch_execute(
        "SET LOCAL synchronous_commit = off; SET LOCAL synchronize_seqscans = off; \
         SET LOCAL plan_cache_mode = force_custom_plan",
    )
    .await?;
    let limit = cfg.batch_size;
    'pick: loop {
        let slots = tx
            .query(
                "SELECT slot, bytes, claimed FROM atlas_staging_pick($1, $2)",
                &[&DRAIN_AGE, &STAGING_LOCK],
            )
            .await?;
        for row in slots {
            let (slot, bytes, claimed): (i16, i64, bool) = (row.get(0), row.get(1), row.get(2));
            let batch = if !claimed {
                move_rows(tx, slot, limit, mode).await?
            } else if bytes <= cfg.drain_max_bytes {
                let b = move_rows(tx, slot, i64::MAX, mode).await?;
                tx.execute("SELECT atlas_staging_clear($1)", &[&slot])
                    .await?;
                Batch { drained: true, ..b }
            } else {
                let b = move_rows(tx, slot, limit, mode).await?;
                if b.moved < limit {
                    // The table lock keeps writers out: the slot is now empty.
                    tx.execute("SELECT atlas_staging_clear($1)", &[&slot])
                        .await?;
                }
                b
            };
            if batch.moved > 0 {
                return Ok(Batch {
                    elapsed: started.elapsed(),
                    ..batch
                });
            }
            if claimed {
                // It held dead rows only, and is empty now (its size reads
                // 0 from here on): pick again, older slots before young ones.
                continue 'pick;
            }
        }
        return Ok(Batch {
            elapsed: started.elapsed(),
            ..Batch::default()
        });
    }
}

/// Moves up to `limit` of `slot`'s oldest free rows; `i64::MAX` means all
/// of a slot the caller holds locked, which is then read without claiming
/// rows one by one.
///
/// The projection locks order batches against promotions and demotions
/// (`hot::request` takes its tenant's exclusively): a batch either commits
/// before the attribute flips, so the background work sees its rows, or
/// takes its snapshot after, so it sees the new hotness. So a first
/// statement locks, shared and in ascending order, the tenants of the rows
/// at the slot's head (the ones the batch will most likely take), and the
/// batch statement, whose snapshot follows the locks, moves rows of those
/// tenants alone.
async fn move_rows(
    tx: &Transaction<'_>,
    slot: i16,
    limit: i64,
    mode: Mode,
) -> Result<Batch, StoreError> {
    let lock = tx
        .prepare_cached(
            "SELECT ARRAY(SELECT t FROM (SELECT DISTINCT tenant_id AS t \
                                         FROM (SELECT tenant_id FROM entity_values_ingest \
                                               WHERE slot = $3 LIMIT $2) head \
                                         ORDER BY t) o \
                          WHERE pg_advisory_xact_lock_shared($1, atlas_projection_lock_key(t)) IS NOT NULL)",
        )
        .await?;
    let tenants: Vec<i64> = tx
        .query_one(&lock, &[&crate::hot::PROJECTION_LOCK, &limit, &slot])
        .await?
        .get(0);
    let row = if limit == i64::MAX {
        let stmt = tx
            .prepare_cached(match mode {
                Mode::Fast => DRAIN_FAST,
                Mode::Safe => DRAIN_SAFE,
            })
            .await?;
        tx.query_one(&stmt, &[&slot]).await?
    } else {
        let stmt = tx
            .prepare_cached(match mode {
                Mode::Fast => ROWS_FAST,
                Mode::Safe => ROWS_SAFE,
            })
            .await?;
        tx.query_one(&stmt, &[&limit, &tenants, &slot]).await?
    };
    let tenants: Vec<i64> = row.get(5);
    let entities: Vec<i64> = row.get(6);
    Ok(Batch {
        moved: row.get(0),
        inserted: row.get(1),
        projected: row.get(2),
        max_lag_ms: row.get(3),
        staging_depth: row.get(4),
        elapsed: Duration::ZERO,
        changed: tenants.into_iter().zip(entities).collect(),
        drained: false,
    })
}

/// Totals over one run of the loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    pub batches: u64,
    pub moved: i64,
    pub inserted: i64,
}

/// Told, after each batch commits, which entities' hot projection changed:
/// a cache of projections drops them, so no cached answer outlives the
/// value it shows by more than the cache's TTL.
#[async_trait::async_trait]
pub trait ProjectionListener: Send + Sync {
    async fn changed(&self, entities: &[(i64, i64)]);
}

/// A flusher as the function runs it: the worker pool, its settings, where
/// its metrics go and who hears of changed projections.
pub struct Flusher {
    pub pool: Pool,
    pub config: FlushConfig,
    pub metrics: Metrics,
    pub listener: Option<std::sync::Arc<dyn ProjectionListener>>,
}

impl Flusher {
    pub fn with_listener(mut self, listener: std::sync::Arc<dyn ProjectionListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    pub async fn run_until(&self, deadline: Instant) -> Result<Totals, StoreError> {
        run_until(
            &self.pool,
            &self.config,
            deadline,
            &self.metrics,
            self.listener.as_deref(),
        )
        .await
    }
}

/// Entities per batch of promotion or demotion work.
pub const HOT_BATCH: i64 = 1000;

/// Flushes until `deadline - stop_margin`, emitting one metrics sample per
/// non-empty batch, and works off promotions and demotions when staging is
/// empty, then puts at most one partition of the projection back in tenant
/// order. Full batches and drains follow each other at once; when staging
/// runs dry the loop waits `idle_interval`.
pub async fn run_until(
    pool: &Pool,
    cfg: &FlushConfig,
    deadline: Instant,
    metrics: &Metrics,
    listener: Option<&dyn ProjectionListener>,
) -> Result<Totals, StoreError> {
    let deadline = match cfg.max_run {
        Some(max) => deadline.min(Instant::now() + max + cfg.stop_margin),
        None => deadline,
    };
    let client = pool.get().await?;
    ensure_partitions(&**client, &cfg.window).await?;
    drop(client);
    let mut totals = Totals::default();
    // One partition of the projection per run at most: each rewrite holds
    // its partition's tenants up for a moment.
    let mut reclustered = false;
    while Instant::now() + cfg.stop_margin < deadline {
        let b = flush_batch(pool, cfg).await?;
        totals.batches += 1;
        totals.moved += b.moved;
        totals.inserted += b.inserted;
        if b.moved > 0 {
            metrics.record(&sample(&b));
        }
        if let Some(l) = listener
            && !b.changed.is_empty()
        {
            l.changed(&b.changed).await;
        }
        if b.moved < cfg.batch_size && !b.drained {
            // Staging is drained: spend the idle time on promotions and
            // demotions, then look at staging again before the next batch.
            if let Some(w) = crate::hot::work_batch(pool, HOT_BATCH).await? {
                if let Some(l) = listener
                    && !w.changed.is_empty()
                {
                    l.changed(&w.changed).await;
                }
                continue;
            }
            if !reclustered && Instant::now() + cfg.stop_margin + cfg.recluster_headroom < deadline
            {
                reclustered = true;
                if let Some(r) = recluster_one(pool, RECLUSTER_BELOW, RECLUSTER_MIN_ROWS).await? {
                    tracing::info!(
                        partition = %r.partition,
                        ms = r.took.as_millis() as u64,
                        "rewrote a projection partition in tenant order"
                    );
                    continue;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now() + cfg.stop_margin);
            tokio::time::sleep(cfg.idle_interval.min(left)).await;
        }
    }
    Ok(totals)
}

fn sample(b: &Batch) -> Sample {
    Sample {
        dimensions: vec![("Function", "flusher".into())],
        values: vec![
            ("RowsMoved", b.moved as f64, Unit::Count),
            ("RowsInserted", b.inserted as f64, Unit::Count),
            ("EntitiesProjected", b.projected as f64, Unit::Count),
            (
                "BatchMs",
                b.elapsed.as_secs_f64() * 1000.0,
                Unit::Milliseconds,
            ),
            ("FlushLagMs", b.max_lag_ms, Unit::Milliseconds),
            ("StagingDepth", b.staging_depth as f64, Unit::Count),
            ("SlotsDrained", u8::from(b.drained).into(), Unit::Count),
        ],
    }
}
