//! `atlas-client`: the Atlas API from Rust.
//!
//! - [`Client`]: a base URL and a bearer token (`Client::from_env` reads
//!   `ATLAS_API_URL` and `ATLAS_TOKEN`); a 503 is retried with backoff,
//!   honouring `Retry-After`;
//! - telemetry goes in batches of the API's limit, and each refused
//!   reading comes back by its index in what the caller passed;
//! - every error is a [`ClientError`], carrying the API's own code and
//!   message when the API refused;
//! - reads take [`ReadOptions`] (consistency and a lag budget) and answer
//!   [`Fresh`] values, whose [`Freshness`] says where the answer came from
//!   and how far behind it was; an answer beyond the budget is
//!   `ClientError::LagExceeded`, never a silently stale value.
//!
//! ```no_run
//! # async fn f() -> Result<(), atlas_client::ClientError> {
//! let atlas = atlas_client::Client::from_env()?;
//! let entity = atlas
//!     .entity(123, &atlas_client::ReadOptions::eventual().max_lag_seconds(5.0))
//!     .await?;
//! println!("{} (from {}, {:.3} s behind)", entity.value, entity.freshness.source, entity.freshness.lag_seconds);
//! # Ok(()) }
//! ```

mod client;
mod freshness;
mod plugins;
mod telemetry;

pub use client::{Client, ClientError, RetryPolicy};
pub use freshness::{Consistency, Fresh, Freshness, ReadOptions};
pub use plugins::PluginLimits;
pub use telemetry::{Reading, Rejection, Sent};
