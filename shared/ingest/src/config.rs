use std::time::Duration;

use atlas_core::AcceptWindow;

/// Limits and settings for ingest; `atlas_app::settings` reads each from
/// the variable named beside it.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `ATLAS_MAX_BODY_BYTES`: largest request body (default 5 MiB, under
    /// Lambda's 6 MB synchronous payload cap).
    pub max_body_bytes: usize,
    /// `ATLAS_MAX_READINGS`: most readings in one request or MSK record.
    pub max_readings: usize,
    /// `ATLAS_CATALOG_TTL_MS`: how long a tenant's catalog is cached.
    pub catalog_ttl: Duration,
    /// `ATLAS_ACCEPT_PAST_SECS` / `ATLAS_ACCEPT_FUTURE_SECS`.
    pub window: AcceptWindow,
    /// `ATLAS_MSK_PLUGIN_BUDGET_MS`: how long one MSK invocation may spend
    /// planning records (their plugins, mostly) before it leaves the rest
    /// for Lambda's retry. Half the function's 30 s timeout by default.
    pub msk_plugin_budget: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_readings: 10_000,
            catalog_ttl: Duration::from_secs(5),
            window: AcceptWindow::default(),
            msk_plugin_budget: Duration::from_secs(15),
        }
    }
}
