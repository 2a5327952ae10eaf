//! The ABI's payload (JSON, version 1) and the checks a module passes
//! before it may become a tenant's plugin.

use atlas_core::RawReading;
use serde::Deserialize;

use crate::{Host, Limits, Plugin, PluginError};

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

/// Reads a plugin's output. Readings are only checked for shape here;
/// ingest types them against the catalog like any other reading.
pub fn decode_output(bytes: &[u8]) -> Result<Decoded, PluginError> {
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
    let out = plugin.call(host, SAMPLE_BATCH.as_bytes(), limits)?;
    decode_output(&out.bytes)?;
    Ok((plugin, out.fuel_used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_a_batch_or_an_error() {
        assert!(matches!(
            decode_output(br#"{"readings":[{"entity_id":1,"attribute":"a","value":1}]}"#),
            Ok(Decoded::Readings(r)) if r.len() == 1
        ));
        assert!(
            matches!(decode_output(br#"{"error":"no"}"#), Ok(Decoded::Rejected(m)) if m == "no")
        );
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"readings":[],"error":"x"}"#,
            br#"{"readings":5}"#,
            br#"{"rows":[]}"#,
        ] {
            assert!(
                matches!(decode_output(bad), Err(PluginError::MalformedOutput(_))),
                "{bad:?}"
            );
        }
    }
}
