//! How Debezium's JSON converter writes PostgreSQL values, and how each is
//! read back exactly:
//!
//! - `BIGINT`: an int64 number.
//! - `TIMESTAMPTZ`: an `io.debezium.time.ZonedTimestamp`, an ISO-8601
//!   string with its offset.
//! - `NUMERIC(p, s)` under `decimal.handling.mode`:
//!   - `precise` (the default): base64 of the unscaled value's big-endian
//!     two's-complement bytes, the scale in the schema's parameters (or,
//!     without a schema, the column's own);
//!   - `string`: the decimal as text;
//!   - `double`: a JSON number, read from its shortest text so no error is
//!     added to what the connector already rounded;
//!   - unconstrained `NUMERIC` under `precise`: a
//!     `io.debezium.data.VariableScaleDecimal`, `{"scale": s, "value": base64}`.
//! - `JSONB`: an `io.debezium.data.Json` string holding the document.
//! - A TOASTed column an update left unchanged: Debezium's placeholder
//!   `__debezium_unavailable_value`, kept as `Datum::Unavailable` so the
//!   loader keeps what it has.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

/// Debezium's stand-in for a TOASTed value it did not read.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// How a `NUMERIC` travels when the record carries no schema to say
/// (the connector's `decimal.handling.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecimalMode {
    #[default]
    Precise,
    String,
    Double,
}

impl std::str::FromStr for DecimalMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "precise" => Ok(Self::Precise),
            "string" => Ok(Self::String),
            "double" => Ok(Self::Double),
            other => Err(format!(
                "decimal.handling.mode {other:?}: expected precise, string or double"
            )),
        }
    }
}

/// A column's PostgreSQL type, as far as decoding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int64,
    Bool,
    Text,
    Timestamp,
    /// `NUMERIC(p, scale)`.
    Decimal {
        scale: u32,
    },
    Json,
}

/// One decoded column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    /// A TOASTed value an update did not touch: keep the stored one.
    Unavailable,
    Int64(i64),
    Bool(bool),
    Text(String),
    Timestamp(DateTime<Utc>),
    Decimal(Decimal),
    Json(Document),
}

/// A JSON document exactly as the connector sent it: its numbers keep
/// every digit (a `NUMERIC(20, 5)` reading in `hot_attrs` holds more than
/// an f64 does), so the warehouse stores what PostgreSQL stored.
#[derive(Debug, Clone)]
pub struct Document(Box<serde_json::value::RawValue>);

impl Document {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text.to_owned()).map(Document)
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }

    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

/// What the record's own schema says of a field, when it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSchema<'a> {
    /// Kafka Connect's type: `int64`, `bytes`, `string`, `double`, `struct`...
    pub connect_type: Option<&'a str>,
    /// The logical name, e.g. `org.apache.kafka.connect.data.Decimal`.
    pub name: Option<&'a str>,
    /// `parameters.scale` of a Decimal.
    pub scale: Option<u32>,
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(pub String);

fn bad(msg: impl Into<String>) -> BadValue {
    BadValue(msg.into())
}

/// Decodes `raw`, a value of a column of `kind`, using the record's
/// schema when present and `mode` for numerics when not.
pub fn decode(
    raw: &Value,
    kind: Kind,
    schema: FieldSchema<'_>,
    mode: DecimalMode,
) -> Result<Datum, BadValue> {
    if raw.is_null() {
        return Ok(Datum::Null);
    }
    if raw.as_str() == Some(UNAVAILABLE) {
        return Ok(Datum::Unavailable);
    }
    match kind {
        Kind::Int64 => raw
            .as_i64()
            .map(Datum::Int64)
            .ok_or_else(|| bad(format!("expected an int64, found {}", shape(raw)))),
        Kind::Bool => raw
            .as_bool()
            .map(Datum::Bool)
            .ok_or_else(|| bad(format!("expected a boolean, found {}", shape(raw)))),
        Kind::Text => raw
            .as_str()
            .map(|s| Datum::Text(s.to_owned()))
            .ok_or_else(|| bad(format!("expected a string, found {}", shape(raw)))),
        Kind::Timestamp => zoned_timestamp(raw).map(Datum::Timestamp),
        Kind::Json => json(raw).map(Datum::Json),
        Kind::Decimal { scale } => decimal(raw, scale, schema, mode).map(Datum::Decimal),
    }
}

