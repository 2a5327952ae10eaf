use std::time::Duration;

use crate::routing::RoutingConfig;
use crate::search::CursorKey;

/// Limits of the query API; `atlas_app::settings` reads each from the
/// variable named beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    /// `ATLAS_HISTORY_MAX_RANGE_SECS`: the widest `from`..`to` a history
    /// read may ask for (default 7 days).
    pub history_max_range: Duration,
    /// `ATLAS_ANALYTICS_MAX_RANGE_SECS`: the widest range a statistics
    /// read may ask for (default 31 days).
    pub analytics_max_range: Duration,
    /// `ATLAS_WAREHOUSE_MAX_RANGE_SECS`: the widest range the warehouse
    /// serves, statistics or days (default 186 days: the seed's six
    /// months).
    pub warehouse_max_range: Duration,
    /// `ATLAS_CATALOG_TTL_MS`: how long a tenant's attribute catalog is
    /// cached for searches, and whether it is active for every request
    /// (ingest reads the same variable).
    pub catalog_ttl: Duration,
    pub routing: RoutingConfig,
    /// `ATLAS_CURSOR_KEY`: signs search cursors. Required in Lambda, where
    /// a page's next request may reach another container; elsewhere a
    /// random key of the process.
    pub cursor_key: CursorKey,
    /// `ATLAS_WEBHOOK_ALLOW_LOOPBACK`: whether webhooks may be registered
    /// for a receiver on this machine (local runs and tests; default off).
    pub webhooks: atlas_webhooks::AddressPolicy,
}

impl QueryConfig {
    /// The defaults, with `cursor_key`. Settings that are given a key build
    /// from here, not from `default()`: a random key seeds the crypto
    /// library's generator, which took ~70 ms of every function's cold
    /// start (`atlas bench coldstart`).
    pub fn with_key(cursor_key: CursorKey) -> Self {
        Self {
            history_max_range: Duration::from_secs(7 * 86_400),
            analytics_max_range: Duration::from_secs(31 * 86_400),
            warehouse_max_range: Duration::from_secs(186 * 86_400),
            catalog_ttl: Duration::from_secs(5),
            routing: RoutingConfig::default(),
            cursor_key,
            webhooks: atlas_webhooks::AddressPolicy::default(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self::with_key(CursorKey::random())
    }
}
