//! Upkeep of the hot projection's physical order (migration V16): a
//! tenant's rows of `entity_jsonb` kept together, so a search reads a few
//! hundred heap pages rather than one per candidate.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::{Pool, StoreError};

/// What the flusher asks for when idle: a partition whose `tenant_id`
/// correlates with its physical order less than this is rewritten...
pub const RECLUSTER_BELOW: f64 = 0.9;
/// ...if it holds at least this many rows (smaller ones are read whole
/// from a few pages anyway).
pub const RECLUSTER_MIN_ROWS: i64 = 10_000;

/// One partition rewritten in (tenant_id, entity_id) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Reclustered {
    pub partition: String,
    pub took: Duration,
}

/// Rewrites the partition of `entity_jsonb` most out of order, if one is
/// below `below` with at least `min_rows` rows; `None` when none is. The
/// partition is locked while it is rewritten (see the migration).
pub async fn recluster_one(
    pool: &Pool,
    below: f64,
    min_rows: i64,
) -> Result<Option<Reclustered>, StoreError> {
    let started = Instant::now();
    let client = pool.get().await?;
    let partition: Option<String> = match client
        .query_one(
            "SELECT atlas_projection_recluster($1, $2)",
            &[&below, &min_rows],
        )
        .await
    {
        Ok(row) => row.get(0),
        // A long reader held the partition: another run will try again.
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::info!("a projection partition was busy; its rewrite waits for another run");
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok(partition.map(|partition| Reclustered {
        partition,
        took: started.elapsed(),
    }))
}
