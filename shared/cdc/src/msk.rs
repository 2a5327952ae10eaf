//! A Lambda MSK event: records grouped under `topic-partition` keys, each
//! value base64 as Kafka held it.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;

use crate::debezium::{self, DecodeError, Options, Record};

/// Where a record sits in Kafka: with the natural key, what makes a
/// delivery recognisable when Lambda delivers it again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
}

/// Every record of `event`, by topic, partition and offset: Kafka's order
/// within a partition, whatever order the event's map came in.
pub fn records(event: &KafkaEvent) -> Vec<&KafkaRecord> {
    let mut all: Vec<&KafkaRecord> = event.records.values().flatten().collect();
    all.sort_by(|a, b| {
        (a.topic.as_deref(), a.partition, a.offset).cmp(&(
            b.topic.as_deref(),
            b.partition,
            b.offset,
        ))
    });
    all
}

pub fn offset(rec: &KafkaRecord) -> Offset {
    Offset {
        topic: rec.topic.clone().unwrap_or_default(),
        partition: rec.partition,
        offset: rec.offset,
    }
}

/// Decodes one delivered record.
pub fn decode(rec: &KafkaRecord, opts: &Options) -> Result<Record, DecodeError> {
    let value = rec
        .value
        .as_deref()
        .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
        .transpose()
        .map_err(|e| DecodeError::Base64(e.to_string()))?;
    debezium::decode(rec.topic.as_deref().unwrap_or(""), value.as_deref(), opts)
}
