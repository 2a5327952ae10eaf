use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest magnitude a `decimal(20,5)` column holds (15 integer digits).
pub const DECIMAL_MAX_ABS: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0); // 10^15
/// Cap on a string value, so one reading cannot bloat a row or a JSONB document.
pub const MAX_STRING_BYTES: usize = 4096;

/// The catalog's type for an attribute; decides which typed column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Int,
    Decimal,
    Bool,
    String,
    Timestamp,
}

impl DataType {
    pub const ALL: [DataType; 5] = [
        DataType::Int,
        DataType::Decimal,
        DataType::Bool,
        DataType::String,
        DataType::Timestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Int => "int",
            DataType::Decimal => "decimal",
            DataType::Bool => "bool",
            DataType::String => "string",
            DataType::Timestamp => "timestamp",
        }
    }

    /// The type auto-registration gives an attribute it has never seen.
    /// Strings stay strings: guessing timestamps from text would surprise.
    pub fn infer(raw: &serde_json::Value) -> Option<DataType> {
        match raw {
            serde_json::Value::Bool(_) => Some(DataType::Bool),
            serde_json::Value::Number(n) if n.is_i64() => Some(DataType::Int),
            serde_json::Value::Number(_) => Some(DataType::Decimal),
            serde_json::Value::String(_) => Some(DataType::String),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ValueError::UnknownType(s.to_owned()))
    }
}

/// A reading's value, typed by the attribute catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Decimal(Decimal),
    Bool(bool),
    String(String),
    Timestamp(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown data type {0:?}; expected one of int, decimal, bool, string, timestamp")]
    UnknownType(String),
    #[error("value {got} is not a valid {expected}")]
    WrongType { expected: DataType, got: String },
    #[error("value {0} is out of range for decimal(20,5): at most 15 integer digits")]
    DecimalRange(String),
    #[error("string value is {0} bytes; the limit is {MAX_STRING_BYTES}")]
    StringTooLong(usize),
    #[error("string value contains U+0000, which cannot be stored")]
    NulCharacter,
}

