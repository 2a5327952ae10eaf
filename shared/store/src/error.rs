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

    /// Conflicts between concurrent transactions; retrying is the cure.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.sql_state(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        )
    }
}
