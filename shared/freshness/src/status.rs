//! `freshness_status` as readers see it: what the lag checker published,
//! and a per-container cache of it for routing that is trusted only while
//! it is recent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_store::{Pool, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::measure::MEASURE_TIMEOUT;
use crate::state::State;

/// One path as the checker last published it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    pub path: String,
    pub lag_seconds: Option<f64>,
    pub state: State,
    pub measured_at: DateTime<Utc>,
    pub detail: String,
    /// How much waits behind the path, in its own unit: readings in
    /// staging, bytes of WAL the CDC slot retains.
    pub backlog: Option<i64>,
}

/// How long the checker keeps its measurements in `freshness_history`.
pub const HISTORY_KEPT: Duration = Duration::from_secs(3600);

/// One point of a path's lag over time: the worst lag measured in a bucket
/// of the window, or `None` when some measurement in it could not tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub lag_seconds: Option<f64>,
}

/// Every published path, in path order.
pub async fn read(pool: &Pool) -> Result<Vec<Published>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT path, lag_seconds, state, measured_at, detail, backlog FROM freshness_status ORDER BY path",
        )
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            let state: String = r.get(2);
            Ok(Published {
                path: r.get(0),
                lag_seconds: r.get(1),
                state: State::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("freshness state {state:?}")))?,
                measured_at: r.get(3),
                detail: r.get(4),
                backlog: r.get(5),
            })
        })
        .collect()
}

/// Each path's lag over the last `window`, in at most `points` buckets
/// (oldest first); a bucket holds its worst lag, so a spike between two
/// samples is not smoothed away.
pub async fn history(
    pool: &Pool,
    window: Duration,
    points: u32,
) -> Result<HashMap<String, Vec<Point>>, StoreError> {
    let bucket = window.as_secs_f64() / f64::from(points.max(1));
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT path, date_bin(make_interval(secs => $2), measured_at, timestamptz 'epoch') AS at, \
                    CASE WHEN bool_or(lag_seconds IS NULL) THEN NULL ELSE max(lag_seconds) END \
             FROM freshness_history WHERE measured_at > now() - make_interval(secs => $1) \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await?;
    let mut out: HashMap<String, Vec<Point>> = HashMap::new();
    for r in client
        .query(&stmt, &[&window.as_secs_f64(), &bucket])
        .await?
    {
        out.entry(r.get(0)).or_default().push(Point {
            at: r.get(1),
            lag_seconds: r.get(2),
        });
    }
    Ok(out)
}

type Snapshot = Arc<HashMap<String, Published>>;

/// The table, read at most once per `refresh` and shared by every request
/// meanwhile; a row older than `max_age` is not trusted.
pub struct StatusCache {
    pool: Pool,
    refresh: Duration,
    max_age: Duration,
    cached: Mutex<Option<(Instant, Snapshot)>>,
}

impl StatusCache {
    pub fn new(pool: Pool, refresh: Duration, max_age: Duration) -> Self {
        Self {
            pool,
            refresh,
            max_age,
            cached: Mutex::new(None),
        }
    }

    /// `path` as published, if it was measured within `max_age`. A table
    /// that cannot be read counts as empty (the caller measures itself)
    /// until the next refresh.
    pub async fn fresh(&self, path: &str) -> Option<Published> {
        let cached = self.cached.lock().expect("status lock").clone();
        let snapshot = match cached {
            Some((at, snapshot)) if at.elapsed() < self.refresh => snapshot,
            _ => {
                let rows = match tokio::time::timeout(MEASURE_TIMEOUT, read(&self.pool)).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "freshness_status unreadable; measuring instead");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                };
                let snapshot: Snapshot =
                    Arc::new(rows.into_iter().map(|p| (p.path.clone(), p)).collect());
                *self.cached.lock().expect("status lock") =
                    Some((Instant::now(), snapshot.clone()));
                snapshot
            }
        };
        let p = snapshot.get(path)?;
        let age = (Utc::now() - p.measured_at).to_std().unwrap_or_default();
        (age <= self.max_age).then(|| p.clone())
    }
}

