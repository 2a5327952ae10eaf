//! PostgreSQL for Atlas: the connection pool, tenant-scoped transactions,
//! migrations and partition upkeep, the attribute catalog, staging with
//! binary COPY, the flush from staging into the time series and the hot
//! JSONB projection, promotions and demotions of hot attributes with the
//! divergence check, and the heartbeat that replica lag is measured by.

mod catalog;
mod error;
pub mod flush;
pub mod heartbeat;
pub mod hot;
mod migrate;
mod pool;
pub mod progress;
mod provision;
mod staging;
mod tenant;

pub use catalog::{AttributeDef, Catalog, TenantCatalog};
pub use deadpool_postgres::Transaction;
pub use error::StoreError;
pub use migrate::{ensure_partitions, migrate};
pub use pool::{DbConfig, DbRole, Pool, redact_url, with_database};
pub use provision::{ensure_attribute, ensure_tenant};
pub use staging::stage;
pub use tenant::begin_tenant;
pub use tokio_postgres::GenericClient;

/// The accept window from `ATLAS_ACCEPT_PAST_SECS` (default 30 days) and
/// `ATLAS_ACCEPT_FUTURE_SECS` (default 1 hour). Ingest and the flusher read
/// the same variables, so partitions always cover what ingest accepts.
pub fn window_from_env() -> Result<atlas_core::AcceptWindow, atlas_cloud::config::ConfigError> {
    use atlas_cloud::config::seconds;
    let d = atlas_core::AcceptWindow::default();
    let past = seconds(
        "ATLAS_ACCEPT_PAST_SECS",
        d.past.to_std().unwrap_or_default(),
    )?;
    let future = seconds(
        "ATLAS_ACCEPT_FUTURE_SECS",
        d.future.to_std().unwrap_or_default(),
    )?;
    Ok(atlas_core::AcceptWindow {
        past: chrono::Duration::from_std(past).unwrap_or(d.past),
        future: chrono::Duration::from_std(future).unwrap_or(d.future),
    })
}
