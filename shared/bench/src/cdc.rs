//! `atlas bench cdc`: changes from PostgreSQL into the warehouse, end to
//! end, in process. The ingest bench's workload is written and flushed as
//! there; meanwhile the change tap reads the slot and the CDC-batch loader
//! loads each event into a PostgreSQL warehouse (twice with `redeliver`),
//! as `atlas dev` runs them.
//!
//! - `e2e_lag_*`: per change, from its commit in PostgreSQL to the moment
//!   the load holding it has committed in the warehouse;
//! - `changes_per_sec`: changes loaded over the time from the first
//!   request to the last change loaded;
//! - `loader_changes_per_sec`: the loader alone, on the first events of
//!   the run prepared in memory, into a fresh warehouse;
//! - `parquet_readings_per_sec` and `parquet_bytes_per_reading`: the
//!   Redshift adapter's stage file for the same events' readings, written
//!   alone (the one part of a Redshift load that runs here);
//! - `lost` and `duplicates`: readings of `entity_values_ts` the warehouse
//!   lacks (or holds that the source does not), and readings counted more
//!   than once in `agg_daily_entity_stats`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::{DbConfig, DbRole};
use atlas_warehouse::{Loader, PgWarehouse};
use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::ingest;
use crate::scratch::ScratchDb;
use crate::{percentile, round3};

use crate::BoxError;

pub struct Options {
    pub ingest: ingest::Options,
    /// Every event is loaded twice, as a redelivered MSK batch would be.
    pub redeliver: bool,
    /// Changes kept from the run to time the loader alone.
    pub loader_sample: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub readings: usize,
    pub changes: u64,
    pub changes_per_sec: f64,
    pub e2e_lag_p50_s: f64,
    pub e2e_lag_p95_s: f64,
    pub e2e_lag_max_s: f64,
    pub loader_changes_per_sec: f64,
    pub parquet_readings_per_sec: f64,
    pub parquet_bytes_per_reading: f64,
    pub redeliver: bool,
    pub duplicates: i64,
    pub lost: i64,
}

pub async fn run(opts: &Options) -> Result<Report, BoxError> {
    let tag = std::process::id();
    let server = &opts.ingest.server_url;
    let source = ScratchDb::create(server, format!("atlas_bench_cdc_{tag}")).await?;
    let warehouse = ScratchDb::create(server, format!("atlas_bench_cdc_wh_{tag}")).await?;
    let fresh = ScratchDb::create(server, format!("atlas_bench_cdc_loader_{tag}")).await?;
    let result = measure(opts, &source, &warehouse, &fresh).await;
    source.drop_now().await?;
    warehouse.drop_now().await?;
    fresh.drop_now().await?;
    result
}

fn loader_into(url: &str) -> Result<Loader, BoxError> {
    let pool = DbConfig::new(url, DbRole::AsLogin).pool()?;
    let letters = std::env::temp_dir().join(format!("atlas-bench-cdc-{}", std::process::id()));
    Ok(Loader::new(
        Arc::new(PgWarehouse::new(pool)),
        atlas_msk::DeadLetters::new(
            Arc::new(atlas_objects::LocalDir::new(letters)),
            Arc::new(atlas_cloud::metrics::TracingSink),
            atlas_warehouse::loader::PIPELINE,
        ),
        atlas_cdc::Options::default(),
    ))
}

/// What the tap and loader did while the write path ran.
#[derive(Default)]
struct Delivered {
    changes: u64,
    lags: Vec<f64>,
    dead_lettered: usize,
    sample: Vec<KafkaEvent>,
    sampled: usize,
    last_loaded: Option<Instant>,
    /// Time spent reading the slot (decoding and writing records) and
    /// loading.
    reading: Duration,
    loading: Duration,
}

