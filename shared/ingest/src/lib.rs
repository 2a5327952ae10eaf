//! Ingest: the source end of the write path. A batch of readings arrives
//! (API Gateway or an MSK record), is parsed, transformed by the tenant's
//! plugin if it has one, typed against the tenant's attribute catalog, and
//! staged with binary COPY in one transaction.
//! Readings that fail a check are reported one by one; the rest commit.

mod batch;
mod config;
pub mod http;
pub mod lambda;
pub mod msk;
mod service;

pub use batch::{BatchError, parse_batch};
pub use config::IngestConfig;
pub use service::{
    IngestError, IngestService, Outcome, Plan, Progress, Refused, Rejection, TenantBatch,
};
