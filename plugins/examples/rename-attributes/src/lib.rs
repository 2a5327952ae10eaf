//! Devices in the field report short or legacy names; the catalog uses
//! descriptive ones. Every other attribute passes unchanged.

use atlas_plugin_sdk::{plugin, Reading};

/// Device name -> catalog name.
const RENAMES: &[(&str, &str)] = &[
    ("temp", "temperature"),
    ("hum", "humidity"),
    ("batt", "battery"),
    ("rssi", "signal_strength"),
];

pub fn transform(mut readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
    for r in readings.iter_mut() {
        if let Some((_, to)) = RENAMES.iter().find(|(from, _)| *from == r.attribute) {
            r.attribute = (*to).to_string();
        }
    }
    Ok(readings)
}

plugin!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_known_names_only() {
        let out = atlas_plugin_sdk::run(
            br#"{"readings":[{"entity_id":1,"attribute":"temp","value":21.5},{"entity_id":1,"attribute":"status","value":"ok"}]}"#,
            transform,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"readings":[{"entity_id":1,"attribute":"temperature","value":21.5},{"entity_id":1,"attribute":"status","value":"ok"}]}"#
        );
    }
}
