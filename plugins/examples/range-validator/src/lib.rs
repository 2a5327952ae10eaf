//! A reading outside its attribute's physical range means a faulty sensor;
//! the whole batch is refused with a message naming the reading, so the
//! device's operator sees it (HTTP 422) instead of bad data being stored.

use atlas_plugin_sdk::{plugin, Reading};

/// Attribute -> inclusive range.
const RANGES: &[(&str, f64, f64)] = &[
    ("temperature", -90.0, 60.0),
    ("humidity", 0.0, 100.0),
    ("battery", 0.0, 100.0),
];

pub fn transform(readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
    for (i, r) in readings.iter().enumerate() {
        if let Some((_, lo, hi)) = RANGES.iter().find(|(a, _, _)| *a == r.attribute) {
            let ok = r.value.as_f64().map_or(false, |v| v >= *lo && v <= *hi);
            if !ok {
                return Err(format!(
                    "reading {} (entity {}): {} {} is outside {}..={}",
                    i, r.entity_id, r.attribute, r.value, lo, hi
                ));
            }
        }
    }
    Ok(readings)
}

plugin!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_in_range_and_names_the_first_bad_reading() {
        let good = br#"{"readings":[{"entity_id":1,"attribute":"humidity","value":40}]}"#;
        assert_eq!(atlas_plugin_sdk::run(good, transform), good.to_vec());
        let bad = br#"{"readings":[{"entity_id":1,"attribute":"humidity","value":40},{"entity_id":7,"attribute":"humidity","value":140}]}"#;
        assert_eq!(
            String::from_utf8(atlas_plugin_sdk::run(bad, transform)).unwrap(),
            r#"{"error":"reading 1 (entity 7): humidity 140 is outside 0..=100"}"#
        );
    }
}
