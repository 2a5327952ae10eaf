//! `atlas bench ingest`: the write path end to end, in process, against a
//! local PostgreSQL, beside a plain COPY of the same rows measured in the
//! same run.
//!
//! Workload: `tenants` tenants with `entities` entities between them and
//! `attributes` attributes each (the first `hot` of them hot), posted in
//! requests of `batch` readings. Writers run the ingest core (JSON parse,
//! catalog typing, binary COPY into staging) while flushers drain staging
//! into `entity_values_ts` and `entity_jsonb` concurrently.
//! `values_per_sec` counts a reading once it is in `entity_values_ts`:
//! readings divided by the time from the first request to an empty staging.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atlas_core::{AttributeName, DataType, TenantId};
use atlas_ingest::{IngestConfig, IngestService, TenantBatch, parse_batch};
use atlas_store::flush::{FlushConfig, flush_batch};
use atlas_store::{DbConfig, DbRole, ensure_attribute, ensure_tenant};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::try_join_all;
use indicatif::{ProgressBar, ProgressStyle};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::percentile;
use crate::scratch::ScratchDb;

use crate::BoxError;

#[derive(Debug, Clone)]
pub struct Options {
    /// A server URL whose login may create databases.
    pub server_url: String,
    pub readings: usize,
    pub tenants: usize,
    pub entities: usize,
    pub attributes: usize,
    pub hot: usize,
    pub batch: usize,
    pub writers: usize,
    pub flushers: usize,
    pub flush_batch: i64,
    pub raw_copy_streams: usize,
    /// A plugin module to make every tenant's active plugin. The run is
    /// then made twice, without and with it, side by side.
    pub plugin: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            readings: 1_000_000,
            tenants: 100,
            entities: 10_000,
            attributes: 50,
            hot: 10,
            batch: 1_000,
            writers: 2,
            flushers: 2,
            flush_batch: 20_000,
            raw_copy_streams: 2,
            plugin: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub readings: usize,
    pub values_per_sec: f64,
    pub raw_copy_values_per_sec: f64,
    pub ratio: f64,
    pub flush_lag_p99_ms: f64,
    /// Share of the readings moved by whole-slot drains rather than row by
    /// row.
    pub drained_share: f64,
    pub lost: i64,
    pub duplicated: i64,
    /// Readings per second acknowledged (durable in staging) by ingest.
    pub ack_values_per_sec: f64,
    pub writers: usize,
    pub flushers: usize,
    pub raw_copy_streams: usize,
    /// With `--plugin`: its file name, the same run without it, and how
    /// much slower acknowledgement and the whole path were with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_per_sec_without_plugin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_values_per_sec_without_plugin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_ack_slowdown: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_slowdown: Option<f64>,
}

/// One generated reading, kept typed for the raw COPY baseline.
pub(crate) struct Row {
    tenant: i64,
    entity: i64,
    attr: usize,
    value: GenValue,
    ts: DateTime<Utc>,
}

