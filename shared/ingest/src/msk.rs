//! The MSK trigger on the raw telemetry topic. Each record's value is a
//! request body (`{"readings": [...]}`); its tenant is in the `tenant_id`
//! header or, failing that, the record key.
//!
//! One record never fails the invocation for the others:
//! - a record that can never succeed (bad JSON, unknown tenant, refused by
//!   the tenant's plugin, a plugin that cannot load, a value the database
//!   refuses) goes to the dead-letter store with its reason and is skipped;
//! - plugin work has a budget per invocation. Records past it are left for
//!   Lambda's retry of the batch, and the partitions' progress commits with
//!   the readings staged, so the retry carries on where this one stopped.
//!
//! Only an unreachable database (or dead-letter store) fails the
//! invocation, and then Lambda redelivers the batch. That is safe because
//! staging is idempotent downstream: the flusher keys on (tenant, entity,
//! attribute, ts) and a reading without `ts` takes the record's timestamp,
//! which redelivery repeats.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use atlas_core::TenantId;
use atlas_store::StoreError;
use atlas_store::progress::{self, Mark, Partition};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use serde::Serialize;

use crate::{IngestConfig, IngestError, IngestService, Progress, TenantBatch, parse_batch};

pub const TENANT_HEADER: &str = "tenant_id";

/// Time kept back from the Lambda deadline for staging, dead letters and
/// the answer once the plugin budget is spent.
pub const STOP_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: usize,
    pub accepted: usize,
    pub rejected_readings: usize,
    /// Records dead-lettered: they can never succeed.
    pub rejected_records: usize,
    /// Records left for Lambda's retry: the plugin budget ran out first.
    pub deferred_records: usize,
    /// Records a previous, deferred attempt at this batch had finished.
    pub skipped_records: usize,
}

/// Ingests an MSK batch. `deadline` is the invocation's, if it has one;
/// plugin work stops at whichever comes first of it (less `STOP_MARGIN`)
/// and the configured budget. Returns `Err(IngestError::Deferred)` after
/// committing, when records were left for the retry.
pub async fn handle(
    svc: &IngestService,
    event: KafkaEvent,
    deadline: Option<Instant>,
) -> Result<Report, IngestError> {
    let started = Instant::now();
    let stop = deadline
        .map(|d| d.checked_sub(STOP_MARGIN).unwrap_or(started))
        .into_iter()
        .chain([started + svc.config().msk_plugin_budget])
        .min()
        .expect("one bound at least");
    let records = atlas_msk::in_order(&event);
    let mut report = Report {
        records: records.len(),
        ..Report::default()
    };
    let mut partitions: Vec<Partition> = records.iter().map(|r| partition_of(r)).collect();
    partitions.dedup();
    let marks = {
        let client = svc.pool().get().await.map_err(StoreError::from)?;
        progress::load(&**client, &partitions).await?
    };
    let done_before = finished_offsets(&records, &marks);

    let cfg = svc.config();
    let now = chrono::Utc::now();
    let mut plans = Vec::new();
    let mut planned: Vec<&KafkaRecord> = Vec::new();
    // The last record handled in each partition, for the progress marks.
    let mut last: BTreeMap<Partition, &KafkaRecord> = BTreeMap::new();
    let mut deferred_from: Option<usize> = None;
    let mut handled = 0usize;
    for (i, rec) in records.iter().copied().enumerate() {
        let part = partition_of(rec);
        if done_before
            .get(&part)
            .is_some_and(|next| rec.offset < *next)
        {
            report.skipped_records += 1;
            last.insert(part, rec);
            continue;
        }
        // At least one record per invocation, so a retry always gets further.
        if handled > 0 && Instant::now() >= stop {
            deferred_from = Some(i);
            break;
        }
        handled += 1;
        match record_batch(rec, cfg) {
            Err(reason) => {
                dead_letter(svc, rec, &reason, &mut report).await?;
            }
            Ok(batch) => match svc.plan(batch, now).await? {
                Err(refused) => dead_letter(svc, rec, &refused.describe(), &mut report).await?,
                Ok(plan) => {
                    plans.push(Ok(plan));
                    planned.push(rec);
                }
            },
        }
        last.insert(part, rec);
    }

    let deferred = deferred_from.map_or(&[][..], |i| &records[i..]);
    report.deferred_records = deferred.len();
    let progress = progress_after(&marks, &last, deferred);
    let outcomes = svc.commit(plans, progress.as_ref()).await?;
    for (outcome, rec) in outcomes.into_iter().zip(planned) {
        match outcome {
            Ok(o) => {
                report.accepted += o.accepted;
                report.rejected_readings += o.rejected.len();
                for r in o.rejected {
                    tracing::warn!(record = %atlas_msk::at(rec), index = r.index, reason = %r.reason, "reading rejected");
                }
            }
            Err(refused) => dead_letter(svc, rec, &refused.describe(), &mut report).await?,
        }
    }
    if report.deferred_records > 0 {
        return Err(IngestError::Deferred {
            deferred: report.deferred_records,
            budget: svc.config().msk_plugin_budget,
        });
    }
    Ok(report)
}

