//! Throwaway databases on a local server, dropped when the bench ends
//! (with any change tap slot on them, which would keep them alive).

use atlas_core::AcceptWindow;
use atlas_store::{DbConfig, DbRole};
use tokio_postgres::NoTls;

pub struct ScratchDb {
    server: String,
    pub name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn create(
        server: &str,
        name: String,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let (client, conn) = tokio_postgres::connect(server, NoTls)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {server}: {e}"))?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = atlas_store::with_database(server, &name);
        atlas_store::migrate(
            &DbConfig::new(&url, DbRole::AsLogin),
            &AcceptWindow::default(),
        )
        .await?;
        Ok(Self {
            server: server.to_owned(),
            name,
            url,
        })
    }

    pub async fn drop_now(self) -> Result<(), tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.server, NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid(); \
                 SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE database = '{name}' AND NOT active",
                name = self.name
            ))
            .await?;
        // Not in the batch above: DROP DATABASE refuses to run inside the
        // transaction a multi-statement batch is.
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
    }
}
