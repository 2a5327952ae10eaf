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
//! - [`Warehouse`]: the port, with [`postgres`] as the local adapter
//!   (`atlas dev` and the end-to-end tests use it).

pub mod batch;
pub mod load;
pub mod loader;
pub mod postgres;
pub mod schema;
pub mod target;

pub use batch::Batch;
pub use load::Loaded;
pub use loader::{Loader, Report};
pub use postgres::PgWarehouse;
pub use target::Target;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Postgres(#[from] atlas_store::StoreError),
}

/// Where the loader writes: Redshift in the cloud, PostgreSQL locally.
#[async_trait::async_trait]
pub trait Warehouse: Send + Sync {
    /// Creates the warehouse's tables where missing; safe on every start.
    async fn apply_schema(&self) -> Result<(), WarehouseError>;

    /// Loads `batch` whole or not at all, each reading once however often
    /// it is delivered.
    async fn load(&self, batch: &Batch) -> Result<Loaded, WarehouseError>;
}

#[async_trait::async_trait]
impl Warehouse for PgWarehouse {
    async fn apply_schema(&self) -> Result<(), WarehouseError> {
        Ok(PgWarehouse::apply_schema(self).await?)
    }

    async fn load(&self, batch: &Batch) -> Result<Loaded, WarehouseError> {
        Ok(PgWarehouse::load(self, batch).await?)
    }
}
