//! Atlas domain types, parsed once at the edge so inner code never re-checks.
//!
//! Nothing here does I/O. Every type that arrives from outside (a request
//! body, an MSK record, a JWT claim) has a `parse` that returns a typed error.

mod ids;
mod reading;
mod value;

pub use ids::{AttributeName, EntityId, EntityType, IdError, TenantId};
pub use reading::{AcceptWindow, RawReading, RejectReason, TypedReading};
pub use value::{DECIMAL_MAX_ABS, DataType, MAX_STRING_BYTES, Value, ValueError};
