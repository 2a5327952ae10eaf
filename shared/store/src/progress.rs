//! How far a deferred MSK batch got (`ingest_progress`, migration V5).
//!
//! An ingest invocation that runs out of its plugin budget stages what it
//! finished, records each unfinished partition's next offset in the same
//! transaction, and fails so that Lambda delivers the batch again. The
//! retry skips what was done instead of redoing it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use crate::StoreError;

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
}

/// Where a partition's unfinished work starts: records below `next_offset`
/// are done, and the one just below it had `last_timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub next_offset: i64,
    pub last_timestamp: DateTime<Utc>,
}

/// The marks recorded for these partitions.
pub async fn load(
    client: &impl GenericClient,
    partitions: &[Partition],
) -> Result<HashMap<Partition, Mark>, StoreError> {
    if partitions.is_empty() {
        return Ok(HashMap::new());
    }
    let topics: Vec<&str> = partitions.iter().map(|p| p.topic.as_str()).collect();
    let numbers: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
    let rows = client
        .query(
            "SELECT topic, partition, next_offset, last_timestamp FROM ingest_progress \
             WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))",
            &[&topics, &numbers],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                Partition {
                    topic: r.get(0),
                    partition: r.get(1),
                },
                Mark {
                    next_offset: r.get(2),
                    last_timestamp: r.get(3),
                },
            )
        })
        .collect())
}

/// Forgets the marks of every partition in `reset`, then records `marks`,
/// inside the caller's transaction, so they commit with the staged readings.
pub async fn save(
    client: &impl GenericClient,
    reset: &[Partition],
    marks: &[(Partition, Mark)],
) -> Result<(), StoreError> {
    if !reset.is_empty() {
        let topics: Vec<&str> = reset.iter().map(|p| p.topic.as_str()).collect();
        let numbers: Vec<i32> = reset.iter().map(|p| p.partition).collect();
        client
            .execute(
                "DELETE FROM ingest_progress \
                 WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))",
                &[&topics, &numbers],
            )
            .await?;
    }
    for (p, m) in marks {
        client
            .execute(
                "INSERT INTO ingest_progress (topic, partition, next_offset, last_timestamp) \
                 VALUES ($1, $2, $3, $4)",
                &[&p.topic, &p.partition, &m.next_offset, &m.last_timestamp],
            )
            .await?;
    }
    Ok(())
}
