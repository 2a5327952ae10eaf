//! The lag checker's work: measure on an interval until shortly before the
//! deadline (as the heartbeat does), and after each measurement publish it
//! twice: as EMF metrics (namespace `Atlas`) for the alarms, and as
//! `freshness_status` rows for people and for routing, kept for an hour
//! in `freshness_history` for the status page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cache::HotCache;
use atlas_cloud::metrics::{Metrics, Sample, Unit};
use atlas_store::{Pool, StoreError};
use atlas_warehouse::Warehouse;
use serde::Serialize;

use crate::measure::{self, Figures};
use crate::state::State;
use crate::status::{self, Published};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerConfig {
    /// `ATLAS_LAG_CHECK_INTERVAL_MS` (default 10000, 1000 to 60000).
    pub interval: Duration,
    /// `ATLAS_LAG_CHECK_STOP_MARGIN_MS` (default 2000).
    pub stop_margin: Duration,
    /// `ATLAS_CDC_SLOT`: the replication slot the CDC stream reads (the
    /// connector's `slot.name`); none: the stream is not watched.
    pub cdc_slot: Option<String>,
    /// `ATLAS_HEARTBEAT_STALE_SECS` (default 30): a newest heartbeat older
    /// than this means the writer is down, and replica lag cannot be told.
    pub heartbeat_stale: Duration,
    /// `ATLAS_DIVERGENCE_SAMPLE` (default 100, 0 to 10000; 0: none): hot
    /// projections held against their latest readings per measurement.
    pub divergence_sample: i64,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            stop_margin: Duration::from_secs(2),
            cdc_slot: None,
            heartbeat_stale: Duration::from_secs(30),
            divergence_sample: 100,
        }
    }
}

/// WAL a slot may keep before the stream counts as behind: yellow, orange,
/// red. On RDS retained WAL fills the instance's storage.
const SLOT_BYTES: [i64; 3] = [256 << 20, 1 << 30, 10 << 30];

pub struct LagChecker {
    primary: Pool,
    replicas: Vec<(String, Pool)>,
    warehouse: Option<Arc<dyn Warehouse>>,
    cache: Option<Arc<HotCache>>,
    config: CheckerConfig,
    metrics: Metrics,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Runs {
    pub measured: u64,
    /// Measurements with any path not green.
    pub not_green: u64,
}

impl LagChecker {
    /// `primary` acts as the worker role; replicas are read only.
    pub fn new(primary: Pool, config: CheckerConfig, metrics: Metrics) -> Self {
        Self {
            primary,
            replicas: Vec::new(),
            warehouse: None,
            cache: None,
            config,
            metrics,
        }
    }

    pub fn with_replicas(mut self, replicas: Vec<(String, Pool)>) -> Self {
        self.replicas = replicas;
        self
    }

    pub fn with_warehouse(mut self, warehouse: Arc<dyn Warehouse>) -> Self {
        self.warehouse = Some(warehouse);
        self
    }

