//! ABI version 2's payload (`plugins/ABI.md`, "Payload: binary"): a
//! 16-byte header, fixed-width 32-byte records, and a string table the
//! records point into, all little-endian. The host interns attribute names
//! and entity types, so a batch names each once however many readings
//! carry it.

use std::collections::HashMap;

use atlas_core::RawReading;
use atlas_plugin_sdk::layout::*;
use serde_json::Value;

use crate::{Decoded, PluginError};

/// The input's strings: every distinct attribute name and entity type
/// written once per batch.
struct Strings<'a> {
    table: Table,
    interned: HashMap<&'a str, u32>,
}

impl<'a> Strings<'a> {
    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.interned.get(s) {
            return i;
        }
        let i = self.table.push(s);
        self.interned.insert(s, i);
        i
    }
}

/// The input for a version-2 plugin.
pub(crate) fn encode(readings: &[RawReading]) -> Vec<u8> {
    let mut strings = Strings {
        table: Table::with_capacity(readings.len() + 8, readings.len() * 32),
        interned: HashMap::new(),
    };
    let mut out = Vec::with_capacity(HEADER + readings.len() * (RECORD + 2 * ENTRY + 40));
    out.resize(HEADER, 0);
    for r in readings {
        let (entity, flags) = match r.entity_id.as_i64() {
            Some(id) => (id as u64, 0),
            None => (
                u64::from(strings.table.push(&r.entity_id.to_string())),
                ENTITY_AS_JSON,
            ),
        };
        let (value, tag) = match &r.value {
            Value::Number(n) if n.is_i64() => (n.as_i64().unwrap_or_default() as u64, INT),
            Value::Number(n) if n.is_f64() => (n.as_f64().unwrap_or_default().to_bits(), FLOAT),
            Value::Bool(b) => (u64::from(*b), BOOL),
            Value::String(s) => (u64::from(strings.table.push(s)), STRING),
            other => (u64::from(strings.table.push(&other.to_string())), JSON),
        };
        let attribute = strings.intern(&r.attribute);
        let entity_type = r.entity_type.as_deref().map_or(NONE, |t| strings.intern(t));
        let ts = r.ts.as_deref().map_or(NONE, |t| strings.table.push(t));
        out.extend_from_slice(&entity.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
        for index in [attribute, entity_type, ts] {
            out.extend_from_slice(&index.to_le_bytes());
        }
        out.extend_from_slice(&[tag, flags, 0, 0]);
    }
    strings
        .table
        .finish(KIND_READINGS, readings.len(), &mut out);
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn malformed(what: String) -> PluginError {
    PluginError::MalformedOutput(what)
}

/// `count` items of `size` bytes at `at` fit in `len` bytes.
fn fits(at: usize, count: u32, size: usize, len: usize) -> bool {
    (count as usize)
        .checked_mul(size)
        .and_then(|n| n.checked_add(at))
        .is_some_and(|end| end <= len)
}

/// A version-2 plugin's answer. Every index, offset and tag is checked,
/// and each string is checked as UTF-8 once however often it is used.
pub(crate) fn decode(b: &[u8]) -> Result<Decoded, PluginError> {
    if b.len() < HEADER {
        return Err(malformed(format!(
            "{} bytes is shorter than the 16-byte header",
            b.len()
        )));
    }
    let (kind, records, count, strings_at) =
        (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8), u32_at(b, 12));
    if !fits(strings_at as usize, count, ENTRY, b.len()) {
        return Err(malformed(format!(
            "its {count} string entries at byte {strings_at} run past its {} bytes",
            b.len()
        )));
    }
    let strings = (0..count as usize)
        .map(|i| {
            let at = strings_at as usize + i * ENTRY;
            let (offset, len) = (u32_at(b, at) as usize, u32_at(b, at + 4) as usize);
            let bytes = b.get(offset..offset.saturating_add(len)).ok_or_else(|| {
                malformed(format!(
                    "string {i} at byte {offset}+{len} runs past its {} bytes",
                    b.len()
                ))
            })?;
            std::str::from_utf8(bytes)
                .map_err(|e| malformed(format!("string {i} is not UTF-8: {e}")))
        })
        .collect::<Result<Vec<&str>, _>>()?;
    let string = |index: u32, record: usize, field: &str| {
        strings.get(index as usize).copied().ok_or_else(|| {
            malformed(format!(
                "record {record}: {field} names string {index} of {count}"
            ))
        })
    };
    match kind {
        KIND_ERROR => strings
            .first()
            .map(|message| Decoded::Rejected((*message).to_owned()))
            .ok_or_else(|| malformed("an error answer without its message (string 0)".into())),
        KIND_READINGS if !fits(HEADER, records, RECORD, b.len()) => Err(malformed(format!(
            "its {records} records run past its {} bytes",
            b.len()
        ))),
        KIND_READINGS => (0..records as usize)
            .map(|i| {
                let r = &b[HEADER + i * RECORD..HEADER + (i + 1) * RECORD];
                let optional = |at: usize, field: &str| match u32_at(r, at) {
                    NONE => Ok(None),
                    index => string(index, i, field).map(|s| Some(s.to_owned())),
                };
                let (tag, flags) = (r[28], r[29]);
                if flags & !ENTITY_AS_JSON != 0 || r[30] != 0 || r[31] != 0 {
                    return Err(malformed(format!(
                        "record {i}: bytes 29 to 31 must be zero but for the entity flag"
                    )));
                }
                let json = |text: &str, field: &str| {
                    serde_json::from_str::<Value>(text).map_err(|e| {
                        malformed(format!("record {i}: {field} is not JSON text: {e}"))
                    })
                };
                let entity_id = if flags & ENTITY_AS_JSON == 0 {
                    Value::from(u64_at(r, 0) as i64)
                } else {
                    json(string(u64_at(r, 0) as u32, i, "entity_id")?, "entity_id")?
                };
                let raw = u64_at(r, 8);
                let value = match tag {
                    INT => Value::from(raw as i64),
                    FLOAT => {
                        let f = f64::from_bits(raw);
                        if !f.is_finite() {
                            return Err(malformed(format!("record {i}: value is {f}")));
                        }
                        Value::from(f)
                    }
                    BOOL if raw <= 1 => Value::Bool(raw == 1),
                    BOOL => return Err(malformed(format!("record {i}: a bool of {raw}"))),
                    STRING => Value::from(string(raw as u32, i, "value")?),
                    JSON => json(string(raw as u32, i, "value")?, "value")?,
                    other => return Err(malformed(format!("record {i}: value tag {other}"))),
                };
                Ok(RawReading {
                    entity_id,
                    entity_type: optional(20, "entity_type")?,
                    attribute: string(u32_at(r, 16), i, "attribute")?.to_owned(),
                    value,
                    ts: optional(24, "ts")?,
                })
            })
            .collect::<Result<_, _>>()
            .map(Decoded::Readings),
        other => Err(malformed(format!(
            "header kind {other} (0 is readings, 1 an error)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(v: serde_json::Value) -> RawReading {
        serde_json::from_value(v).unwrap()
    }

    fn round_trip(readings: &[RawReading]) -> Vec<RawReading> {
        match decode(&encode(readings)).unwrap() {
            Decoded::Readings(r) => r,
            Decoded::Rejected(e) => panic!("{e}"),
        }
    }

    fn json(readings: &[RawReading]) -> String {
        serde_json::to_string(readings).unwrap()
    }

    #[test]
    fn every_kind_of_value_survives_the_round_trip() {
        let readings: Vec<RawReading> = [
            serde_json::json!({"entity_id": 1, "entity_type": "device", "attribute": "t", "value": 212, "ts": "2026-11-24T10:00:00Z"}),
            serde_json::json!({"entity_id": 2, "attribute": "t", "value": 72.5}),
            serde_json::json!({"entity_id": 3, "attribute": "on", "value": true}),
            serde_json::json!({"entity_id": 3, "entity_type": "device", "attribute": "status", "value": "online"}),
            serde_json::json!({"entity_id": "dev-9", "attribute": "status", "value": null}),
            serde_json::json!({"entity_id": 4, "attribute": "big", "value": 18446744073709551615u64}),
            serde_json::json!({"entity_id": [1], "attribute": "pos", "value": {"x": [1, 2]}}),
        ]
        .into_iter()
        .map(reading)
        .collect();
        assert_eq!(json(&round_trip(&readings)), json(&readings));
    }

    #[test]
    fn attribute_names_and_entity_types_are_written_once() {
        let readings: Vec<RawReading> = (0..100)
            .map(|i| reading(serde_json::json!({"entity_id": i, "entity_type": "device", "attribute": "temperature", "value": i})))
            .collect();
        let bytes = encode(&readings);
        assert_eq!(u32_at(&bytes, 8), 2, "two strings in the table");
        assert_eq!(
            bytes.len(),
            HEADER + 100 * RECORD + 2 * ENTRY + "temperaturedevice".len()
        );
    }

    #[test]
    fn an_error_answer_is_string_zero() {
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[8] = 1;
        b[12] = HEADER as u8;
        b.extend_from_slice(&(24u32).to_le_bytes());
        b.extend_from_slice(&(2u32).to_le_bytes());
        b.extend_from_slice(b"no");
        assert!(matches!(decode(&b), Ok(Decoded::Rejected(m)) if m == "no"));
        b[8] = 0;
        assert!(
            matches!(decode(&b), Err(PluginError::MalformedOutput(m)) if m.contains("without its message"))
        );
    }

    #[test]
    fn malformed_answers_say_what_is_wrong() {
        let good = encode(&[reading(
            serde_json::json!({"entity_id": 1, "attribute": "t", "value": "x"}),
        )]);
        let broken = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            match decode(&b) {
                Err(PluginError::MalformedOutput(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        assert!(decode(&good[..10]).is_err());
        assert!(broken(0, &[7]).contains("kind 7"));
        assert!(broken(4, &[9]).contains("9 records run past"));
        assert!(broken(HEADER + 16, &[5]).contains("attribute names string 5 of 2"));
        assert!(broken(HEADER + 28, &[9]).contains("value tag 9"));
        assert!(broken(HEADER + 29, &[2]).contains("must be zero"));
        assert!(broken(HEADER + 8, &[9]).contains("value names string 9"));
        let string_bytes = good.len() - 2;
        assert!(broken(string_bytes, &[0xff]).contains("not UTF-8"));
        assert!(broken(12, &[0xff, 0xff]).contains("run past"));
        let nan = f64::NAN.to_bits().to_le_bytes();
        let mut b = good.clone();
        b[HEADER + 8..HEADER + 16].copy_from_slice(&nan);
        b[HEADER + 28] = FLOAT;
        assert!(matches!(decode(&b), Err(PluginError::MalformedOutput(m)) if m.contains("NaN")));
    }

    proptest! {
        /// Whatever a plugin returns, decoding answers or refuses; it
        /// never panics.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn readings_round_trip(ids in proptest::collection::vec(any::<i64>(), 0..20),
                               f in any::<f64>().prop_filter("finite", |f| f.is_finite()),
                               s in "\\PC{0,12}") {
            let readings: Vec<RawReading> = ids.iter().enumerate().map(|(i, id)| {
                let value = match i % 3 { 0 => serde_json::json!(id), 1 => serde_json::json!(f), _ => serde_json::json!(s) };
                reading(serde_json::json!({"entity_id": id, "attribute": s, "value": value, "ts": s}))
            }).collect();
            prop_assert_eq!(json(&round_trip(&readings)), json(&readings));
        }
    }
}
