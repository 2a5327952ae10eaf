//! Benchmarks behind `atlas bench`. Each prints progress on stderr and
//! returns a report that the CLI prints as one JSON object, last.

mod codec;
pub mod ingest;
pub mod plugin;
pub mod query;
mod scratch;
