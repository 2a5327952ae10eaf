//! The analytics warehouse (seed Part B): dimension, fact and aggregate
//! tables that the CDC loader keeps and the analytics route reads.
//!
//! - [`schema`]: the tables in Redshift's dialect and in PostgreSQL's,
//!   kept in step by a test;
//! - [`postgres`]: the local warehouse, a PostgreSQL database of its own
//!   (`atlas dev` and the end-to-end tests use it).

pub mod postgres;
pub mod schema;
