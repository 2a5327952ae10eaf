//! The local warehouse: a PostgreSQL database of its own, with the same
//! tables as Redshift (`sql/postgres.sql`).

use atlas_store::{Pool, StoreError};

use crate::schema;

pub struct PgWarehouse {
    pool: Pool,
}

impl PgWarehouse {
    /// `pool` logs in as the warehouse database's owner.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Creates whatever is missing, so it is safe on every start. Two
    /// loaders starting at once take turns: concurrent `CREATE TABLE IF NOT
    /// EXISTS` of one table can fail in PostgreSQL.
    pub async fn apply_schema(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('atlas_warehouse_schema'))",
            &[],
        )
        .await?;
        tx.batch_execute(schema::POSTGRES).await?;
        tx.commit().await?;
        Ok(())
    }
}