/// `io.debezium.time.ZonedTimestamp`: "2026-11-24T10:15:30.123456Z".
pub fn zoned_timestamp(raw: &Value) -> Result<DateTime<Utc>, BadValue> {
    let s = raw.as_str().ok_or_else(|| {
        bad(format!(
            "expected a ZonedTimestamp string, found {}",
            shape(raw)
        ))
    })?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| bad(format!("ZonedTimestamp {s:?}: {e}")))
}

/// `io.debezium.data.Json`: the document as a string (an already parsed
/// object or array is taken as it is).
fn json(raw: &Value) -> Result<Document, BadValue> {
    let invalid = |e: serde_json::Error| bad(format!("io.debezium.data.Json: {e}"));
    match raw {
        Value::String(s) => Document::parse(s).map_err(invalid),
        Value::Object(_) | Value::Array(_) => Document::parse(&raw.to_string()).map_err(invalid),
        other => Err(bad(format!(
            "expected an io.debezium.data.Json string, found {}",
            shape(other)
        ))),
    }
}

fn decimal(
    raw: &Value,
    column_scale: u32,
    schema: FieldSchema<'_>,
    mode: DecimalMode,
) -> Result<Decimal, BadValue> {
    if let Value::Object(o) = raw {
        // VariableScaleDecimal: the scale travels with the value.
        let scale = o
            .get("scale")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| bad("VariableScaleDecimal without a scale"))?;
        let value = o
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("VariableScaleDecimal without a value"))?;
        return unscaled_bytes(value, scale);
    }
    let mode = match (schema.connect_type, raw) {
        (Some("bytes"), _) => DecimalMode::Precise,
        (Some("string"), _) => DecimalMode::String,
        (Some("double" | "float64" | "float32" | "float"), _) => DecimalMode::Double,
        // Without a schema a number can only be `double` mode's.
        (_, Value::Number(_)) => DecimalMode::Double,
        _ => mode,
    };
    match (mode, raw) {
        (DecimalMode::Precise, Value::String(s)) => {
            unscaled_bytes(s, schema.scale.unwrap_or(column_scale))
        }
        (DecimalMode::String, Value::String(s)) => {
            s.parse().map_err(|e| bad(format!("decimal {s:?}: {e}")))
        }
        // serde_json prints a float's shortest round-trip text: 72.5 stays
        // 72.5 instead of becoming 72.5000000000000000001.
        (DecimalMode::Double, Value::Number(n)) => {
            let text = n.to_string();
            Decimal::from_str_exact(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|e| bad(format!("decimal {text}: {e}")))
        }
        (mode, other) => Err(bad(format!(
            "expected a {mode:?} decimal, found {}",
            shape(other)
        ))),
    }
}

/// Base64 of a big-endian two's-complement unscaled integer.
fn unscaled_bytes(b64: &str, scale: u32) -> Result<Decimal, BadValue> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| bad(format!("decimal bytes {b64:?}: {e}")))?;
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(bad(format!(
            "decimal of {} bytes: expected 1 to 16",
            bytes.len()
        )));
    }
    // Sign-extend to 16 bytes.
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    let unscaled = i128::from_be_bytes(wide);
    Decimal::try_from_i128_with_scale(unscaled, scale)
        .map_err(|e| bad(format!("decimal {unscaled}e-{scale}: {e}")))
}

