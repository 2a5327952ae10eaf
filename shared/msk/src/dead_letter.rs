//! Records that can never succeed, kept with the reason. Skipping them
//! keeps a partition moving; keeping them means nothing is silently lost:
//! an operator can read why, fix the cause, and replay the raw bytes.
//!
//! Each record goes to the object store under
//! `dead-letter/<pipeline>/<topic>/<partition>/<offset>.json`, so a
//! redelivered batch overwrites its own letters instead of adding more, and
//! each one counts in the EMF metric `DeadLetterRecords`, with the pipeline
//! as its `Function` dimension.

use std::sync::Arc;

use atlas_cloud::metrics::{Metrics, Sample, Unit};
use atlas_objects::{ObjectError, ObjectStore};
use aws_lambda_events::event::kafka::KafkaRecord;
use chrono::Utc;
use serde::Serialize;

pub const PREFIX: &str = "dead-letter/";

#[derive(Clone)]
pub struct DeadLetters {
    store: Arc<dyn ObjectStore>,
    metrics: Metrics,
    /// `ingest`, `cdc-loader`: the function whose records these are.
    pipeline: &'static str,
}

/// What is kept of a record: where it came from, why it failed, and the
/// bytes exactly as Lambda delivered them (base64, as in the event).
#[derive(Debug, Serialize)]
struct Letter<'a> {
    reason: &'a str,
    topic: Option<&'a str>,
    partition: i64,
    offset: i64,
    timestamp: chrono::DateTime<Utc>,
    key: Option<&'a str>,
    value: Option<&'a str>,
    headers: Vec<(String, String)>,
    dead_lettered_at: chrono::DateTime<Utc>,
}

impl DeadLetters {
    pub fn new(store: Arc<dyn ObjectStore>, metrics: Metrics, pipeline: &'static str) -> Self {
        Self {
            store,
            metrics,
            pipeline,
        }
    }

    /// Keeps `rec` with `reason`; returns the key it was written under.
    pub async fn put(&self, rec: &KafkaRecord, reason: &str) -> Result<String, ObjectError> {
        let key = key_for(self.pipeline, rec);
        let letter = Letter {
            reason,
            topic: rec.topic.as_deref(),
            partition: rec.partition,
            offset: rec.offset,
            timestamp: rec.timestamp.0,
            key: rec.key.as_deref(),
            value: rec.value.as_deref(),
            headers: rec
                .headers
                .iter()
                .flat_map(|h| h.iter())
                .map(|(k, v)| {
                    let bytes: Vec<u8> = v.iter().map(|b| *b as u8).collect();
                    (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
                })
                .collect(),
            dead_lettered_at: Utc::now(),
        };
        let body = serde_json::to_vec_pretty(&letter).expect("letters serialize");
        self.store.put(&key, body).await?;
        self.metrics.record(&Sample {
            dimensions: vec![("Function", self.pipeline.into())],
            values: vec![("DeadLetterRecords", 1.0, Unit::Count)],
        });
        tracing::warn!(record = %key, reason, "record dead-lettered");
        Ok(key)
    }
}

/// A key the object store accepts for any topic name Kafka allows.
fn key_for(pipeline: &str, rec: &KafkaRecord) -> String {
    let topic: String = rec
        .topic
        .as_deref()
        .unwrap_or("unknown-topic")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let topic = if topic.chars().all(|c| c == '.') {
        format!("_{topic}")
    } else {
        topic
    };
    format!(
        "{PREFIX}{pipeline}/{topic}/{}/{:020}.json",
        rec.partition,
        rec.offset.max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: Option<&str>, partition: i64, offset: i64) -> KafkaRecord {
        serde_json::from_value(serde_json::json!({
            "topic": topic, "partition": partition, "offset": offset,
            "timestamp": 1_764_000_000_000i64, "timestampType": "CREATE_TIME",
            "headers": []
        }))
        .expect("a Kafka record")
    }

    #[test]
    fn keys_are_one_per_record_and_safe() {
        assert_eq!(
            key_for("ingest", &record(Some("raw-telemetry"), 3, 42)),
            "dead-letter/ingest/raw-telemetry/3/00000000000000000042.json"
        );
        assert_eq!(
            key_for("cdc-loader", &record(Some("a/b c"), 0, 1)),
            "dead-letter/cdc-loader/a_b_c/0/00000000000000000001.json"
        );
        assert!(
            key_for("ingest", &record(Some(".."), 0, 1)).starts_with("dead-letter/ingest/_../")
        );
        assert!(key_for("ingest", &record(None, 0, 1)).contains("unknown-topic"));
    }
}