impl Value {
    /// Types a JSON value against the catalog. Numbers are not coerced from
    /// strings, nor booleans from numbers: a device that sends the wrong type
    /// is told so rather than silently converted.
    pub fn parse(expected: DataType, raw: &serde_json::Value) -> Result<Value, ValueError> {
        let wrong = || ValueError::WrongType {
            expected,
            got: truncate(raw.to_string()),
        };
        match (expected, raw) {
            (DataType::Int, serde_json::Value::Number(n)) => {
                n.as_i64().map(Value::Int).ok_or_else(wrong)
            }
            (DataType::Decimal, serde_json::Value::Number(n)) => {
                // Number's Display is the shortest round-trip form, so 72.5 stays 72.5.
                let d = Decimal::from_str(&n.to_string())
                    .or_else(|_| Decimal::from_scientific(&n.to_string()))
                    .map_err(|_| ValueError::DecimalRange(n.to_string()))?;
                if d.abs() >= DECIMAL_MAX_ABS {
                    return Err(ValueError::DecimalRange(n.to_string()));
                }
                Ok(Value::Decimal(d.round_dp(5)))
            }
            (DataType::Bool, serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            (DataType::String, serde_json::Value::String(s)) => {
                if s.len() > MAX_STRING_BYTES {
                    Err(ValueError::StringTooLong(s.len()))
                } else if s.contains('\0') {
                    // PostgreSQL's text and jsonb refuse it; passing it on
                    // would fail the whole staging COPY, not this reading.
                    Err(ValueError::NulCharacter)
                } else {
                    Ok(Value::String(s.clone()))
                }
            }
            (DataType::Timestamp, serde_json::Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| Value::Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| wrong()),
            _ => Err(wrong()),
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Value::Int(_) => DataType::Int,
            Value::Decimal(_) => DataType::Decimal,
            Value::Bool(_) => DataType::Bool,
            Value::String(_) => DataType::String,
            Value::Timestamp(_) => DataType::Timestamp,
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > 64 {
        let cut = (0..=61).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decimal_max_is_ten_to_the_fifteen() {
        assert_eq!(
            DECIMAL_MAX_ABS,
            Decimal::from_str("1000000000000000").unwrap()
        );
    }

    #[test]
    fn values_are_typed_by_the_catalog() {
        assert_eq!(
            Value::parse(DataType::Int, &json!(7)).unwrap(),
            Value::Int(7)
        );
        assert_eq!(
            Value::parse(DataType::Decimal, &json!(72.5)).unwrap(),
            Value::Decimal(Decimal::from_str("72.5").unwrap())
        );
        assert_eq!(
            Value::parse(DataType::Decimal, &json!(3)).unwrap(),
            Value::Decimal(Decimal::from(3))
        );
        assert_eq!(
            Value::parse(DataType::Bool, &json!(true)).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            Value::parse(DataType::String, &json!("online")).unwrap(),
            Value::String("online".into())
        );
        let ts = Value::parse(DataType::Timestamp, &json!("2026-11-24T10:00:00+01:00")).unwrap();
        assert_eq!(
            ts,
            Value::Timestamp("2026-11-24T09:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn wrong_types_are_refused_not_coerced() {
        for (t, v) in [
            (DataType::Int, json!(1.5)),
            (DataType::Int, json!("1")),
            (DataType::Decimal, json!("72.5")),
            (DataType::Bool, json!(1)),
            (DataType::String, json!(5)),
            (DataType::Timestamp, json!("yesterday")),
            (DataType::Int, json!(null)),
            (DataType::String, json!({"a": 1})),
        ] {
            let err = Value::parse(t, &v).unwrap_err();
            assert!(
                matches!(err, ValueError::WrongType { .. }),
                "{t} {v}: {err}"
            );
        }
    }

    #[test]
    fn decimals_beyond_the_column_are_refused() {
        assert!(matches!(
            Value::parse(DataType::Decimal, &json!(1e15)),
            Err(ValueError::DecimalRange(_))
        ));
        assert!(Value::parse(DataType::Decimal, &json!(999999999999999.5)).is_ok());
        assert!(matches!(
            Value::parse(DataType::Decimal, &json!(1e300)),
            Err(ValueError::DecimalRange(_))
        ));
        // Tiny values round to the column's five places instead of failing.
        assert_eq!(
            Value::parse(DataType::Decimal, &json!(1e-7)).unwrap(),
            Value::Decimal(Decimal::ZERO)
        );
    }

    #[test]
    fn long_strings_are_refused() {
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        assert_eq!(
            Value::parse(DataType::String, &json!(long)),
            Err(ValueError::StringTooLong(MAX_STRING_BYTES + 1))
        );
    }

    #[test]
    fn nul_characters_are_refused() {
        for s in ["\0", "on\0line", "\u{0}x"] {
            assert_eq!(
                Value::parse(DataType::String, &json!(s)),
                Err(ValueError::NulCharacter),
                "{s:?}"
            );
        }
        // Other control characters are storable and stay.
        assert!(Value::parse(DataType::String, &json!("a\u{1}\tb")).is_ok());
    }

    #[test]
    fn inference_for_auto_registration() {
        assert_eq!(DataType::infer(&json!(3)), Some(DataType::Int));
        assert_eq!(DataType::infer(&json!(3.5)), Some(DataType::Decimal));
        assert_eq!(DataType::infer(&json!(false)), Some(DataType::Bool));
        assert_eq!(DataType::infer(&json!("x")), Some(DataType::String));
        assert_eq!(DataType::infer(&json!(null)), None);
        assert_eq!(DataType::infer(&json!([1])), None);
    }

    #[test]
    fn data_types_round_trip_through_text() {
        for t in DataType::ALL {
            assert_eq!(t.as_str().parse::<DataType>().unwrap(), t);
        }
        assert!("float".parse::<DataType>().is_err());
    }
}
