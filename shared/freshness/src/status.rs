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
}

/// Every published path, in path order.
pub async fn read(pool: &Pool) -> Result<Vec<Published>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT path, lag_seconds, state, measured_at, detail FROM freshness_status ORDER BY path",
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
            })
        })
        .collect()
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