enum GenValue {
    Decimal(Decimal),
    Int(i64),
    Str(&'static str),
    Bool(bool),
}

const STATUSES: [&str; 4] = ["online", "offline", "warning", "maintenance"];

fn attr_type(a: usize) -> DataType {
    [
        DataType::Decimal,
        DataType::Int,
        DataType::String,
        DataType::Bool,
    ][a % 4]
}

fn attr_name(a: usize) -> String {
    format!("attr_{a:02}")
}

pub async fn run(opts: &Options) -> Result<Report, BoxError> {
    if opts.entities < opts.tenants
        || opts.hot > opts.attributes
        || opts.batch == 0
        || opts.readings == 0
    {
        return Err(
            "need entities >= tenants, hot <= attributes, and a non-zero batch and reading count"
                .into(),
        );
    }
    let tag = std::process::id();
    eprintln!(
        "setting up scratch databases on {}",
        atlas_store::redact_url(&opts.server_url)
    );
    let plugin = match &opts.plugin {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let db = ScratchDb::create(&opts.server_url, format!("atlas_bench_ingest_{tag}")).await?;
    let raw_db = ScratchDb::create(&opts.server_url, format!("atlas_bench_rawcopy_{tag}")).await?;
    let plugin_db = match plugin {
        Some(_) => {
            Some(ScratchDb::create(&opts.server_url, format!("atlas_bench_plugin_{tag}")).await?)
        }
        None => None,
    };
    let result = measure(
        opts,
        &db,
        &raw_db,
        plugin_db.as_ref().zip(plugin.as_deref()),
    )
    .await;
    db.drop_now().await?;
    raw_db.drop_now().await?;
    if let Some(d) = plugin_db {
        d.drop_now().await?;
    }
    result
}

async fn measure(
    opts: &Options,
    db: &ScratchDb,
    raw_db: &ScratchDb,
    plugin: Option<(&ScratchDb, &[u8])>,
) -> Result<Report, BoxError> {
    let raw_attr_ids = provision(opts, &raw_db.url).await?;
    eprintln!("generating {} readings", opts.readings);
    let (rows, requests) = generate(opts);
    let requests = Arc::new(requests);

    let base = pass(opts, &db.url, requests.clone(), None).await?;
    let with = match plugin {
        Some((plugin_db, wasm)) => Some(pass(opts, &plugin_db.url, requests, Some(wasm)).await?),
        None => None,
    };
    eprintln!(
        "raw COPY of the same rows into a fresh entity_values_ts ({} streams)",
        opts.raw_copy_streams
    );
    let raw = raw_copy(&raw_db.url, &rows, &raw_attr_ids, opts.raw_copy_streams).await?;

    let n = opts.readings as f64;
    let raw_copy_values_per_sec = n / raw.as_secs_f64();
    let main = with.as_ref().unwrap_or(&base);
    let values_per_sec = n / main.drained.as_secs_f64();
    let ack = n / main.acked.as_secs_f64();
    let (base_values, base_ack) = (n / base.drained.as_secs_f64(), n / base.acked.as_secs_f64());
    let slowdown = |with: f64, without: f64| ((1.0 - with / without) * 1000.0).round() / 1000.0;
    let mut lags = main.lags.clone();
    Ok(Report {
        bench: "ingest",
        readings: opts.readings,
        values_per_sec: round(values_per_sec),
        raw_copy_values_per_sec: round(raw_copy_values_per_sec),
        ratio: (values_per_sec / raw_copy_values_per_sec * 1000.0).round() / 1000.0,
        flush_lag_p99_ms: round(percentile(&mut lags, 0.99)),
        drained_share: (main.drained_rows as f64 / n * 1000.0).round() / 1000.0,
        lost: main.lost,
        duplicated: main.duplicated,
        ack_values_per_sec: round(ack),
        writers: opts.writers,
        flushers: opts.flushers,
        raw_copy_streams: opts.raw_copy_streams,
        plugin: opts
            .plugin
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned()),
        values_per_sec_without_plugin: with.as_ref().map(|_| round(base_values)),
        ack_values_per_sec_without_plugin: with.as_ref().map(|_| round(base_ack)),
        plugin_ack_slowdown: with.as_ref().map(|_| slowdown(ack, base_ack)),
        plugin_slowdown: with.as_ref().map(|_| slowdown(values_per_sec, base_values)),
    })
}

/// One run of the write path over `requests`: ingest writers and flushers
/// at once, then the audit.
pub(crate) struct Pass {
    pub(crate) acked: Duration,
    pub(crate) drained: Duration,
    lags: Vec<f64>,
    drained_rows: i64,
    pub(crate) lost: i64,
    pub(crate) duplicated: i64,
}

pub(crate) async fn pass(
    opts: &Options,
    url: &str,
    requests: Arc<Vec<(TenantId, String)>>,
    plugin: Option<&[u8]>,
) -> Result<Pass, BoxError> {
    provision(opts, url).await?;
    let mut app = DbConfig::new(url, DbRole::App);
    app.max_connections = opts.writers;
    let mut worker = DbConfig::new(url, DbRole::Worker);
    // At least one: `--plugin` activates the module as the worker, and a
    // pool of none waits forever (`--flushers 0 --plugin` hung).
    worker.max_connections = opts.flushers.max(1);
    let (app, worker) = (app.pool()?, worker.pool()?);
    let cfg = IngestConfig {
        max_readings: opts.batch,
        ..IngestConfig::default()
    };
    let mut svc = IngestService::new(app.clone(), cfg.clone());
    if let Some(wasm) = plugin {
        svc = svc.with_transforms(
            crate::plugin::activate_for_all(opts.tenants, wasm, &app, &worker, cfg.catalog_ttl)
                .await?,
        );
    }
    let svc = Arc::new(svc);
    let flush_cfg = FlushConfig {
        batch_size: opts.flush_batch,
        ..FlushConfig::default()
    };

    let bar = ProgressBar::new(opts.readings as u64).with_style(
        ProgressStyle::with_template(
            "{msg:10} {bar:40} {pos}/{len} readings acknowledged ({per_sec})",
        )
        .expect("static template"),
    );
    bar.set_message(if plugin.is_some() {
        "+plugin"
    } else {
        "ingesting"
    });
    let next = Arc::new(AtomicUsize::new(0));
    let writers_done = Arc::new(AtomicBool::new(false));
    let lags = Arc::new(Mutex::new(Vec::new()));
    let drained_rows = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let started = Instant::now();

    let flushers: Vec<_> = (0..opts.flushers)
        .map(|_| {
            let (pool, cfg, done, lags, drained_rows) = (
                worker.clone(),
                flush_cfg.clone(),
                writers_done.clone(),
                lags.clone(),
                drained_rows.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let b = flush_batch(&pool, &cfg).await?;
                    if b.moved > 0 {
                        lags.lock().await.push(b.max_lag_ms);
                        if b.drained {
                            drained_rows.fetch_add(b.moved, Ordering::Relaxed);
                        }
                    } else if done.load(Ordering::Acquire) {
                        return Ok::<_, atlas_store::StoreError>(());
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..opts.writers)
        .map(|_| {
            let (svc, requests, next, bar) =
                (svc.clone(), requests.clone(), next.clone(), bar.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tenant, body)) = requests.get(i) else {
                        return Ok::<_, BoxError>(());
                    };
                    let cfg = svc.config();
                    let readings =
                        parse_batch(body.as_bytes(), cfg.max_body_bytes, cfg.max_readings)?;
                    let n = readings.len();
                    let batch = TenantBatch {
                        tenant: *tenant,
                        readings,
                        default_ts: Utc::now(),
                    };
                    let out = svc
                        .ingest(vec![batch])
                        .await?
                        .pop()
                        .ok_or("no outcome")?
                        .map_err(|r| format!("batch refused: {r:?}"))?;
                    if out.accepted != n {
                        return Err(format!(
                            "ingest rejected readings: {:?}",
                            out.rejected.first()
                        )
                        .into());
                    }
                    bar.inc(n as u64);
                }
            })
        })
        .collect();
    for w in try_join_all(writers).await? {
        w?;
    }
    let acked = started.elapsed();
    writers_done.store(true, Ordering::Release);
    bar.set_message("flushing");
    for f in try_join_all(flushers).await? {
        f?;
    }
    let drained = started.elapsed();
    bar.finish_and_clear();
    eprintln!(
        "ingested in {:.2}s, flushed to entity_values_ts in {:.2}s",
        acked.as_secs_f64(),
        drained.as_secs_f64()
    );