/// A short description of a JSON value for an error message.
pub(crate) fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64_of(unscaled: i128) -> String {
        // The shortest two's-complement form, as Java's BigInteger writes it.
        let bytes = unscaled.to_be_bytes();
        let mut start = 0;
        while start < 15 {
            let (b, next) = (bytes[start], bytes[start + 1]);
            if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        STANDARD.encode(&bytes[start..])
    }

    fn precise(raw: &str, scale: Option<u32>) -> Result<Datum, BadValue> {
        let schema = FieldSchema {
            connect_type: Some("bytes"),
            name: Some("org.apache.kafka.connect.data.Decimal"),
            scale,
        };
        decode(
            &json!(raw),
            Kind::Decimal { scale: 5 },
            schema,
            DecimalMode::Precise,
        )
    }

    #[test]
    fn a_twenty_digit_numeric_is_exact() {
        // numeric(20, 5) at its widest: more than an i64 holds unscaled.
        let unscaled: i128 = 12_345_678_901_234_567_891;
        let raw = b64_of(unscaled);
        assert_eq!(STANDARD.decode(&raw).unwrap().len(), 9);
        assert_eq!(
            precise(&raw, Some(5)).unwrap(),
            Datum::Decimal("123456789012345.67891".parse().unwrap())
        );
        assert_eq!(
            precise(&b64_of(-unscaled), Some(5)).unwrap(),
            Datum::Decimal("-123456789012345.67891".parse().unwrap())
        );
    }

    #[test]
    fn precise_decimals_take_the_schema_scale_or_the_columns() {
        // 0x0A = 10; -1 is 0xFF in one byte.
        assert_eq!(
            precise("Cg==", Some(1)).unwrap(),
            Datum::Decimal("1.0".parse().unwrap())
        );
        assert_eq!(
            decode(
                &json!("Cg=="),
                Kind::Decimal { scale: 5 },
                FieldSchema::default(),
                DecimalMode::Precise
            )
            .unwrap(),
            Datum::Decimal("0.00010".parse().unwrap())
        );
        assert_eq!(
            precise("/w==", Some(0)).unwrap(),
            Datum::Decimal(Decimal::NEGATIVE_ONE)
        );
        assert!(precise("not base64!", Some(0)).is_err());
        assert!(precise("", Some(0)).is_err());
        assert!(precise(&STANDARD.encode([1u8; 17]), Some(0)).is_err());
    }

    #[test]
    fn string_double_and_variable_scale_decimals() {
        let kind = Kind::Decimal { scale: 5 };
        let string = FieldSchema {
            connect_type: Some("string"),
            ..Default::default()
        };
        assert_eq!(
            decode(&json!("72.50000"), kind, string, DecimalMode::Precise).unwrap(),
            Datum::Decimal("72.50000".parse().unwrap())
        );
        assert_eq!(
            decode(
                &json!("72.5"),
                kind,
                FieldSchema::default(),
                DecimalMode::String
            )
            .unwrap(),
            Datum::Decimal("72.5".parse().unwrap())
        );
        // double mode: no binary noise added.
        assert_eq!(
            decode(
                &json!(72.1),
                kind,
                FieldSchema::default(),
                DecimalMode::Precise
            )
            .unwrap(),
            Datum::Decimal("72.1".parse().unwrap())
        );
        assert_eq!(
            decode(
                &json!({"scale": 2, "value": "MDk="}),
                kind,
                FieldSchema::default(),
                DecimalMode::Precise
            )
            .unwrap(),
            Datum::Decimal("123.45".parse().unwrap())
        );
    }

    #[test]
    fn timestamps_json_and_placeholders() {
        let none = FieldSchema::default();
        let mode = DecimalMode::Precise;
        assert_eq!(
            decode(
                &json!("2026-11-24T10:15:30.123456Z"),
                Kind::Timestamp,
                none,
                mode
            )
            .unwrap(),
            Datum::Timestamp("2026-11-24T10:15:30.123456Z".parse().unwrap())
        );
        assert_eq!(
            decode(
                &json!("2026-11-24T12:15:30+02:00"),
                Kind::Timestamp,
                none,
                mode
            )
            .unwrap(),
            Datum::Timestamp("2026-11-24T10:15:30Z".parse().unwrap())
        );
        assert!(decode(&json!(1_764_000_000_000i64), Kind::Timestamp, none, mode).is_err());
        assert_eq!(
            decode(&json!(r#"{"status":"online"}"#), Kind::Json, none, mode).unwrap(),
            Datum::Json(Document::parse(r#"{"status":"online"}"#).unwrap())
        );
        assert_eq!(
            decode(&json!(UNAVAILABLE), Kind::Json, none, mode).unwrap(),
            Datum::Unavailable
        );
        assert_eq!(
            decode(&Value::Null, Kind::Int64, none, mode).unwrap(),
            Datum::Null
        );
        assert!(decode(&json!(1.5), Kind::Int64, none, mode).is_err());
        assert!(decode(&json!("1"), Kind::Bool, none, mode).is_err());
    }
}
