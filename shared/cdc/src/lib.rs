//! Change data capture, source side: what the Debezium PostgreSQL
//! connector publishes for Atlas's tables, decoded exactly.
//!
//! - [`debezium`]: one record in any form the connector writes (envelope or
//!   flattened, with or without the JSON converter's schema, tombstones,
//!   heartbeats, transaction boundaries) into a typed [`Change`];
//! - [`encoding`]: the value encodings (ZonedTimestamp, the three decimal
//!   modes, Json, TOAST placeholders), with no float round trip;
//! - [`tables`]: the published tables, their columns, leaf partitions
//!   mapped to their parent, and the typed rows;
//! - [`emit`]: the other direction, a row change as the connector writes
//!   it (what the local change tap sends the loader).
//!
//! Loading the changes into the warehouse is `atlas-warehouse`'s work.

pub mod debezium;
pub mod emit;
pub mod encoding;
pub mod tables;

pub use debezium::{Change, ChangeData, DecodeError, Op, Options, Record, Source};
pub use tables::{Key, Row, Table};
