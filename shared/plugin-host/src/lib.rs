//! The sandbox for tenant transform plugins: WebAssembly modules run in
//! wasmtime with no ambient authority and a budget for every call.
//!
//! A plugin follows the core-module ABI in `plugins/ABI.md`: it exports its
//! ABI version (1, a JSON payload, or 2, a binary one), `atlas_alloc` and
//! `atlas_transform` over a byte buffer, and may import nothing but the
//! rate-limited `atlas.log`. `Host` compiles and
//! checks modules; `Plugin::call` runs one batch in a fresh instance with
//! fuel, an epoch deadline, a memory cap and an output cap, and turns every
//! way a plugin can misbehave into a `PluginError` that names the limit.

mod binary;
mod error;
mod host;
mod limits;
mod payload;

pub use error::PluginError;
pub use host::{Host, Output, Plugin};
pub use limits::Limits;
pub use payload::{Abi, Decoded, MAX_MODULE_BYTES, SAMPLE_BATCH, check_upload, sample};
