//! Shared set-up for the black-box tests: a fresh, migrated database per
//! test on the real PostgreSQL server, dropped again when the test ends.
//!
//! The server comes from `ATLAS_TEST_DATABASE_URL` (default: the machine's
//! local server). If it is unreachable the test fails; nothing is skipped.

use std::sync::atomic::{AtomicU32, Ordering};

use atlas_core::AcceptWindow;
use atlas_store::{DbConfig, DbRole, Pool};
use tokio_postgres::NoTls;

pub fn server_url() -> String {
    std::env::var("ATLAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub struct TestDb {
    pub name: String,
    /// The owner's URL (the login that ran the migrations).
    pub url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new() -> Self {
        let name = format!(
            "atlas_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin = server_url();
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is required for this test and is unreachable: {e}")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_database(&admin, &name);
        atlas_store::migrate(&url, &AcceptWindow::default())
            .await
            .expect("migrations apply");
        Self { name, url }
    }

    pub fn pool(&self, role: DbRole) -> Pool {
        DbConfig::new(&self.url, role).pool().expect("pool")
    }

    /// A direct connection as the owner (superuser locally): it bypasses
    /// RLS, so use it only to inspect results, never to test isolation.
    pub async fn owner(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect owner");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (server_url(), self.name.clone());
        // Drop runs outside any async context we can borrow; a short-lived
        // runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The server's own message for a database error ("db error" alone says nothing).
pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}
