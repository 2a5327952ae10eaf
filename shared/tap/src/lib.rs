//! The change tap: what stands in for Debezium, MSK Connect and the MSK
//! event source where there are none (`atlas dev`, the tests, `atlas bench
//! cdc`).
//!
//! - [`pgoutput`]: the logical replication messages the slot yields;
//! - [`tap`]: the slot read over SQL, each change written as the connector
//!   in `infra/debezium/connector.json` writes it (`atlas_cdc::emit`), in
//!   MSK events, and the slot moved on only once they are loaded;
//! - [`run`]: that, again and again, into a sink such as the CDC-batch
//!   loader.
//!
//! The slot yields what is on disk: the flusher commits without waiting
//! for its WAL to be written (`synchronous_commit = off`), so its changes
//! reach the tap up to a few `wal_writer_delay`s (200 ms each) later.

pub mod pgoutput;
pub mod tap;

pub use tap::{Read, Tap, TapConfig, TapError};

use std::future::Future;

use aws_lambda_events::event::kafka::KafkaEvent;

/// Sends a new slot's snapshot first (see [`Tap::snapshot`]); then reads
/// the slot and hands each event to `sink`, in order, until
/// `shutdown` resolves. The slot moves on after a read's last event is
/// sunk; when the sink fails, the same changes are read again after a
/// pause, so nothing is lost and the sink sees them again (it must be
/// idempotent, as the loader is). Returns the changes sunk.
pub async fn run<S, F, E>(
    tap: &Tap,
    mut sink: S,
    shutdown: impl Future<Output = ()>,
) -> Result<u64, TapError>
where
    S: FnMut(KafkaEvent) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(shutdown);
    let mut total = 0u64;
    if tap.needs_snapshot() {
        match snapshot(tap, &mut sink).await {
            Ok(n) => total += n,
            Err(e) => {
                // Without its snapshot the slot would leave the older rows
                // out for good: drop it, so the next start takes both again.
                tracing::warn!(error = %e, "the snapshot did not load; dropping the new slot");
                tap.drop_slot().await?;
                return Err(e);
            }
        }
    }
    let mut last_heartbeat = std::time::Instant::now();
    loop {
        let read_started = chrono::Utc::now();
        let read = tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(total),
            read = tap.next() => read?,
        };
        if read.upto.is_none() && last_heartbeat.elapsed() >= tap.config().heartbeat {
            last_heartbeat = std::time::Instant::now();
            if let Err(e) = sink(tap.heartbeat(read_started)).await {
                tracing::warn!(error = %e, "the sink refused a heartbeat");
            }
        }
        let mut sunk = true;
        for event in read.events {
            if let Err(e) = sink(event).await {
                tracing::warn!(error = %e, "the sink refused a CDC batch; reading it again");
                sunk = false;
                break;
            }
        }
        if sunk && let Some(upto) = read.upto {
            tap.confirm(upto).await?;
            total += read.changes as u64;
        }
        if read.upto.is_none() || !sunk {
            tokio::select! {
                _ = &mut shutdown => return Ok(total),
                _ = tokio::time::sleep(tap.config().interval) => {}
            }
        }
    }
}

async fn snapshot<S, F, E>(tap: &Tap, sink: &mut S) -> Result<u64, TapError>
where
    S: FnMut(KafkaEvent) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let snapshot = tap.snapshot().await?;
    for event in snapshot.events {
        sink(event)
            .await
            .map_err(|e| TapError::Snapshot(e.to_string()))?;
    }
    Ok(snapshot.changes as u64)
}
