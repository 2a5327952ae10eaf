//! The MSK trigger on the raw telemetry topic. Each record's value is a
//! request body (`{"readings": [...]}`); its tenant is in the `tenant_id`
//! header or, failing that, the record key.
//!
//! A record that can never succeed (bad JSON, unknown tenant, refused by
//! the tenant's plugin) is logged and skipped, so one poison record cannot block its partition. A database
//! failure fails the whole invocation, and Lambda redelivers the batch;
//! that is safe because staging is idempotent downstream: the flusher keys
//! on (tenant, entity, attribute, ts) and a reading without `ts` takes the
//! record's timestamp, which redelivery repeats.

use atlas_core::TenantId;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use serde::Serialize;

use crate::{IngestError, IngestService, Refused, TenantBatch, parse_batch};

pub const TENANT_HEADER: &str = "tenant_id";

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: usize,
    pub accepted: usize,
    pub rejected_readings: usize,
    pub rejected_records: usize,
}

pub async fn handle(svc: &IngestService, event: KafkaEvent) -> Result<Report, IngestError> {
    let mut records: Vec<&KafkaRecord> = event.records.values().flatten().collect();
    records
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    let cfg = svc.config();
    let mut report = Report {
        records: records.len(),
        ..Report::default()
    };
    let mut batches = Vec::new();
    let mut origins = Vec::new();
    for rec in records {
        let at = format!(
            "{}-{}@{}",
            rec.topic.as_deref().unwrap_or("?"),
            rec.partition,
            rec.offset
        );
        let parsed = record_tenant(rec).and_then(|tenant| {
            let body = decode(rec.value.as_deref())?;
            let readings = parse_batch(&body, cfg.max_body_bytes, cfg.max_readings)
                .map_err(|e| e.to_string())?;
            Ok(TenantBatch {
                tenant,
                readings,
                default_ts: rec.timestamp.0,
            })
        });
        match parsed {
            Ok(b) => {
                batches.push(b);
                origins.push(at);
            }
            Err(reason) => {
                report.rejected_records += 1;
                tracing::warn!(record = %at, %reason, "skipping unprocessable MSK record");
            }
        }
    }
    for (outcome, at) in svc.ingest(batches).await?.into_iter().zip(origins) {
        match outcome {
            Ok(o) => {
                report.accepted += o.accepted;
                report.rejected_readings += o.rejected.len();
                for r in o.rejected {
                    tracing::warn!(record = %at, index = r.index, reason = %r.reason, "reading rejected");
                }
            }
            Err(Refused::UnknownTenant) => {
                report.rejected_records += 1;
                tracing::warn!(record = %at, "skipping MSK record: tenant does not exist or is inactive");
            }
            Err(Refused::Plugin { run, message }) => {
                report.rejected_records += 1;
                tracing::warn!(record = %at, plugin = %run.name, version = run.version, %message, "skipping MSK record: the tenant's plugin rejected it");
            }
        }
    }
    Ok(report)
}

fn record_tenant(rec: &KafkaRecord) -> Result<TenantId, String> {
    let header = rec.headers.iter().find_map(|h| h.get(TENANT_HEADER));
    let raw = match header {
        Some(bytes) => String::from_utf8(bytes.iter().map(|b| *b as u8).collect())
            .map_err(|_| "tenant_id header is not UTF-8".to_owned())?,
        None => String::from_utf8(decode(rec.key.as_deref())?)
            .map_err(|_| "record key is not UTF-8".to_owned())?,
    };
    TenantId::parse(&raw)
        .map_err(|e| format!("no valid tenant in the tenant_id header or key: {e}"))
}

fn decode(b64: Option<&str>) -> Result<Vec<u8>, String> {
    let b64 = b64.ok_or("record has no value")?;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("record is not base64: {e}"))
}
