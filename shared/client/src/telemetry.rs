//! Writing telemetry (`POST /v1/telemetry`), in batches.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Body, Client, ClientError};

/// One reading, as the API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub entity_id: u64,
    pub attribute: String,
    pub value: Value,
    /// When it was measured; the API's receive time when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
}

impl Reading {
    pub fn new(entity_id: u64, attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            entity_id,
            attribute: attribute.into(),
            value: value.into(),
            ts: None,
            entity_type: None,
        }
    }
}

/// A refused reading: its index among the readings the caller passed, and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
    /// `plugin_output` when the tenant's plugin produced the reading, and
    /// `index` counts the plugin's output of that request instead.
    #[serde(default)]
    pub of: Option<String>,
}

/// What became of all the readings of one `send_readings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Acknowledged: durable, and flushed within seconds.
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
    /// Requests it took.
    pub requests: usize,
}

#[derive(Deserialize)]
struct Answer {
    accepted: usize,
    rejected: Vec<Rejection>,
}

impl Client {
    /// The API's default `ATLAS_MAX_READINGS`: readings per request.
    pub const BATCH: usize = 10_000;

    /// Sends `readings` in requests of at most `Client::BATCH`, in order.
    /// A refused reading does not stop the rest; its index is the one it
    /// has in `readings`.
    pub async fn send_readings(&self, readings: &[Reading]) -> Result<Sent, ClientError> {
        let mut sent = Sent::default();
        for (n, chunk) in readings.chunks(Self::BATCH).enumerate() {
            let body = Body::Json(json!({ "readings": chunk }));
            let answer: Answer = self
                .call_as(Method::POST, "/v1/telemetry", Some(body))
                .await?;
            sent.accepted += answer.accepted;
            let offset = n * Self::BATCH;
            sent.rejected
                .extend(answer.rejected.into_iter().map(|r| Rejection {
                    index: if r.of.is_none() {
                        r.index + offset
                    } else {
                        r.index
                    },
                    ..r
                }));
            sent.requests += 1;
        }
        Ok(sent)
    }
}
