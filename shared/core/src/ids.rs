use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier failed to parse; the message names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("tenant id must be a positive integer, got {0:?}")]
    Tenant(String),
    #[error("entity_id must be a non-negative 64-bit integer, got {0}")]
    Entity(String),
    #[error(
        "attribute name {0:?} is invalid: use 1-63 characters of a-z, 0-9 and _, starting with a letter"
    )]
    Attribute(String),
    #[error("entity_type must be 1-100 printable characters, got {0:?}")]
    EntityType(String),
}

/// A tenant; always positive. Comes from the authorizer context, never a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(i64);

impl TenantId {
    pub fn new(raw: i64) -> Result<Self, IdError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(IdError::Tenant(raw.to_string()))
        }
    }

    /// Parses the decimal text form used in JWT claims, Kafka headers and keys.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        raw.trim()
            .parse::<i64>()
            .map_err(|_| IdError::Tenant(raw.to_owned()))
            .and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An entity (device, asset, ...) within a tenant. Ids are chosen by the
/// tenant, so two tenants may use the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityId(i64);

impl EntityId {
    pub fn new(raw: i64) -> Result<Self, IdError> {
        if raw >= 0 {
            Ok(Self(raw))
        } else {
            Err(IdError::Entity(raw.to_string()))
        }
    }

    /// Parses a URL path segment: a non-negative integer, nothing else.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Entity(raw.to_owned()));
        }
        raw.parse::<i64>()
            .map_err(|_| IdError::Entity(raw.to_owned()))
            .and_then(Self::new)
    }

    /// Parses a JSON number; floats and out-of-range integers are refused.
    pub fn from_json(raw: &serde_json::Value) -> Result<Self, IdError> {
        raw.as_i64()
            .ok_or_else(|| IdError::Entity(raw.to_string()))
            .and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An attribute name as the catalog stores it. The alphabet is deliberately
/// narrow: names become JSONB keys and appear in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AttributeName(String);

impl AttributeName {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.as_bytes()[0].is_ascii_lowercase()
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Attribute(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AttributeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The kind of entity, as the seed's `entities.entity_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EntityType(String);

impl EntityType {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok =
            !raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.chars().all(|c| !c.is_control());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::EntityType(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_must_be_positive_integers() {
        assert_eq!(TenantId::parse("42").unwrap().get(), 42);
        assert!(TenantId::parse("0").is_err());
        assert!(TenantId::parse("-3").is_err());
        assert!(TenantId::parse("1; DROP TABLE tenants").is_err());
        assert!(TenantId::parse("").is_err());
    }

    #[test]
    fn entity_ids_refuse_floats_and_negatives() {
        assert_eq!(
            EntityId::from_json(&serde_json::json!(123)).unwrap().get(),
            123
        );
        assert!(EntityId::from_json(&serde_json::json!(1.5)).is_err());
        assert!(EntityId::from_json(&serde_json::json!(-1)).is_err());
        assert!(EntityId::from_json(&serde_json::json!("123")).is_err());
        assert!(EntityId::from_json(&serde_json::json!(u64::MAX)).is_err());
    }

    #[test]
    fn entity_ids_in_paths_are_plain_digits() {
        assert_eq!(EntityId::parse("42").unwrap().get(), 42);
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "12a",
            "99999999999999999999",
            " 1",
        ] {
            assert!(EntityId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_names_use_a_narrow_alphabet() {
        assert!(AttributeName::parse("temperature").is_ok());
        assert!(AttributeName::parse("last_seen2").is_ok());
        for bad in ["", "Temp", "2x", "a-b", "a b", "x'); --", &"a".repeat(64)] {
            assert!(
                AttributeName::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn entity_types_refuse_control_characters() {
        assert!(EntityType::parse("device").is_ok());
        assert!(EntityType::parse("").is_err());
        assert!(EntityType::parse("a\u{0}b").is_err());
        assert!(EntityType::parse(&"x".repeat(101)).is_err());
    }
}
