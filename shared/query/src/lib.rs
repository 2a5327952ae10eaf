//! The query API: reads that say how fresh they are. Every answer names
//! its source, that source's lag, the consistency it was served at and
//! whether a cache answered, in headers and in a `_metadata` object.
//!
//! So far: point reads of an entity's hot attributes, searches over them,
//! bounded reads of one attribute's history and the attribute catalog,
//! served by the primary (which is as fresh as Atlas gets for every
//! consistency level), and the plugin registry's routes. Replica, cache and warehouse routing
//! come next, behind the same `Freshness` contract.

mod analytics;
mod catalog;
mod config;
mod entities;
mod freshness;
mod history;
pub mod http;
pub mod routing;
pub mod search;

pub use catalog::Attribute;
pub use config::QueryConfig;
pub use entities::Entity;
pub use freshness::{CacheStatus, Consistency, Freshness};
pub use history::{History, Missing, Point, Range};
pub use http::QueryApi;