    let (lost, duplicated) = audit(url, opts.readings as i64).await?;
    let lags = std::mem::take(&mut *lags.lock().await);
    Ok(Pass {
        acked,
        drained,
        lags,
        drained_rows: drained_rows.load(Ordering::Relaxed),
        lost,
        duplicated,
    })
}

/// Tenants and their catalogs; returns attribute ids by [tenant-1][attr].
async fn provision(opts: &Options, url: &str) -> Result<Vec<Vec<i64>>, BoxError> {
    let pool = DbConfig::new(url, DbRole::Worker).pool()?;
    let client = pool.get().await?;
    let mut ids = Vec::with_capacity(opts.tenants);
    for t in 1..=opts.tenants as i64 {
        let tenant = TenantId::new(t)?;
        ensure_tenant(&**client, tenant, &format!("bench {t}"), false).await?;
        let mut row = Vec::with_capacity(opts.attributes);
        for a in 0..opts.attributes {
            let name = AttributeName::parse(&attr_name(a))?;
            row.push(ensure_attribute(&**client, tenant, &name, attr_type(a), a < opts.hot).await?);
        }
        ids.push(row);
    }
    Ok(ids)
}

/// Readings with unique keys (each gets its own microsecond), grouped into
/// request bodies of one tenant each, round-robin over tenants.
pub(crate) fn generate(opts: &Options) -> (Vec<Row>, Vec<(TenantId, String)>) {
    let mut rng = fastrand::Rng::with_seed(42);
    let per_tenant = opts.entities / opts.tenants;
    let base = Utc::now() - chrono::Duration::minutes(10);
    let mut rows = Vec::with_capacity(opts.readings);
    let mut requests = Vec::with_capacity(opts.readings.div_ceil(opts.batch));
    let mut i = 0;
    while i < opts.readings {
        let tenant = (requests.len() % opts.tenants) as i64 + 1;
        let n = opts.batch.min(opts.readings - i);
        let mut body = String::with_capacity(n * 110);
        body.push_str(r#"{"readings":["#);
        for k in 0..n {
            let entity = (tenant - 1) * per_tenant as i64 + rng.i64(0..per_tenant as i64);
            let attr = rng.usize(0..opts.attributes);
            let ts = base + chrono::Duration::microseconds((i + k) as i64);
            let (value, json) = match attr_type(attr) {
                DataType::Decimal => {
                    let d = Decimal::new(rng.i64(-50_000..150_000), 3);
                    (GenValue::Decimal(d), d.to_string())
                }
                DataType::Int => {
                    let v = rng.i64(0..10);
                    (GenValue::Int(v), v.to_string())
                }
                DataType::String => {
                    let s = STATUSES[rng.usize(0..STATUSES.len())];
                    (GenValue::Str(s), format!("\"{s}\""))
                }
                _ => {
                    let b = rng.bool();
                    (GenValue::Bool(b), b.to_string())
                }
            };
            if k > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"entity_id":{entity},"attribute":"{}","value":{json},"ts":"{}"}}"#,
                attr_name(attr),
                ts.to_rfc3339_opts(SecondsFormat::Micros, true)
            ));
            rows.push(Row {
                tenant,
                entity,
                attr,
                value,
                ts,
            });
        }
        body.push_str("]}");
        requests.push((TenantId::new(tenant).expect("positive"), body));
        i += n;
    }
    (rows, requests)
}