async fn dead_letter(
    svc: &IngestService,
    rec: &KafkaRecord,
    reason: &str,
    report: &mut Report,
) -> Result<(), IngestError> {
    let letters = svc.dead_letters().ok_or(IngestError::NoDeadLetterStore)?;
    letters.put(rec, reason).await?;
    report.rejected_records += 1;
    Ok(())
}

fn partition_of(rec: &KafkaRecord) -> Partition {
    Partition {
        topic: rec.topic.clone().unwrap_or_default(),
        partition: rec.partition as i32,
    }
}

/// For each partition with a mark, the offset below which this batch's
/// records are done, when the batch still holds the record just below the
/// mark with the timestamp recorded for it. Otherwise the mark belongs to
/// some other life of the topic, and nothing is skipped.
fn finished_offsets(
    records: &[&KafkaRecord],
    marks: &HashMap<Partition, Mark>,
) -> HashMap<Partition, i64> {
    marks
        .iter()
        .filter(|(part, mark)| {
            records.iter().any(|r| {
                partition_of(r) == **part
                    && r.offset == mark.next_offset - 1
                    && r.timestamp.0 == mark.last_timestamp
            })
        })
        .map(|(part, mark)| (part.clone(), mark.next_offset))
        .collect()
}

/// Marks for the partitions that still have deferred records and were
/// begun; every other partition of the batch is finished, or untouched and
/// starts from its first record on the retry either way. The marks stored
/// before are replaced. `None` when there is nothing to store or forget,
/// as for almost every batch: it then costs the staging transaction no
/// statement.
fn progress_after(
    stored: &HashMap<Partition, Mark>,
    last: &BTreeMap<Partition, &KafkaRecord>,
    deferred: &[&KafkaRecord],
) -> Option<Progress> {
    let mut pending: Vec<Partition> = deferred.iter().map(|r| partition_of(r)).collect();
    pending.dedup();
    let marks = pending
        .into_iter()
        .filter_map(|p| {
            let r = last.get(&p)?;
            let mark = Mark {
                next_offset: r.offset + 1,
                last_timestamp: r.timestamp.0,
            };
            Some((p, mark))
        })
        .collect::<Vec<_>>();
    (!marks.is_empty() || !stored.is_empty()).then(|| Progress {
        reset: stored.keys().cloned().collect(),
        marks,
    })
}

/// One record as its tenant's batch, or why it can never be one.
pub fn record_batch(rec: &KafkaRecord, cfg: &IngestConfig) -> Result<TenantBatch, String> {
    let tenant = record_tenant(rec)?;
    let body = atlas_msk::bytes(rec.value.as_deref())?.ok_or("record has no value")?;
    let readings =
        parse_batch(&body, cfg.max_body_bytes, cfg.max_readings).map_err(|e| e.to_string())?;
    Ok(TenantBatch {
        tenant,
        readings,
        default_ts: rec.timestamp.0,
    })
}

fn record_tenant(rec: &KafkaRecord) -> Result<TenantId, String> {
    let header = rec.headers.iter().find_map(|h| h.get(TENANT_HEADER));
    let raw = match header {
        Some(bytes) => String::from_utf8(bytes.iter().map(|b| *b as u8).collect())
            .map_err(|_| "tenant_id header is not UTF-8".to_owned())?,
        None => String::from_utf8(atlas_msk::bytes(rec.key.as_deref())?.unwrap_or_default())
            .map_err(|_| "record key is not UTF-8".to_owned())?,
    };
    TenantId::parse(&raw)
        .map_err(|e| format!("no valid tenant in the tenant_id header or key: {e}"))
}
