//! What every function an MSK event source triggers (ingest, the CDC-batch
//! loader) shares:
//!
//! - [`records`]: a batch's records in partition and offset order, where
//!   each came from, and its base64 key and value decoded;
//! - [`dead_letter`]: records that can never succeed, kept in the object
//!   store with their reason and raw bytes, per pipeline, and counted.

pub mod dead_letter;
pub mod records;

pub use dead_letter::DeadLetters;
pub use records::{at, bytes, in_order};
