use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool setup: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("catalog row is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            StoreError::Db(e) => e.code(),
            StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    /// A value the database refused to store (SQLSTATE class 22, "data
    /// exception"): retrying the same input can never succeed, so it is the
    /// sender's problem, not an outage.
    pub fn is_data_exception(&self) -> bool {
        self.sql_state().is_some_and(|s| s.code().starts_with("22"))
    }

    /// The server's own words for a refused statement, without the
    /// client library's wrapping: safe to show the sender.
    pub fn db_message(&self) -> String {
        let db = match self {
            StoreError::Db(e) => e.as_db_error(),
            StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => e.as_db_error(),
            _ => None,
        };
        db.map(|d| d.message().to_owned())
            .unwrap_or_else(|| self.to_string())
    }

    /// Conflicts between concurrent transactions; retrying is the cure.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.sql_state(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        )
    }
}