/// The worst state among `rows`; red when there are none (nothing has been
/// published, so nothing is known).
pub fn worst(rows: &[Published]) -> State {
    rows.iter().map(|r| r.state).max().unwrap_or(State::Red)
}

/// `atlas status`'s exit status: 0 all green, 1 any yellow or orange, 2
/// any red (or nothing known), so scripts can act on it.
pub fn exit_code(rows: &[Published]) -> i32 {
    match worst(rows) {
        State::Green => 0,
        State::Yellow | State::Orange => 1,
        State::Red => 2,
    }
}

/// The rows as a table for a terminal: path, state (coloured by the seed's
/// thresholds when `colour`), lag, how old the measurement is, and why a
/// path is not green.
pub fn table(rows: &[Published], now: DateTime<Utc>, colour: bool) -> String {
    // No lag is unknown on a red path, and on others (the projection, the
    // slot, the cache) not what they are judged by.
    let lag = |r: &Published| match r.lag_seconds {
        Some(l) => format!("{l:.1} s"),
        None if r.state == State::Red => "?".to_owned(),
        None => "-".to_owned(),
    };
    let age = |at: DateTime<Utc>| format!("{:.0} s ago", (now - at).as_seconds_f64().max(0.0));
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:<6}  {:>9}  {:>10}  DETAIL\n",
        "PATH", "STATE", "LAG", "MEASURED"
    );
    for r in rows {
        let state = format!("{:<6}", r.state.as_str());
        let state = if colour {
            let code = match r.state {
                State::Green => "32",
                State::Yellow => "33",
                State::Orange => "38;5;208",
                State::Red => "31",
            };
            format!("\x1b[{code}m{state}\x1b[0m")
        } else {
            state
        };
        out.push_str(&format!(
            "{:<width$}  {state}  {:>9}  {:>10}  {}\n",
            r.path,
            lag(r),
            age(r.measured_at),
            r.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(path: &str, lag: Option<f64>, state: State, detail: &str) -> Published {
        Published {
            path: path.into(),
            lag_seconds: lag,
            state,
            measured_at: "2026-12-02T10:00:00Z".parse().unwrap(),
            detail: detail.into(),
            backlog: None,
        }
    }

    #[test]
    fn the_exit_status_follows_the_worst_state() {
        let green = published("primary", Some(0.0), State::Green, "");
        let yellow = published("replica:1", Some(2.0), State::Yellow, "");
        let orange = published("staging", Some(20.0), State::Orange, "");
        let red = published("cdc", None, State::Red, "no replication slot atlas_cdc");
        assert_eq!(exit_code(std::slice::from_ref(&green)), 0);
        assert_eq!(exit_code(&[green.clone(), yellow.clone()]), 1);
        assert_eq!(exit_code(&[green.clone(), orange]), 1);
        assert_eq!(exit_code(&[green, yellow, red]), 2);
        assert_eq!(exit_code(&[]), 2, "nothing published is nothing known");
    }

    #[test]
    fn the_table_shows_each_path_with_its_state_lag_age_and_reason() {
        let rows = [
            published("primary", Some(0.0), State::Green, ""),
            published(
                "replica:1",
                None,
                State::Red,
                "unreachable: connection refused",
            ),
            published("cache", None, State::Green, "Redis answers in 0.4 ms"),
        ];
        let now = "2026-12-02T10:00:07Z".parse().unwrap();
        assert_eq!(
            table(&rows, now, false),
            "PATH       STATE         LAG    MEASURED  DETAIL\n\
             primary    green       0.0 s     7 s ago  \n\
             replica:1  red             ?     7 s ago  unreachable: connection refused\n\
             cache      green           -     7 s ago  Redis answers in 0.4 ms\n"
        );
        let coloured = table(&rows, now, true);
        assert!(coloured.contains("\x1b[31mred   \x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[32mgreen \x1b[0m"), "{coloured:?}");
    }
}