/// (lost, duplicated): readings missing from `entity_values_ts` (or left
/// in staging), and rows beyond one per reading key.
async fn audit(url: &str, expected: i64) -> Result<(i64, i64), BoxError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM entity_values_ts), \
                    (SELECT count(*) FROM (SELECT DISTINCT tenant_id, entity_id, attribute_id, ingested_at \
                                           FROM entity_values_ts) k), \
                    (SELECT count(*) FROM entity_values_ingest)",
            &[],
        )
        .await?;
    let (total, distinct, staged): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    Ok((expected - distinct + staged, total - distinct))
}

async fn raw_copy(
    url: &str,
    rows: &[Row],
    attr_ids: &[Vec<i64>],
    streams: usize,
) -> Result<Duration, BoxError> {
    let chunk = rows.len().div_ceil(streams.max(1));
    let started = Instant::now();
    let tasks = rows.chunks(chunk).map(|part| async move {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        for piece in part.chunks(50_000) {
            let sink = client
                .copy_in(
                    "COPY entity_values_ts (entity_id, tenant_id, attribute_id, value, value_int, value_decimal, \
                     value_bool, ingested_at) FROM STDIN (FORMAT binary)",
                )
                .await?;
            let types = [Type::INT8, Type::INT8, Type::INT8, Type::TEXT, Type::INT8, Type::NUMERIC, Type::BOOL, Type::TIMESTAMPTZ];
            let mut w = pin!(BinaryCopyInWriter::new(sink, &types));
            for r in piece {
                let (mut s, mut i, mut d, mut b) = (None::<&str>, None::<i64>, None::<Decimal>, None::<bool>);
                match &r.value {
                    GenValue::Decimal(v) => d = Some(*v),
                    GenValue::Int(v) => i = Some(*v),
                    GenValue::Str(v) => s = Some(v),
                    GenValue::Bool(v) => b = Some(*v),
                }
                let attr = attr_ids[(r.tenant - 1) as usize][r.attr];
                let row: [&(dyn ToSql + Sync); 8] = [&r.entity, &r.tenant, &attr, &s, &i, &d, &b, &r.ts];
                w.as_mut().write(&row).await?;
            }
            w.finish().await?;
        }
        Ok::<_, BoxError>(())
    });
    try_join_all(tasks).await?;
    Ok(started.elapsed())
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_requests_cover_every_reading_once() {
        let opts = Options {
            readings: 2_500,
            batch: 1_000,
            tenants: 10,
            entities: 100,
            ..Options::default()
        };
        let (rows, reqs) = generate(&opts);
        assert_eq!(rows.len(), 2_500);
        assert_eq!(reqs.len(), 3);
        let parsed: usize = reqs
            .iter()
            .map(|(_, b)| parse_batch(b.as_bytes(), usize::MAX, 1_000).unwrap().len())
            .sum();
        assert_eq!(parsed, 2_500);
    }
}
