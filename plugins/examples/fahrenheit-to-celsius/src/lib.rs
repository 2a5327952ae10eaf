//! Devices report `temperature` in °F; the catalog stores °C.
//!
//! Built with `--features abi-v1` it speaks ABI version 1 (JSON), so the
//! plugin benchmark can set the two payloads side by side on one transform.

use atlas_plugin_sdk::{Reading, Value};

pub fn transform(mut readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
    for r in readings.iter_mut().filter(|r| r.attribute == "temperature") {
        let f = r
            .value
            .as_f64()
            .ok_or_else(|| format!("temperature of entity {} is not a number", r.entity_id))?;
        r.value = Value::Float(((f - 32.0) * 5.0 / 9.0 * 100.0).round() / 100.0);
    }
    Ok(readings)
}

#[cfg(not(feature = "abi-v1"))]
atlas_plugin_sdk::plugin!(transform);
#[cfg(feature = "abi-v1")]
atlas_plugin_sdk::plugin_v1!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_only_temperatures() {
        let out = atlas_plugin_sdk::run(
            br#"{"readings":[{"entity_id":1,"attribute":"temperature","value":212},{"entity_id":1,"attribute":"humidity","value":40}]}"#,
            transform,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"readings":[{"entity_id":1,"attribute":"temperature","value":100.0},{"entity_id":1,"attribute":"humidity","value":40}]}"#
        );
    }
}
