//! JSON against a compact binary payload, measured before choosing the
//! ABI's encoding. Both sides of a call are timed natively on the same
//! batch: the host encodes the readings, the guest decodes them and encodes
//! its answer (an identity transform), the host decodes that.
//!
//! JSON uses the real code: serde on the host and the SDK's codec in the
//! guest. The binary form is the one a version-2 ABI would most plausibly
//! use: little-endian fixed-width numbers and length-prefixed strings.

use atlas_core::RawReading;
use atlas_plugin_sdk::{Reading, Value};

/// (JSON, binary) nanoseconds per reading for the full round trip, medians
/// of `iterations`.
pub fn measure(input: &[u8], iterations: usize) -> Result<(f64, f64), String> {
    let host: Vec<RawReading> = atlas_plugin_host::decode_output(input)
        .ok()
        .and_then(|d| match d {
            atlas_plugin_host::Decoded::Readings(r) => Some(r),
            atlas_plugin_host::Decoded::Rejected(_) => None,
        })
        .ok_or("the benchmark batch does not decode")?;
    let n = host.len() as f64;
    let json = || -> Result<usize, String> {
        let wire = serde_json::to_vec(&Batch { readings: &host }).map_err(|e| e.to_string())?;
        let answer = atlas_plugin_sdk::run(&wire, Ok);
        match atlas_plugin_host::decode_output(&answer).map_err(|e| e.to_string())? {
            atlas_plugin_host::Decoded::Readings(r) => Ok(r.len()),
            atlas_plugin_host::Decoded::Rejected(e) => Err(e),
        }
    };
    let binary = || -> Result<usize, String> {
        let wire = encode_host(&host);
        let guest = decode_guest(&wire).ok_or("binary decode")?;
        let answer = encode_guest(&guest);
        Ok(decode_host(&answer).ok_or("binary decode")?.len())
    };
    if json()? != host.len() || binary()? != host.len() {
        return Err("a codec lost readings".into());
    }
    let time = |f: &dyn Fn() -> Result<usize, String>| -> Result<f64, String> {
        let mut t = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let s = std::time::Instant::now();
            std::hint::black_box(f()?);
            t.push(s.elapsed().as_nanos() as f64 / n);
        }
        t.sort_by(f64::total_cmp);
        Ok(t[t.len() / 2])
    };
    Ok((time(&json)?, time(&binary)?))
}

/// The host's JSON input, serialized as ingest does it.
#[derive(serde::Serialize)]
struct Batch<'a> {
    readings: &'a [RawReading],
}

const INT: u8 = 0;
const FLOAT: u8 = 1;
const BOOL: u8 = 2;
const STR: u8 = 3;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn encode_host(readings: &[RawReading]) -> Vec<u8> {
    let mut out = Vec::with_capacity(readings.len() * 64);
    out.extend_from_slice(&(readings.len() as u32).to_le_bytes());
    for r in readings {
        out.extend_from_slice(&r.entity_id.as_i64().unwrap_or(0).to_le_bytes());
        put_opt(&mut out, r.entity_type.as_deref());
        put_str(&mut out, &r.attribute);
        match &r.value {
            serde_json::Value::Number(n) if n.is_i64() => {
                out.push(INT);
                out.extend_from_slice(&n.as_i64().unwrap_or(0).to_le_bytes());
            }
            serde_json::Value::Number(n) => {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
            serde_json::Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
            other => {
                out.push(STR);
                put_str(&mut out, other.as_str().unwrap_or_default());
            }
        }
        put_opt(&mut out, r.ts.as_deref());
    }
    out
}

fn encode_guest(readings: &[Reading]) -> Vec<u8> {
    let mut out = Vec::with_capacity(readings.len() * 64);
    out.extend_from_slice(&(readings.len() as u32).to_le_bytes());
    for r in readings {
        out.extend_from_slice(&r.entity_id.to_le_bytes());
        put_opt(&mut out, r.entity_type.as_deref());
        put_str(&mut out, &r.attribute);
        match &r.value {
            Value::Int(i) => {
                out.push(INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
            Value::Str(s) => {
                out.push(STR);
                put_str(&mut out, s);
            }
        }
        put_opt(&mut out, r.ts.as_deref());
    }
    out
}

struct Cursor<'a>(&'a [u8]);

/// A decoded reading: entity, type, attribute, value, ts.
type Fields = (i64, Option<String>, String, Value, Option<String>);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => Some(Some(self.str()?)),
        }
    }
    fn reading(&mut self) -> Option<Fields> {
        let entity = i64::from_le_bytes(self.u64()?);
        let (etype, attribute) = (self.opt()?, self.str()?);
        let value = match self.u8()? {
            INT => Value::Int(i64::from_le_bytes(self.u64()?)),
            FLOAT => Value::Float(f64::from_le_bytes(self.u64()?)),
            BOOL => Value::Bool(self.u8()? != 0),
            _ => Value::Str(self.str()?),
        };
        Some((entity, etype, attribute, value, self.opt()?))
    }
}

fn decode_guest(bytes: &[u8]) -> Option<Vec<Reading>> {
    let mut c = Cursor(bytes);
    (0..c.u32()?)
        .map(|_| {
            let (entity_id, entity_type, attribute, value, ts) = c.reading()?;
            Some(Reading {
                entity_id,
                entity_type,
                attribute,
                value,
                ts,
            })
        })
        .collect()
}

fn decode_host(bytes: &[u8]) -> Option<Vec<RawReading>> {
    let mut c = Cursor(bytes);
    (0..c.u32()?)
        .map(|_| {
            let (entity, entity_type, attribute, value, ts) = c.reading()?;
            let value = match value {
                Value::Int(i) => serde_json::Value::from(i),
                Value::Float(f) => serde_json::Value::from(f),
                Value::Bool(b) => serde_json::Value::from(b),
                Value::Str(s) => serde_json::Value::from(s),
            };
            Some(RawReading {
                entity_id: entity.into(),
                entity_type,
                attribute,
                value,
                ts,
            })
        })
        .collect()
}
