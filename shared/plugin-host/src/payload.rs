//! The ABI's payloads (JSON in version 1, binary in version 2) and the
//! checks a module passes before it may become a tenant's plugin.

use atlas_core::RawReading;
use serde::{Deserialize, Serialize};

use crate::{Host, Limits, Plugin, PluginError};

/// The payload a module speaks, from its exported `atlas_abi_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// Version 1: a JSON batch in, a JSON answer out.
    Json,
    /// Version 2: fixed-width records and a string table (`binary.rs`).
    Binary,
}

impl Abi {
    pub fn from_version(version: i32) -> Option<Self> {
        match version {
            atlas_plugin_sdk::JSON_ABI_VERSION => Some(Abi::Json),
            atlas_plugin_sdk::ABI_VERSION => Some(Abi::Binary),
            _ => None,
        }
    }

    pub fn version(self) -> i32 {
        match self {
            Abi::Json => atlas_plugin_sdk::JSON_ABI_VERSION,
            Abi::Binary => atlas_plugin_sdk::ABI_VERSION,
        }
    }

    /// A plugin's input for `readings`.
    pub fn encode(self, readings: &[RawReading]) -> Vec<u8> {
        match self {
            Abi::Json => serde_json::to_vec(&Batch { readings }).expect("readings serialize"),
            Abi::Binary => crate::binary::encode(readings),
        }
    }

    /// Reads a plugin's answer. Readings are only checked for shape here;
    /// ingest types them against the catalog like any other reading.
    pub fn decode(self, bytes: &[u8]) -> Result<Decoded, PluginError> {
        match self {
            Abi::Json => decode_json(bytes),
            Abi::Binary => crate::binary::decode(bytes),
        }
    }
}

/// Version 1's input, serialized straight from the readings (a `json!`
/// value in between doubled the host's share of the cost).
#[derive(Serialize)]
struct Batch<'a> {
    readings: &'a [RawReading],
}

/// Largest module accepted at upload.
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// The batch every upload is dry-run on.
pub const SAMPLE_BATCH: &str = r#"{"readings":[
{"entity_id":1,"entity_type":"device","attribute":"temperature","value":72.5,"ts":"2026-11-24T10:00:00Z"},
{"entity_id":1,"attribute":"status","value":"online","ts":"2026-11-24T10:00:00Z"},
{"entity_id":2,"attribute":"priority","value":8}]}"#;

/// What a plugin answered: a batch, or its reason to reject the input.
#[derive(Debug)]
pub enum Decoded {
    Readings(Vec<RawReading>),
    Rejected(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    #[serde(default)]
    readings: Option<Vec<RawReading>>,
    #[serde(default)]
    error: Option<String>,
}

/// A JSON batch or answer: version 1's payload, and what `atlas plugin
/// test` reads as input for either version.
fn decode_json(bytes: &[u8]) -> Result<Decoded, PluginError> {
    let answer: Answer =
        serde_json::from_slice(bytes).map_err(|e| PluginError::MalformedOutput(e.to_string()))?;
    match (answer.readings, answer.error) {
        (Some(r), None) => Ok(Decoded::Readings(r)),
        (None, Some(e)) => Ok(Decoded::Rejected(e)),
        _ => Err(PluginError::MalformedOutput(
            "expected exactly one of \"readings\" and \"error\"".into(),
        )),
    }
}

/// Everything an upload must pass: the size limit, compilation, the ABI
/// and imports, and a dry run on `SAMPLE_BATCH` within `limits` whose
/// output is a well-formed answer (rejecting the sample is allowed).
/// Returns the plugin and the fuel the dry run used.
pub fn check_upload(
    host: &Host,
    wasm: &[u8],
    limits: &Limits,
) -> Result<(Plugin, u64), PluginError> {
    if wasm.len() > MAX_MODULE_BYTES {
        return Err(PluginError::TooLarge {
            bytes: wasm.len(),
            max: MAX_MODULE_BYTES,
        });
    }
    let plugin = host.compile(wasm)?;
    let (_, out) = plugin.transform(host, &sample(), limits)?;
    Ok((plugin, out.fuel_used))
}

/// `SAMPLE_BATCH`'s readings.
pub fn sample() -> Vec<RawReading> {
    match decode_json(SAMPLE_BATCH.as_bytes()) {
        Ok(Decoded::Readings(r)) => r,
        _ => unreachable!("the sample batch is a batch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_a_batch_or_an_error() {
        assert_eq!(sample().len(), 3);
        assert!(matches!(
            Abi::Json.decode(br#"{"readings":[{"entity_id":1,"attribute":"a","value":1}]}"#),
            Ok(Decoded::Readings(r)) if r.len() == 1
        ));
        assert!(
            matches!(Abi::Json.decode(br#"{"error":"no"}"#), Ok(Decoded::Rejected(m)) if m == "no")
        );
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"readings":[],"error":"x"}"#,
            br#"{"readings":5}"#,
            br#"{"rows":[]}"#,
        ] {
            assert!(
                matches!(Abi::Json.decode(bad), Err(PluginError::MalformedOutput(_))),
                "{bad:?}"
            );
        }
    }
}
