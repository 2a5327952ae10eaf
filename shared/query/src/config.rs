use std::time::Duration;

use atlas_cloud::config::{ConfigError, millis, seconds};

use crate::routing::RoutingConfig;
use crate::search::CursorKey;

/// Limits of the query API, each overridable from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    /// `ATLAS_HISTORY_MAX_RANGE_SECS`: the widest `from`..`to` a history
    /// read may ask for (default 7 days).
    pub history_max_range: Duration,
    /// `ATLAS_ANALYTICS_MAX_RANGE_SECS`: the widest range a statistics
    /// read may ask for (default 31 days).
    pub analytics_max_range: Duration,
    /// `ATLAS_CATALOG_TTL_MS`: how long a tenant's attribute catalog is
    /// cached for searches (ingest reads the same variable).
    pub catalog_ttl: Duration,
    pub routing: RoutingConfig,
    /// `ATLAS_CURSOR_KEY`: signs search cursors. Required in Lambda, where
    /// a page's next request may reach another container; elsewhere a
    /// random key of the process.
    pub cursor_key: CursorKey,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            history_max_range: Duration::from_secs(7 * 86_400),
            analytics_max_range: Duration::from_secs(31 * 86_400),
            catalog_ttl: Duration::from_secs(5),
            routing: RoutingConfig::default(),
            cursor_key: CursorKey::random(),
        }
    }
}

impl QueryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            history_max_range: seconds("ATLAS_HISTORY_MAX_RANGE_SECS", d.history_max_range)?,
            analytics_max_range: seconds("ATLAS_ANALYTICS_MAX_RANGE_SECS", d.analytics_max_range)?,
            catalog_ttl: millis("ATLAS_CATALOG_TTL_MS", d.catalog_ttl)?,
            routing: RoutingConfig::from_env()?,
            cursor_key: cursor_key_from_env()?,
        })
    }
}

fn cursor_key_from_env() -> Result<CursorKey, ConfigError> {
    const NAME: &str = "ATLAS_CURSOR_KEY";
    match std::env::var(NAME) {
        Ok(secret) if !secret.is_empty() => {
            CursorKey::new(secret.as_bytes()).map_err(|reason| ConfigError::Invalid {
                name: NAME,
                value: "(a secret, not shown)".into(),
                reason,
            })
        }
        _ if atlas_cloud::telemetry::in_lambda() => Err(ConfigError::Missing { name: NAME }),
        _ => Ok(CursorKey::random()),
    }
}
