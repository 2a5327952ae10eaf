use atlas_core::RawReading;
use atlas_http::ApiError;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A problem with a whole request; nothing in it is staged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("request body is {got} bytes; the limit is {max}")]
    TooLarge { got: usize, max: usize },
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    #[error("request body must be {{\"readings\": [...]}}: {0}")]
    WrongShape(String),
    #[error("request has {got} readings; the limit is {max}")]
    TooMany { got: usize, max: usize },
    #[error("readings is empty")]
    Empty,
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let msg = e.to_string();
        match e {
            BatchError::TooLarge { .. } => ApiError::too_large("body_too_large", msg),
            BatchError::TooMany { .. } => ApiError::too_large("too_many_readings", msg),
            BatchError::Malformed(_) => ApiError::bad_request("malformed_json", msg),
            BatchError::WrongShape(_) => ApiError::bad_request("wrong_shape", msg),
            BatchError::Empty => ApiError::bad_request("empty_batch", msg),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    readings: Vec<&'a RawValue>,
}

/// Splits a body into readings. Each reading is parsed on its own, so one
/// bad reading becomes a per-reading rejection, not a failed request.
pub fn parse_batch(
    body: &[u8],
    max_body_bytes: usize,
    max_readings: usize,
) -> Result<Vec<Result<RawReading, String>>, BatchError> {
    if body.len() > max_body_bytes {
        return Err(BatchError::TooLarge {
            got: body.len(),
            max: max_body_bytes,
        });
    }
    let env: Envelope = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BatchError::WrongShape(e.to_string()),
        _ => BatchError::Malformed(e.to_string()),
    })?;
    if !atlas_http::is_json_object(body) {
        return Err(BatchError::WrongShape(
            "the body is not a JSON object".into(),
        ));
    }
    if env.readings.len() > max_readings {
        return Err(BatchError::TooMany {
            got: env.readings.len(),
            max: max_readings,
        });
    }
    if env.readings.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(env
        .readings
        .iter()
        .map(|raw| serde_json::from_str::<RawReading>(raw.get()).map_err(|e| strip_position(&e)))
        .collect())
}

/// serde's "at line 1 column 57" points into the reading's own slice, which
/// would only confuse; the index in the response says where it is.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<Result<RawReading, String>>, BatchError> {
        parse_batch(body.as_bytes(), 1024, 3)
    }

    #[test]
    fn whole_request_problems_are_named() {
        assert!(matches!(parse("{"), Err(BatchError::Malformed(_))));
        assert!(matches!(parse("not json"), Err(BatchError::Malformed(_))));
        assert!(matches!(parse("[]"), Err(BatchError::WrongShape(_))));
        assert!(matches!(
            parse(r#"{"readings": 5}"#),
            Err(BatchError::WrongShape(_))
        ));
        assert!(matches!(
            parse(r#"{"data": []}"#),
            Err(BatchError::WrongShape(_))
        ));
        assert!(matches!(
            parse(r#"{"readings": [], "x": 1}"#),
            Err(BatchError::WrongShape(_))
        ));
        // serde would fill the envelope from an array by position.
        assert!(matches!(
            parse(r#"[[{"entity_id": 1, "attribute": "a", "value": 1}]]"#),
            Err(BatchError::WrongShape(_))
        ));
        assert_eq!(parse(r#"{"readings": []}"#).unwrap_err(), BatchError::Empty);
        assert_eq!(
            parse(r#"{"readings": [1,2,3,4]}"#).unwrap_err(),
            BatchError::TooMany { got: 4, max: 3 }
        );
        let big = format!(r#"{{"readings": ["{}"]}}"#, "x".repeat(2000));
        assert!(matches!(parse(&big), Err(BatchError::TooLarge { .. })));
        assert!(matches!(
            parse_batch(&[0xff, 0xfe], 10, 1),
            Err(BatchError::Malformed(_))
        ));
    }

    #[test]
    fn bad_readings_are_reported_individually() {
        let out = parse(
            r#"{"readings": [
                {"entity_id": 1, "attribute": "a", "value": 1},
                {"entity_id": 1, "value": 1},
                7
            ]}"#,
        )
        .unwrap();
        assert!(out[0].is_ok());
        assert!(
            out[1]
                .as_ref()
                .unwrap_err()
                .contains("missing field `attribute`"),
            "{:?}",
            out[1]
        );
        assert!(
            !out[1].as_ref().unwrap_err().contains("line"),
            "{:?}",
            out[1]
        );
        assert!(out[2].is_err());
    }
}
