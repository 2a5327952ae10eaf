//! The analytics warehouse (seed Part B): dimension, fact and aggregate
//! tables that the CDC-batch loader keeps and the analytics route reads.
//!
//! - [`schema`]: the tables in Redshift's dialect and in PostgreSQL's,
//!   kept in step by a test;
//! - [`batch`]: transform, decoded changes into one load's rows
//!   (deduplicated, newest wins, derived time columns);
//! - [`load`]: sink, the statements that move a staged batch into the
//!   warehouse exactly once, the same on both warehouses;
//! - [`loader`]: the CDC-batch loader's work on one MSK batch;
//! - [`reads`]: what analytics reads ask of it, each filtered by tenant;
//! - [`Warehouse`]: the port, with [`redshift`] as the cloud adapter (the
//!   Data API) and [`postgres`] as the local one (`atlas dev` and the
//!   end-to-end tests use it).

pub mod batch;
pub mod load;
pub mod loader;
pub mod postgres;
pub mod reads;
pub mod redshift;
pub mod schema;
pub mod stage_parquet;
pub mod target;

pub use batch::Batch;
pub use load::Loaded;
pub use loader::{Loader, Report};
pub use postgres::PgWarehouse;
pub use redshift::RedshiftWarehouse;
pub use target::Target;

use chrono::{DateTime, NaiveDate, Utc};
use reads::{DailyRow, StatsQuery, StatsRow};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Postgres(#[from] atlas_store::StoreError),
    #[error("redshift: {0}")]
    Redshift(String),
}

/// Where the loader writes: Redshift in the cloud, PostgreSQL locally.
#[async_trait::async_trait]
pub trait Warehouse: Send + Sync {
    /// Creates the warehouse's tables where missing; safe on every start.
    async fn apply_schema(&self) -> Result<(), WarehouseError>;

    /// Loads `batch` whole or not at all, each reading once however often
    /// it is delivered.
    async fn load(&self, batch: &Batch) -> Result<Loaded, WarehouseError>;

    /// The attribute's data type, if the tenant has it.
    async fn attribute_type(
        &self,
        tenant_id: i64,
        attribute: &str,
    ) -> Result<Option<String>, WarehouseError>;

    async fn stats(&self, q: &StatsQuery<'_>) -> Result<Vec<StatsRow>, WarehouseError>;

    /// Per day in `[from, to]`, from the daily aggregate.
    async fn daily(
        &self,
        tenant_id: i64,
        attribute: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyRow>, WarehouseError>;

    /// The newest source commit loaded; `None` before the first load.
    async fn data_as_of(&self) -> Result<Option<DateTime<Utc>>, WarehouseError>;
}

#[async_trait::async_trait]
impl Warehouse for PgWarehouse {
    async fn apply_schema(&self) -> Result<(), WarehouseError> {
        Ok(PgWarehouse::apply_schema(self).await?)
    }

    async fn load(&self, batch: &Batch) -> Result<Loaded, WarehouseError> {
        Ok(PgWarehouse::load(self, batch).await?)
    }

    async fn attribute_type(
        &self,
        tenant_id: i64,
        attribute: &str,
    ) -> Result<Option<String>, WarehouseError> {
        Ok(PgWarehouse::attribute_type(self, tenant_id, attribute).await?)
    }

    async fn stats(&self, q: &StatsQuery<'_>) -> Result<Vec<StatsRow>, WarehouseError> {
        Ok(PgWarehouse::stats(self, q).await?)
    }

    async fn daily(
        &self,
        tenant_id: i64,
        attribute: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyRow>, WarehouseError> {
        Ok(PgWarehouse::daily(self, tenant_id, attribute, from, to).await?)
    }

    async fn data_as_of(&self) -> Result<Option<DateTime<Utc>>, WarehouseError> {
        Ok(PgWarehouse::data_as_of(self).await?)
    }
}
