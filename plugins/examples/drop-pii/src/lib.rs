//! Some devices report who used them. Personal data must never reach the
//! store, so those attributes are dropped at the edge.

use atlas_plugin_sdk::{plugin, Reading};

/// Exact names, and prefixes that mark a whole family (`owner_*`).
const PII: &[&str] = &["email", "phone", "ssn", "gps_exact", "driver_name"];
const PII_PREFIXES: &[&str] = &["owner_", "user_"];

fn is_pii(attribute: &str) -> bool {
    PII.contains(&attribute) || PII_PREFIXES.iter().any(|p| attribute.starts_with(p))
}

pub fn transform(readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
    Ok(readings
        .into_iter()
        .filter(|r| !is_pii(&r.attribute))
        .collect())
}

plugin!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_personal_attributes() {
        let out = atlas_plugin_sdk::run(
            br#"{"readings":[{"entity_id":1,"attribute":"email","value":"a@b.c"},{"entity_id":1,"attribute":"owner_name","value":"Ann"},{"entity_id":1,"attribute":"humidity","value":40}]}"#,
            transform,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"readings":[{"entity_id":1,"attribute":"humidity","value":40}]}"#
        );
    }
}
