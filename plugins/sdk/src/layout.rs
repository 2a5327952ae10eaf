//! ABI version 2's binary layout (`plugins/ABI.md`, "Payload: binary"),
//! shared with the host so that both sides read and write one definition.

/// Header: kind, record count, string count, string table offset.
pub const HEADER: usize = 16;
pub const RECORD: usize = 32;
/// A string table entry: offset and length.
pub const ENTRY: usize = 8;
/// An absent string field (`entity_type`, `ts`).
pub const NONE: u32 = u32::MAX;

pub const KIND_READINGS: u32 = 0;
pub const KIND_ERROR: u32 = 1;

/// Value tags.
pub const INT: u8 = 0;
pub const FLOAT: u8 = 1;
pub const BOOL: u8 = 2;
pub const STRING: u8 = 3;
/// Anything else a device may send (null, an array, an object, an
/// integer past i64), as its JSON text, so nothing is lost on the way.
pub const JSON: u8 = 4;

/// Record flag: `entity_id` is a string index to the JSON text of an
/// id that is not a 64-bit integer.
pub const ENTITY_AS_JSON: u8 = 1;

/// A string table being written after the records: each entry's offset is
/// relative to the string bytes until `finish` places the table and writes
/// the header that points at it. Interning is the writer's choice.
pub struct Table {
    entries: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

impl Table {
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        Table {
            entries: Vec::with_capacity(strings),
            bytes: Vec::with_capacity(bytes),
        }
    }

    /// Adds `s`; returns its index.
    pub fn push(&mut self, s: &str) -> u32 {
        self.entries.push((self.bytes.len() as u32, s.len() as u32));
        self.bytes.extend_from_slice(s.as_bytes());
        self.entries.len() as u32 - 1
    }

    /// Appends the table to `out`, which holds a `HEADER`-byte space and
    /// then `records` records, and fills in the header.
    pub fn finish(self, kind: u32, records: usize, out: &mut Vec<u8>) {
        let strings_at = out.len();
        let bytes_at = (strings_at + self.entries.len() * ENTRY) as u32;
        for (offset, len) in &self.entries {
            out.extend_from_slice(&(bytes_at + offset).to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
        let header = [
            kind,
            records as u32,
            self.entries.len() as u32,
            strings_at as u32,
        ];
        for (i, field) in header.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&field.to_le_bytes());
        }
    }
}
