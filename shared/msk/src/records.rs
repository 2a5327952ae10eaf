//! Lambda delivers an MSK batch as a map from `topic-partition` to that
//! partition's records, each with a base64 key and value.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;

/// Every record of `event`, by topic, partition and offset: the order each
/// partition was written in, whatever order the map holds them in.
pub fn in_order(event: &KafkaEvent) -> Vec<&KafkaRecord> {
    let mut records: Vec<&KafkaRecord> = event.records.values().flatten().collect();
    records
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    records
}

/// `topic-partition@offset`, for logs.
pub fn at(rec: &KafkaRecord) -> String {
    format!(
        "{}-{}@{}",
        rec.topic.as_deref().unwrap_or("?"),
        rec.partition,
        rec.offset
    )
}

/// A base64 field's bytes; `None` when the record has none (a tombstone's
/// value), or why they cannot be had.
pub fn bytes(b64: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    b64.map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("record is not base64: {e}"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_in_partition_order() {
        let rec = |p: i64, o: i64| {
            serde_json::json!({"topic": "t", "partition": p, "offset": o,
                "timestamp": 0, "timestampType": "CREATE_TIME", "headers": []})
        };
        let event: KafkaEvent = serde_json::from_value(serde_json::json!({
            "eventSource": "aws:kafka",
            "records": {"t-1": [rec(1, 7), rec(1, 3)], "t-0": [rec(0, 9)]}
        }))
        .unwrap();
        let order: Vec<_> = in_order(&event)
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(order, [(0, 9), (1, 3), (1, 7)]);
        assert_eq!(at(in_order(&event)[0]), "t-0@9");
    }

    #[test]
    fn base64_is_decoded_or_refused() {
        assert_eq!(bytes(Some("aGk=")), Ok(Some(b"hi".to_vec())));
        assert_eq!(bytes(None), Ok(None));
        assert!(bytes(Some("**")).unwrap_err().contains("not base64"));
    }
}
