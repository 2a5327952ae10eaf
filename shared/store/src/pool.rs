use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::StoreError;

pub type Pool = deadpool_postgres::Pool;

/// Which database role a pool acts as. Locally one login (often a superuser)
/// serves all; the pool then switches to the role at connect time so that
/// Row-Level Security applies exactly as it does in the cloud, where each
/// function logs in as its own role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// Connect as the URL's user, unchanged (migrations, admin).
    AsLogin,
    /// `atlas_app`: tenant-scoped, subject to RLS.
    App,
    /// `atlas_worker`: the cross-tenant pipelines.
    Worker,
}

impl DbRole {
    fn name(self) -> Option<&'static str> {
        match self {
            DbRole::AsLogin => None,
            DbRole::App => Some("atlas_app"),
            DbRole::Worker => Some("atlas_worker"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    pub role: DbRole,
    pub max_connections: usize,
}

impl DbConfig {
    pub fn new(url: impl Into<String>, role: DbRole) -> Self {
        Self {
            url: url.into(),
            role,
            max_connections: 8,
        }
    }

    /// `DATABASE_URL` and `ATLAS_DB_POOL_SIZE` (default 8).
    pub fn from_env(role: DbRole) -> Result<Self, atlas_cloud::config::ConfigError> {
        use atlas_cloud::config::{parsed, required};
        let mut cfg = Self::new(required("DATABASE_URL")?, role);
        cfg.max_connections = parsed("ATLAS_DB_POOL_SIZE", cfg.max_connections)?;
        Ok(cfg)
    }

    /// Builds the pool without connecting: Lambda init stays fast and a
    /// database outage surfaces per request, not as a crash loop.
    pub fn pool(&self) -> Result<Pool, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| StoreError::Url(e.to_string()))?;
        if let Some(role) = self.role.name() {
            pg.options(format!("-c role={role}"));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("atlas");
        }
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Ok(Pool::builder(mgr).max_size(self.max_connections).build()?)
    }
}

/// `url` with its database name replaced; for tools that create databases.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn with_database_swaps_only_the_name() {
        assert_eq!(super::with_database("postgres://u@h:1/a", "b"), "postgres://u@h:1/b");
        assert_eq!(super::with_database("postgres://u@h/a?sslmode=require", "b"), "postgres://u@h/b?sslmode=require");
    }
}
