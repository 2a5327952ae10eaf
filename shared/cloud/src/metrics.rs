//! The metrics port. In Lambda, metrics are CloudWatch Embedded Metric Format
//! log lines: CloudWatch extracts them from the log stream, so no SDK call
//! and no network round trip sits on the hot path.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value, json};

/// CloudWatch metric units we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One set of metrics that share dimensions, e.g. one flush batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub dimensions: Vec<(&'static str, String)>,
    pub values: Vec<(&'static str, f64, Unit)>,
}

pub trait MetricsSink: Send + Sync {
    fn record(&self, sample: &Sample);
}

pub type Metrics = Arc<dyn MetricsSink>;

/// Writes EMF lines to stdout, where the Lambda log agent picks them up.
pub struct Emf {
    namespace: String,
}

impl Emf {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The EMF document for a sample, as one JSON object.
    pub fn document(&self, sample: &Sample, timestamp_ms: i64) -> Value {
        let dims: Vec<&str> = sample.dimensions.iter().map(|(k, _)| *k).collect();
        let defs: Vec<Value> = sample
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": self.namespace, "Dimensions": [dims], "Metrics": defs}],
            }),
        );
        for (k, v) in &sample.dimensions {
            doc.insert((*k).into(), Value::String(v.clone()));
        }
        for (name, v, _) in &sample.values {
            doc.insert((*name).into(), json!(v));
        }
        Value::Object(doc)
    }
}

impl MetricsSink for Emf {
    fn record(&self, sample: &Sample) {
        let line = self.document(sample, chrono::Utc::now().timestamp_millis());
        // A failed stdout write must never fail the flush it describes.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// Logs samples at debug level; the local stack uses it to keep stdout quiet.
pub struct TracingSink;

impl MetricsSink for TracingSink {
    fn record(&self, sample: &Sample) {
        tracing::debug!(?sample, "metrics");
    }
}

/// EMF inside Lambda, tracing elsewhere.
pub fn from_env(namespace: &str) -> Metrics {
    if crate::telemetry::in_lambda() {
        Arc::new(Emf::new(namespace))
    } else {
        Arc::new(TracingSink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_names_every_metric_and_dimension() {
        let sample = Sample {
            dimensions: vec![("Function", "flusher".into())],
            values: vec![
                ("RowsMoved", 250.0, Unit::Count),
                ("BatchMs", 12.5, Unit::Milliseconds),
            ],
        };
        let doc = Emf::new("Atlas").document(&sample, 1_700_000_000_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Atlas");
        assert_eq!(cw["Dimensions"], json!([["Function"]]));
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "BatchMs", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["Function"], "flusher");
        assert_eq!(doc["RowsMoved"], 250.0);
    }
}
