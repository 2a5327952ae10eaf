//! ABI version 2's payload (`plugins/ABI.md`, "Payload: binary"): a
//! 16-byte header, 32-byte records and a string table, little-endian.
//! Attribute names and entity types are written once per batch in the
//! answer too, as the host does in the input.

use crate::layout::*;
use crate::{Reading, Value};

/// How many distinct attribute names and entity types the encoder keeps
/// looking up before it writes further ones out every time.
const INTERNED: usize = 32;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn invalid<T>(what: &str) -> Result<T, String> {
    Err(format!("invalid input batch: {}", what))
}

pub(crate) fn decode_batch(b: &[u8]) -> Result<Vec<Reading>, String> {
    let (kind, records, count, strings_at) =
        match (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8), u32_at(b, 12)) {
            (Some(k), Some(r), Some(c), Some(s)) => (k, r as usize, c as usize, s as usize),
            _ => return invalid("shorter than its header"),
        };
    if kind != KIND_READINGS {
        return invalid("not a batch of readings");
    }
    let end =
        |at: usize, n: usize, size: usize| n.checked_mul(size).and_then(|x| x.checked_add(at));
    match (end(HEADER, records, RECORD), end(strings_at, count, ENTRY)) {
        (Some(r), Some(s)) if r <= b.len() && s <= b.len() => {}
        _ => return invalid("its records or strings run past its end"),
    }
    let mut strings = Vec::with_capacity(count);
    for i in 0..count {
        let at = strings_at + i * ENTRY;
        let (offset, len) = (
            u32_at(b, at).unwrap_or(0) as usize,
            u32_at(b, at + 4).unwrap_or(0) as usize,
        );
        let bytes = match b.get(offset..offset.saturating_add(len)) {
            Some(bytes) => bytes,
            None => return invalid("a string runs past its end"),
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => strings.push(s),
            Err(_) => return invalid("a string is not UTF-8"),
        }
    }
    let string = |index: u64| match strings.get(index as usize) {
        Some(s) => Ok(*s),
        None => invalid("a record names a string that is not there"),
    };
    let optional = |index: u32| match index {
        NONE => Ok(None),
        i => string(u64::from(i)).map(|s| Some(s.to_owned())),
    };
    let mut out = Vec::with_capacity(records);
    for r in b[HEADER..HEADER + records * RECORD].chunks_exact(RECORD) {
        let (entity, raw) = (u64_at(r, 0).unwrap_or(0), u64_at(r, 8).unwrap_or(0));
        if r[29] & ENTITY_AS_JSON != 0 {
            return Err(format!("entity_id {} is not an integer", string(entity)?));
        }
        let value = match r[28] {
            INT => Value::Int(raw as i64),
            FLOAT => Value::Float(f64::from_bits(raw)),
            BOOL => Value::Bool(raw != 0),
            STRING => Value::Str(string(raw)?.to_owned()),
            JSON => {
                return Err(format!(
                    "value {} is not a number, string or boolean",
                    string(raw)?
                ))
            }
            _ => return invalid("a value has an unknown tag"),
        };
        out.push(Reading {
            entity_id: entity as i64,
            entity_type: optional(u32_at(r, 20).unwrap_or(NONE))?,
            attribute: string(u64::from(u32_at(r, 16).unwrap_or(NONE)))?.to_owned(),
            value,
            ts: optional(u32_at(r, 24).unwrap_or(NONE))?,
        });
    }
    Ok(out)
}

/// The answer's strings: attribute names and entity types written once,
/// up to `INTERNED` of them.
struct Strings<'a> {
    table: Table,
    interned: Vec<(&'a str, u32)>,
}

impl<'a> Strings<'a> {
    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&(_, i)) = self.interned.iter().find(|(t, _)| *t == s) {
            return i;
        }
        let i = self.table.push(s);
        if self.interned.len() < INTERNED {
            self.interned.push((s, i));
        }
        i
    }
}

pub(crate) fn encode_batch(readings: &[Reading], out: &mut Vec<u8>) {
    let mut strings = Strings {
        table: Table::with_capacity(readings.len() + 8, readings.len() * 8),
        interned: Vec::new(),
    };
    out.clear();
    out.reserve(HEADER + readings.len() * (RECORD + ENTRY + 24));
    out.resize(HEADER, 0);
    for r in readings {
        let (value, tag) = match &r.value {
            Value::Int(i) => (*i as u64, INT),
            Value::Float(f) => (f.to_bits(), FLOAT),
            Value::Bool(b) => (u64::from(*b), BOOL),
            Value::Str(s) => (u64::from(strings.table.push(s)), STRING),
        };
        let attribute = strings.intern(&r.attribute);
        let entity_type = match &r.entity_type {
            Some(t) => strings.intern(t),
            None => NONE,
        };
        let ts = match &r.ts {
            Some(t) => strings.table.push(t),
            None => NONE,
        };
        out.extend_from_slice(&r.entity_id.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(&attribute.to_le_bytes());
        out.extend_from_slice(&entity_type.to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&[tag, 0, 0, 0]);
    }
    strings.table.finish(KIND_READINGS, readings.len(), out);
}

pub(crate) fn encode_error(message: &str, out: &mut Vec<u8>) {
    let mut table = Table::with_capacity(1, message.len());
    out.clear();
    out.resize(HEADER, 0);
    table.push(message);
    table.finish(KIND_ERROR, 0, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(attribute: &str, value: Value) -> Reading {
        Reading {
            entity_id: -7,
            entity_type: Some("device".to_string()),
            attribute: attribute.to_string(),
            value,
            ts: Some("2026-11-24T10:00:00Z".to_string()),
        }
    }

    #[test]
    fn batches_round_trip() {
        let readings = vec![
            reading("temperature", Value::Float(72.5)),
            reading("temperature", Value::Int(i64::MIN)),
            reading("on", Value::Bool(true)),
            Reading {
                entity_type: None,
                ts: None,
                ..reading("status", Value::Str("on\"line".to_string()))
            },
        ];
        let mut out = Vec::new();
        encode_batch(&readings, &mut out);
        assert_eq!(decode_batch(&out).unwrap(), readings);
        // "temperature" and "device" once each, then "on", "status", the
        // string value and three timestamps.
        assert_eq!(u32_at(&out, 8), Some(8));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut good = Vec::new();
        encode_batch(&[reading("a", Value::Str("x".to_string()))], &mut good);
        assert!(decode_batch(&good[..12]).is_err());
        for (at, byte) in [
            (0, 1),
            (4, 9),
            (HEADER + 16, 9),
            (HEADER + 28, 9),
            (12, 0xff),
        ] {
            let mut b = good.clone();
            b[at] = byte;
            assert!(
                decode_batch(&b)
                    .unwrap_err()
                    .starts_with("invalid input batch"),
                "{} {}",
                at,
                byte
            );
        }
        let mut b = good.clone();
        b[HEADER + 29] = ENTITY_AS_JSON;
        b[HEADER..HEADER + 8].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            decode_batch(&b).unwrap_err(),
            "entity_id a is not an integer"
        );
    }

    #[test]
    fn errors_are_string_zero() {
        let mut out = Vec::new();
        encode_error("no", &mut out);
        assert_eq!(out.len(), HEADER + ENTRY + 2);
        assert_eq!(
            (u32_at(&out, 0), u32_at(&out, 8)),
            (Some(KIND_ERROR), Some(1))
        );
        assert_eq!(&out[HEADER + ENTRY..], b"no");
    }
}
