//! Meters report voltage (V) and current (A) as separate readings. For each
//! entity and time that has both, this adds `power` = voltage x current (W)
//! and keeps the originals.

use atlas_plugin_sdk::{plugin, Reading, Value};

pub fn transform(readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
    let mut derived = Vec::new();
    for v in readings.iter().filter(|r| r.attribute == "voltage") {
        let current = readings
            .iter()
            .find(|r| r.attribute == "current" && r.entity_id == v.entity_id && r.ts == v.ts);
        if let Some(c) = current {
            let (volts, amps) = match (v.value.as_f64(), c.value.as_f64()) {
                (Some(v), Some(a)) => (v, a),
                _ => {
                    return Err(format!(
                        "voltage and current of entity {} must be numbers",
                        v.entity_id
                    ))
                }
            };
            derived.push(Reading {
                entity_id: v.entity_id,
                entity_type: v.entity_type.clone(),
                attribute: "power".to_string(),
                value: Value::Float((volts * amps * 1000.0).round() / 1000.0),
                ts: v.ts.clone(),
            });
        }
    }
    let mut out = readings;
    out.extend(derived);
    Ok(out)
}

plugin!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_power_where_both_halves_are_present() {
        let out = atlas_plugin_sdk::run(
            br#"{"readings":[{"entity_id":1,"attribute":"voltage","value":230,"ts":"2026-11-24T10:00:00Z"},{"entity_id":1,"attribute":"current","value":2.5,"ts":"2026-11-24T10:00:00Z"},{"entity_id":2,"attribute":"voltage","value":110}]}"#,
            transform,
        );
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.ends_with(
                r#"{"entity_id":1,"attribute":"power","value":575.0,"ts":"2026-11-24T10:00:00Z"}]}"#
            ),
            "{}",
            out
        );
        assert_eq!(out.matches("power").count(), 1, "{}", out);
    }
}
