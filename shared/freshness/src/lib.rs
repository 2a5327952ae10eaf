//! Freshness: how far behind each read path is, by one definition of lag,
//! and how that is shown and published.
//!
//! - [`state`]: the seed's four states (green below 1 s, yellow to 10 s,
//!   orange to 60 s, red beyond) and the words for them;
//! - [`measure`]: the measurements themselves, against PostgreSQL: a
//!   replica's heartbeat lag (the one definition routing uses too), its
//!   replay age and distance, the CDC slot's retained WAL, staging's depth
//!   and oldest row, the heartbeat's own age, the warehouse's lag, and
//!   whether the cache's Redis answers;
//! - [`checker`]: the lag checker's work: measure everything, then publish
//!   it as EMF metrics and as `freshness_status` rows;
//! - [`status`]: those rows as readers see them (and their last hour), and
//!   the cache routing trusts only while they are recent;
//! - [`page`]: the status page people look at, polling `GET /v1/status`.

pub mod checker;
pub mod measure;
pub mod page;
pub mod state;
pub mod status;

pub use checker::{CheckerConfig, LagChecker, Runs};
pub use measure::Figures;
pub use state::State;