    /// The query API's cache, to check that Redis answers.
    pub fn with_cache(mut self, cache: Arc<HotCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub async fn measure(&self) -> Result<Figures, StoreError> {
        let (figures, cache) = tokio::join!(
            measure::figures(
                &self.primary,
                &self.replicas,
                self.config.cdc_slot.as_deref(),
                self.config.divergence_sample,
                self.warehouse.as_deref(),
            ),
            async {
                match &self.cache {
                    Some(c) => Some(measure::cache(c).await),
                    None => None,
                }
            }
        );
        Ok(Figures { cache, ..figures? })
    }

    /// Measures once and publishes it; the status rows it wrote.
    pub async fn check(&self) -> Result<Vec<Published>, StoreError> {
        let figures = self.measure().await?;
        for sample in samples(&figures) {
            self.metrics.record(&sample);
        }
        let rows = rows(&figures, &self.config);
        write_status(&self.primary, &rows).await?;
        Ok(rows)
    }

    /// Checks at once and then every `interval` until `deadline -
    /// stop_margin`. A failed check (the primary unreachable) ends the run
    /// with its error: the function's error metric is then the alarm.
    pub async fn run_until(&self, deadline: Instant) -> Result<Runs, StoreError> {
        let stop = deadline
            .checked_sub(self.config.stop_margin)
            .unwrap_or(deadline);
        let mut runs = Runs::default();
        let mut next = Instant::now();
        loop {
            let rows = self.check().await?;
            runs.measured += 1;
            if rows.iter().any(|r| r.state != State::Green) {
                runs.not_green += 1;
            }
            next += self.config.interval;
            if next >= stop {
                return Ok(runs);
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }
}

/// The metrics of one measurement: per replica (dimension `Replica`) its
/// lag and whether it answered; for the pipeline, what was measured.
pub fn samples(f: &Figures) -> Vec<Sample> {
    let mut out: Vec<Sample> = f
        .replicas
        .iter()
        .map(|r| {
            let mut values = vec![(
                "ReplicaReachable",
                if r.reachable { 1.0 } else { 0.0 },
                Unit::Count,
            )];
            if let Some(lag) = r.heartbeat_lag_s {
                values.push(("ReplicaLagSeconds", lag, Unit::Seconds));
            }
            Sample {
                dimensions: vec![("Replica", r.name.clone())],
                values,
            }
        })
        .collect();
    let mut values = Vec::new();
    // The alarms watch the worst replica, whatever the replicas are called
    // (RDS discovery names them).
    if !f.replicas.is_empty() {
        let lags = f.replicas.iter().filter_map(|r| r.heartbeat_lag_s);
        if let Some(worst) = lags.reduce(f64::max) {
            values.push(("ReplicaLagMaxSeconds", worst, Unit::Seconds));
        }
        let down = f.replicas.iter().filter(|r| !r.reachable).count();
        values.push(("ReplicasUnreachable", down as f64, Unit::Count));
    }
    values.extend([
        ("StagingDepth", f.staging_depth as f64, Unit::Count),
        (
            "StagingOldestSeconds",
            f.staging_oldest_s.unwrap_or(0.0),
            Unit::Seconds,
        ),
    ]);
    if let Some(age) = f.heartbeat_age_s {
        values.push(("HeartbeatAgeSeconds", age, Unit::Seconds));
    }
    if let Some(bytes) = f.cdc.as_ref().and_then(|s| s.retained_bytes) {
        values.push(("CdcSlotRetainedBytes", bytes as f64, Unit::Bytes));
    }
    if let Some(d) = f.divergence {
        values.push(("DivergentEntities", d.divergent as f64, Unit::Count));
    }
    if let Some(lag) = f.analytics_lag_s {
        values.push(("AnalyticsLagSeconds", lag, Unit::Seconds));
    }
    out.push(Sample {
        dimensions: Vec::new(),
        values,
    });
    out
}

/// The status of each read path, and of staging and the heartbeat.
pub fn rows(f: &Figures, cfg: &CheckerConfig) -> Vec<Published> {
    let row = |path: String, lag_seconds: Option<f64>, state: State, detail: String| Published {
        path,
        lag_seconds,
        state,
        measured_at: f.measured_at,
        detail,
        backlog: None,
    };
    let stale = cfg.heartbeat_stale.as_secs_f64();
    let heartbeat_down = f.heartbeat_age_s.is_none_or(|age| age > stale);
    let mut out = vec![row(
        "primary".into(),
        Some(0.0),
        State::Green,
        String::new(),
    )];
    out.push(match f.heartbeat_age_s {
        None => row(
            "heartbeat".into(),
            None,
            State::Red,
            "no heartbeat row on the primary: is the heartbeat function running?".into(),
        ),
        Some(age) if heartbeat_down => row(
            "heartbeat".into(),
            Some(age),
            State::Red,
            format!("the newest heartbeat is {age:.0} s old: is the heartbeat function running?"),
        ),
        Some(age) => row("heartbeat".into(), Some(age), State::Green, String::new()),
    });
    for r in &f.replicas {
        let path = format!("replica:{}", r.name);
        out.push(if !r.reachable {
            row(
                path,
                None,
                State::Red,
                format!("unreachable: {}", r.error.as_deref().unwrap_or("no answer")),
            )
        } else if heartbeat_down {
            row(
                path,
                None,
                State::Red,
                "the heartbeat is stale, so the lag cannot be told".into(),
            )
        } else {
            let state = State::of(r.heartbeat_lag_s);
            let detail = match (state, r.replay_distance_bytes) {
                (State::Green, _) => String::new(),
                (_, Some(bytes)) => format!("{bytes} bytes of WAL not yet replayed"),
                (_, None) => "no heartbeat row on the replica".into(),
            };
            row(path, r.heartbeat_lag_s, state, detail)
        });
    }
    let oldest = f.staging_oldest_s.unwrap_or(0.0);
    out.push(Published {
        backlog: Some(f.staging_depth),
        ..row(
            "staging".into(),
            Some(oldest),
            State::of(Some(oldest)),
            match f.staging_depth {
                1 => "1 reading waiting for the flusher".to_owned(),
                n => format!("{n} readings waiting for the flusher"),
            },
        )
    });
    if let Some(d) = f.divergence {
        out.push(row(
            "projection".into(),
            None,
            if d.divergent == 0 {
                State::Green
            } else {
                State::Yellow
            },
            format!(
                "{} of {} sampled entities' hot projection differs from their latest readings{}",
                d.divergent,
                d.sampled,
                if d.divergent == 0 {
                    ""
                } else {
                    " (a promotion in progress, or run atlas reconcile)"
                }
            ),
        ));
    }
    if let Some(slot) = &f.cdc {
        out.push(match (slot.found, slot.retained_bytes) {
            (false, _) => row(
                "cdc".into(),
                None,
                State::Red,
                format!("no replication slot {}", slot.name),
            ),
            (true, retained) => {
                let bytes = retained.unwrap_or(0);
                let state = match SLOT_BYTES.iter().filter(|limit| bytes >= **limit).count() {
                    0 => State::Green,
                    1 => State::Yellow,
                    2 => State::Orange,
                    _ => State::Red,
                };
                let consumer = if slot.active {
                    "streaming"
                } else {
                    "no consumer connected"
                };
                Published {
                    backlog: Some(bytes),
                    ..row(
                        "cdc".into(),
                        None,
                        state,
                        format!(
                            "slot {}: {bytes} bytes of WAL retained, {consumer}",
                            slot.name
                        ),
                    )
                }
            }
        });
    }
    if let Some(c) = &f.cache {
        out.push(if c.reachable {
            row(
                "cache".into(),
                None,
                State::Green,
                format!(
                    "Redis answers in {:.1} ms; a changed entity is dropped at its flush, any entry lives {:.0} s at most",
                    c.ping_ms.unwrap_or_default(),
                    c.ttl_s
                ),
            )
        } else {
            // Reads then bypass it for PostgreSQL, so no answer is stale
            // for it; but invalidations meanwhile are lost, and what it
            // held may be served for up to the TTL once it is back.
            row(
                "cache".into(),
                None,
                State::Yellow,
                format!(
                    "unreachable ({}): reads bypass it for PostgreSQL; once back, entries may be up to {:.0} s stale",
                    c.error.as_deref().unwrap_or("no answer"),
                    c.ttl_s
                ),
            )
        });
    }
    if let Some(error) = &f.warehouse_error {
        out.push(row(
            "warehouse".into(),
            None,
            State::Red,
            format!("unreachable: {error}"),
        ));
    } else if f.analytics_lag_s.is_some() {
        let state = State::of(f.analytics_lag_s);
        out.push(row(
            "warehouse".into(),
            f.analytics_lag_s,
            state,
            String::new(),
        ));
    }
    out
}

/// Replaces the table's rows with `rows` in one statement, so a reader
/// never sees half a measurement and a path no longer measured goes; the
/// same statement adds them to the history and prunes what is older than
/// [`status::HISTORY_KEPT`].
async fn write_status(pool: &Pool, rows: &[Published]) -> Result<(), StoreError> {
    let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    let lags: Vec<Option<f64>> = rows.iter().map(|r| r.lag_seconds).collect();
    let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    let measured_at: Vec<_> = rows.iter().map(|r| r.measured_at).collect();
    let backlogs: Vec<Option<i64>> = rows.iter().map(|r| r.backlog).collect();
    let kept = status::HISTORY_KEPT.as_secs_f64();
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "WITH gone AS (DELETE FROM freshness_status WHERE path <> ALL ($1::text[])), \
             pruned AS (DELETE FROM freshness_history WHERE measured_at < now() - make_interval(secs => $7)), \
             kept AS (INSERT INTO freshness_history (path, measured_at, lag_seconds) \
                 SELECT * FROM unnest($1::text[], $4::timestamptz[], $2::float8[]) ON CONFLICT DO NOTHING) \
             INSERT INTO freshness_status (path, lag_seconds, state, measured_at, detail, backlog) \
             SELECT * FROM unnest($1::text[], $2::float8[], $3::text[], $4::timestamptz[], $5::text[], $6::int8[]) \
             ON CONFLICT (path) DO UPDATE SET lag_seconds = EXCLUDED.lag_seconds, state = EXCLUDED.state, \
                 measured_at = EXCLUDED.measured_at, detail = EXCLUDED.detail, backlog = EXCLUDED.backlog",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &paths,
                &lags,
                &states,
                &measured_at,
                &details,
                &backlogs,
                &kept,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{CacheFigures, DivergenceFigures, ReplicaFigures, SlotFigures};
    use atlas_cloud::metrics::Emf;
    use serde_json::json;

    fn figures() -> Figures {
        Figures {
            measured_at: "2026-12-02T10:00:00Z".parse().unwrap(),
            replicas: vec![
                ReplicaFigures {
                    name: "1".into(),
                    reachable: true,
                    heartbeat_lag_s: Some(2.5),
                    replay_age_s: Some(2.6),
                    replay_distance_bytes: Some(8192),
                    error: None,
                },
                ReplicaFigures {
                    name: "2".into(),
                    reachable: false,
                    heartbeat_lag_s: None,
                    replay_age_s: None,
                    replay_distance_bytes: None,
                    error: Some("connection refused".into()),
                },
            ],
            heartbeat_age_s: Some(3.0),
            staging_depth: 1200,
            staging_oldest_s: Some(4.5),
            cdc: Some(SlotFigures {
                name: "atlas_cdc".into(),
                found: true,
                active: true,
                retained_bytes: Some(2 << 30),
            }),
            divergence: Some(DivergenceFigures {
                sampled: 100,
                divergent: 2,
            }),
            analytics_lag_s: Some(75.0),
            warehouse_error: None,
            cache: Some(CacheFigures {
                reachable: false,
                ping_ms: None,
                ttl_s: 30.0,
                error: Some("no connection within 100 ms".into()),
            }),
        }
    }

    #[test]
    fn emf_lines_carry_each_metric_with_its_unit_and_dimension() {
        let emf = Emf::new("Atlas");
        let docs: Vec<_> = samples(&figures())
            .iter()
            .map(|s| emf.document(s, 1_764_669_600_000))
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0],
            json!({
                "_aws": {"Timestamp": 1_764_669_600_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "Atlas", "Dimensions": [["Replica"]],
                    "Metrics": [{"Name": "ReplicaReachable", "Unit": "Count"},
                                {"Name": "ReplicaLagSeconds", "Unit": "Seconds"}]}]},
                "Replica": "1", "ReplicaReachable": 1.0, "ReplicaLagSeconds": 2.5
            })
        );
        // An unreachable replica has no lag to report, only that it is down.
        assert_eq!(docs[1]["ReplicaReachable"], 0.0);
        assert!(docs[1].get("ReplicaLagSeconds").is_none());
        assert_eq!(
            docs[2],
            json!({
                "_aws": {"Timestamp": 1_764_669_600_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "Atlas", "Dimensions": [[]],
                    "Metrics": [{"Name": "ReplicaLagMaxSeconds", "Unit": "Seconds"},
                                {"Name": "ReplicasUnreachable", "Unit": "Count"},
                                {"Name": "StagingDepth", "Unit": "Count"},
                                {"Name": "StagingOldestSeconds", "Unit": "Seconds"},
                                {"Name": "HeartbeatAgeSeconds", "Unit": "Seconds"},
                                {"Name": "CdcSlotRetainedBytes", "Unit": "Bytes"},
                                {"Name": "DivergentEntities", "Unit": "Count"},
                                {"Name": "AnalyticsLagSeconds", "Unit": "Seconds"}]}]},
                "ReplicaLagMaxSeconds": 2.5, "ReplicasUnreachable": 1.0,
                "StagingDepth": 1200.0, "StagingOldestSeconds": 4.5,
                "HeartbeatAgeSeconds": 3.0, "CdcSlotRetainedBytes": 2147483648.0,
                "DivergentEntities": 2.0,
                "AnalyticsLagSeconds": 75.0
            })
        );
    }

    #[test]
    fn each_path_gets_the_seeds_state_and_a_reason_when_not_green() {
        let rows = rows(&figures(), &CheckerConfig::default());
        let got: Vec<(&str, State)> = rows.iter().map(|r| (r.path.as_str(), r.state)).collect();
        assert_eq!(
            got,
            [
                ("primary", State::Green),
                ("heartbeat", State::Green),
                ("replica:1", State::Yellow),
                ("replica:2", State::Red),
                ("staging", State::Yellow),
                ("projection", State::Yellow),
                ("cdc", State::Orange),
                ("cache", State::Yellow),
                ("warehouse", State::Red),
            ]
        );
        assert_eq!(rows[2].detail, "8192 bytes of WAL not yet replayed");
        assert_eq!(rows[3].detail, "unreachable: connection refused");
        assert_eq!(
            rows[5].detail,
            "2 of 100 sampled entities' hot projection differs from their latest readings \
             (a promotion in progress, or run atlas reconcile)"
        );
        assert_eq!(
            rows[6].detail,
            "slot atlas_cdc: 2147483648 bytes of WAL retained, streaming"
        );
        assert_eq!(
            rows[7].detail,
            "unreachable (no connection within 100 ms): reads bypass it for PostgreSQL; \
             once back, entries may be up to 30 s stale"
        );
    }
}
