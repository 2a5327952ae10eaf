//! The CDC-batch loader: an MSK batch of Debezium records into the
//! warehouse, in one load.
//!
//! Every record is decoded (`atlas-cdc`); one that can never be (bad JSON,
//! a table the loader does not take, an undecodable value) becomes a dead
//! letter with its reason and offset and never holds up the rest. The
//! changes then load in one transaction. If the load fails, the invocation
//! fails and Lambda delivers the batch again: dead letters are written
//! under their offset, so they overwrite themselves, and the load drops
//! readings it holds already, so the retry adds each reading once.

use std::sync::Arc;

use atlas_cdc::{Options, Record};
use atlas_msk::DeadLetters;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use serde::Serialize;

use crate::batch::Batch;
use crate::{Warehouse, WarehouseError};

/// The function's name: its dead letters' prefix and metric dimension.
pub const PIPELINE: &str = "cdc-loader";

/// What one invocation did; `atlas cdc load` prints it as its last line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: usize,
    /// Row changes among the records (not tombstones, heartbeats or
    /// transaction boundaries).
    pub changes: usize,
    pub loaded: u64,
    pub duplicates: u64,
    pub dead_lettered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("warehouse: {0}")]
    Warehouse(#[from] WarehouseError),
    #[error("dead-letter store: {0}")]
    DeadLetters(#[from] atlas_objects::ObjectError),
    #[error("state sink: {0}")]
    Sink(String),
}

/// A second consumer of each batch (webhooks take its hot-state changes).
/// It is given the batch before the warehouse load, and the invocation
/// fails if it fails, so Lambda delivers the batch again; it must
/// therefore take a batch twice without doing anything twice.
#[async_trait::async_trait]
pub trait StateSink: Send + Sync {
    async fn take(&self, batch: &Batch) -> Result<(), String>;
}

pub struct Loader {
    warehouse: Arc<dyn Warehouse>,
    letters: DeadLetters,
    options: Options,
    /// Set once the warehouse's schema has been applied by this process.
    schema: tokio::sync::OnceCell<()>,
    sink: Option<Arc<dyn StateSink>>,
}

impl Loader {
    pub fn new(warehouse: Arc<dyn Warehouse>, letters: DeadLetters, options: Options) -> Self {
        Self {
            warehouse,
            letters,
            options,
            schema: tokio::sync::OnceCell::new(),
            sink: None,
        }
    }

    pub fn with_sink(mut self, sink: Arc<dyn StateSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn warehouse(&self) -> &Arc<dyn Warehouse> {
        &self.warehouse
    }

    pub async fn handle(&self, event: &KafkaEvent) -> Result<Report, LoadError> {
        let (batch, poison) = self.batch(event);
        let mut report = Report {
            records: event.records.values().map(Vec::len).sum(),
            changes: batch.changes,
            ..Report::default()
        };
        for (rec, reason) in poison {
            self.letters.put(rec, &reason).await?;
            report.dead_lettered += 1;
        }
        if !batch.is_empty() {
            if let Some(sink) = &self.sink {
                sink.take(&batch).await.map_err(LoadError::Sink)?;
            }
            self.schema
                .get_or_try_init(|| self.warehouse.apply_schema())
                .await?;
            let loaded = self.warehouse.load(&batch).await?;
            report.loaded = loaded.loaded;
            report.duplicates = loaded.duplicates;
        }
        Ok(report)
    }

    /// The event's changes as one batch, and the records that can never
    /// be decoded, each with its reason.
    pub fn batch<'a>(&self, event: &'a KafkaEvent) -> (Batch, Vec<(&'a KafkaRecord, String)>) {
        let mut batch = Batch::default();
        let mut poison = Vec::new();
        for rec in atlas_msk::in_order(event) {
            let topic = rec.topic.as_deref().unwrap_or_default();
            let decoded = atlas_msk::bytes(rec.value.as_deref()).and_then(|value| {
                atlas_cdc::debezium::decode(topic, value.as_deref(), &self.options)
                    .map_err(|e| e.to_string())
            });
            match decoded {
                Ok(Record::Change(change)) => batch.add(source_of(topic), change),
                Ok(Record::Heartbeat { ts_ms: Some(ts) }) => batch.heartbeat(source_of(topic), ts),
                Ok(Record::Tombstone | Record::Heartbeat { .. } | Record::Transaction(_)) => {}
                Err(reason) => poison.push((rec, reason)),
            }
        }
        (batch, poison)
    }
}

/// The connector a topic (`<topic.prefix>.<schema>.<table>`, or its
/// heartbeats' `__debezium-heartbeat.<topic.prefix>`) comes from: its topic
/// prefix, which names the load watermark.
pub fn source_of(topic: &str) -> &str {
    if let Some(prefix) = topic.strip_prefix("__debezium-heartbeat.") {
        return prefix;
    }
    let mut parts = topic.rsplitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(prefix)) => prefix,
        _ => topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_the_topic_prefix() {
        assert_eq!(source_of("atlas.public.entity_values_ts"), "atlas");
        assert_eq!(source_of("prod.atlas.public.tenants"), "prod.atlas");
        assert_eq!(source_of("odd"), "odd");
        assert_eq!(source_of("__debezium-heartbeat.atlas"), "atlas");
    }
}
