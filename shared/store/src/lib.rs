//! PostgreSQL for Atlas: the connection pool, tenant-scoped transactions,
//! migrations and partition upkeep, the attribute catalog, staging with
//! binary COPY, the flush from staging into the time series and the hot
//! JSONB projection, promotions and demotions of hot attributes with the
//! divergence check, the projection's physical order, and the heartbeat
//! that replica lag is measured by.

mod catalog;
mod error;
pub mod flush;
pub mod heartbeat;
pub mod hot;
mod migrate;
mod pool;
pub mod progress;
pub mod projection;
mod provision;
mod staging;
mod tenant;
mod tenant_status;

pub use catalog::{AttributeDef, Catalog, TenantCatalog};
pub use deadpool_postgres::Transaction;
pub use error::StoreError;
pub use migrate::{ensure_partitions, migrate};
pub use pool::{DbConfig, DbRole, Pool, redact_url, with_database, with_host};
pub use provision::{ensure_attribute, ensure_tenant};
pub use staging::stage;
pub use tenant::begin_tenant;
pub use tenant_status::TenantStatus;
pub use tokio_postgres::GenericClient;