async fn measure(
    opts: &Options,
    source: &ScratchDb,
    warehouse: &ScratchDb,
    fresh: &ScratchDb,
) -> Result<Report, BoxError> {
    // The slot first, so the catalog the bench provisions flows through it.
    let (client, conn) = tokio_postgres::connect(&source.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let tap = atlas_tap::Tap::new(
        client,
        atlas_tap::TapConfig {
            slot: source.name.clone(),
            interval: Duration::from_millis(100),
            ..atlas_tap::TapConfig::default()
        },
    )
    .await
    .map_err(|e| format!("the change tap needs wal_level = logical: {e}"))?;
    let loader = loader_into(&warehouse.url)?;
    loader.warehouse().apply_schema().await?;

    eprintln!("generating {} readings", opts.ingest.readings);
    let (_, requests) = ingest::generate(&opts.ingest);
    let delivered = Arc::new(Mutex::new(Delivered::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let tapping = {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        let redeliver = opts.redeliver;
        let sample_size = opts.loader_sample;
        async move {
            let mut stopping = false;
            loop {
                let t = Instant::now();
                let read = tap.next().await?;
                let read_took = t.elapsed();
                if read.changes > 0 {
                    delivered.lock().await.reading += read_took;
                }
                for (event, commits) in read.events.iter().zip(&read.commits) {
                    for delivery in 0..if redeliver { 2 } else { 1 } {
                        let t = Instant::now();
                        let report = loader.handle(event).await?;
                        let now = Utc::now().timestamp_millis();
                        let mut d = delivered.lock().await;
                        d.loading += t.elapsed();
                        d.dead_lettered += report.dead_lettered;
                        // A change is visible once its first delivery is
                        // loaded; the second must add nothing (audited).
                        if delivery == 0 {
                            d.lags
                                .extend(commits.iter().map(|c| (now - c) as f64 / 1000.0));
                            d.changes += report.changes as u64;
                        }
                        d.last_loaded = Some(Instant::now());
                    }
                    let mut d = delivered.lock().await;
                    if d.sampled < sample_size {
                        d.sampled += commits.len();
                        d.sample.push(event.clone());
                    }
                }
                if let Some(upto) = read.upto {
                    tap.confirm(upto).await?;
                } else if stopping {
                    return Ok::<_, BoxError>(());
                } else {
                    tokio::select! {
                        _ = stop.notified() => stopping = true,
                        _ = tokio::time::sleep(tap.config().interval) => {}
                    }
                }
            }
        }
    };
    let writing = async {
        let pass = ingest::pass(&opts.ingest, &source.url, Arc::new(requests), None).await;
        // The last flush's WAL reaches the slot within a few hundred ms;
        // a synchronous commit makes it readable now.
        let (client, conn) = tokio_postgres::connect(&source.url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(
                "BEGIN; SELECT pg_logical_emit_message(true, 'atlas-bench', 'end'); COMMIT",
            )
            .await?;
        stop.notify_one();
        pass
    };
    let (tapped, pass) = tokio::join!(tapping, writing);
    tapped?;
    let pass = pass?;
    let d = std::mem::take(&mut *delivered.lock().await);
    let elapsed = d
        .last_loaded
        .map_or(started.elapsed(), |t| t.duration_since(started));
    eprintln!(
        "written in {:.2}s, flushed in {:.2}s, all {} changes in the warehouse after {:.2}s",
        pass.acked.as_secs_f64(),
        pass.drained.as_secs_f64(),
        d.changes,
        elapsed.as_secs_f64()
    );
    eprintln!(
        "the tap read for {:.2}s (window waits included), the loader loaded for {:.2}s",
        d.reading.as_secs_f64(),
        d.loading.as_secs_f64()
    );
    if d.dead_lettered > 0 {
        return Err(format!("{} records were dead-lettered", d.dead_lettered).into());
    }

    let (lost, duplicates) = audit(&source.url, &warehouse.url).await?;

    eprintln!(
        "the loader alone: {} events ({} changes) into a fresh warehouse",
        d.sample.len(),
        d.sampled
    );
    let fresh_loader = loader_into(&fresh.url)?;
    fresh_loader.warehouse().apply_schema().await?;
    let timed = Instant::now();
    let mut loaded_changes = 0u64;
    for event in &d.sample {
        loaded_changes += fresh_loader.handle(event).await?.changes as u64;
    }
    let loader_secs = timed.elapsed().as_secs_f64();

    let batches: Vec<_> = d.sample.iter().map(|e| fresh_loader.batch(e).0).collect();
    let (mut readings, mut bytes) = (0usize, 0usize);
    let timed = Instant::now();
    for batch in &batches {
        readings += batch.facts.len();
        bytes += atlas_warehouse::stage_parquet::telemetry(batch)?.len();
    }
    let parquet_secs = timed.elapsed().as_secs_f64();

    let mut lags = d.lags;
    let max = lags.iter().copied().fold(0.0, f64::max);
    Ok(Report {
        bench: "cdc",
        readings: opts.ingest.readings,
        changes: d.changes,
        changes_per_sec: (d.changes as f64 / elapsed.as_secs_f64()).round(),
        e2e_lag_p50_s: round3(percentile(&mut lags, 0.5)),
        e2e_lag_p95_s: round3(percentile(&mut lags, 0.95)),
        e2e_lag_max_s: round3(max),
        loader_changes_per_sec: (loaded_changes as f64 / loader_secs).round(),
        parquet_readings_per_sec: (readings as f64 / parquet_secs).round(),
        parquet_bytes_per_reading: round3(bytes as f64 / readings.max(1) as f64),
        redeliver: opts.redeliver,
        duplicates,
        lost: lost + pass.lost,
    })
}

/// (lost, duplicates): readings of the source the warehouse does not hold
/// (or the reverse), compared by count and by a sum of key hashes; and
/// numeric readings the daily statistics counted more than once.
async fn audit(source: &str, warehouse: &str) -> Result<(i64, i64), BoxError> {
    const KEYS: &str = "SELECT count(*), coalesce(sum(hashtextextended( \
                            tenant_id || '/' || entity_id || '/' || attribute_id || '/' || \
                            (extract(epoch FROM ingested_at) * 1000000)::bigint, 0)::numeric), 0)::text \
                        FROM {}";
    let connect = |url: String| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok::<_, tokio_postgres::Error>(client)
    };
    let (src, wh) = (
        connect(source.to_owned()).await?,
        connect(warehouse.to_owned()).await?,
    );
    let a = src
        .query_one(&KEYS.replace("{}", "entity_values_ts"), &[])
        .await?;
    let b = wh
        .query_one(&KEYS.replace("{}", "fact_telemetry"), &[])
        .await?;
    let (n_src, h_src): (i64, String) = (a.get(0), a.get(1));
    let (n_wh, h_wh): (i64, String) = (b.get(0), b.get(1));
    let lost = if h_src == h_wh {
        n_src - n_wh
    } else {
        (n_src - n_wh).abs().max(1)
    };
    let row = wh
        .query_one(
            "SELECT (SELECT coalesce(sum(sample_count), 0)::bigint FROM agg_daily_entity_stats), \
                    (SELECT count(*) FROM fact_telemetry \
                     WHERE value_decimal IS NOT NULL OR value_int IS NOT NULL)",
            &[],
        )
        .await?;
    let (counted, numeric): (i64, i64) = (row.get(0), row.get(1));
    Ok((lost, counted - numeric))
}
