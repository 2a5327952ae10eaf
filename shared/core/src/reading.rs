use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{AttributeName, DataType, EntityId, EntityType, IdError, Value, ValueError};

/// One reading as a device sends it, before the catalog has typed it.
///
/// Unknown fields are refused so that a typo such as `"timestamp"` for `"ts"`
/// is reported instead of silently replaced by the receive time.
/// It serializes back to the same shape, which is what a tenant's plugin
/// receives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawReading {
    pub entity_id: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    pub attribute: String,
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
}

/// A reading that passed every check and is ready for staging.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedReading {
    pub entity_id: EntityId,
    pub entity_type: Option<EntityType>,
    pub attribute_id: i64,
    pub value: Value,
    /// Device time, or the receive time when the device sent none. Part of
    /// the reading's identity, so replays with the same `ts` deduplicate.
    pub ts: DateTime<Utc>,
}

/// Why one reading of a batch was refused. The batch goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    Malformed(String),
    Id(IdError),
    UnknownAttribute(String),
    Value {
        attribute: String,
        error: ValueError,
    },
    BadTimestamp(String),
    OutsideWindow {
        ts: DateTime<Utc>,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    /// Set by a tenant's transform plugin or a later pipeline stage.
    Other(String),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Malformed(m) => write!(f, "malformed reading: {m}"),
            RejectReason::Id(e) => e.fmt(f),
            RejectReason::UnknownAttribute(a) => write!(
                f,
                "unknown attribute {a:?}: register it in the catalog first (auto-registration is off for this tenant)"
            ),
            RejectReason::Value { attribute, error } => {
                write!(f, "attribute {attribute:?}: {error}")
            }
            RejectReason::BadTimestamp(ts) => {
                write!(
                    f,
                    "ts {ts:?} is not an RFC 3339 timestamp such as 2026-11-24T10:00:00Z"
                )
            }
            RejectReason::OutsideWindow {
                ts,
                earliest,
                latest,
            } => write!(
                f,
                "ts {} is outside the accepted window [{}, {}]",
                ts.to_rfc3339(),
                earliest.to_rfc3339(),
                latest.to_rfc3339()
            ),
            RejectReason::Other(m) => f.write_str(m),
        }
    }
}

/// How far from the receive time a reading's timestamp may lie. Readings
/// outside are refused, which also bounds the partitions that must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptWindow {
    pub past: Duration,
    pub future: Duration,
}

impl Default for AcceptWindow {
    fn default() -> Self {
        Self {
            past: Duration::days(30),
            future: Duration::hours(1),
        }
    }
}

impl AcceptWindow {
    pub fn check(&self, ts: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), RejectReason> {
        let (earliest, latest) = (now - self.past, now + self.future);
        if ts < earliest || ts > latest {
            Err(RejectReason::OutsideWindow {
                ts,
                earliest,
                latest,
            })
        } else {
            Ok(())
        }
    }
}

impl RawReading {
    /// Everything about a reading that does not need the catalog: ids, name,
    /// entity type and timestamp (`default_ts` when absent), which must lie
    /// in `window` around `now`, the receive time. The value is typed later,
    /// once the catalog says what the attribute holds.
    pub fn parse_envelope(
        &self,
        default_ts: DateTime<Utc>,
        now: DateTime<Utc>,
        window: &AcceptWindow,
    ) -> Result<(EntityId, Option<EntityType>, AttributeName, DateTime<Utc>), RejectReason> {
        let entity = EntityId::from_json(&self.entity_id).map_err(RejectReason::Id)?;
        let entity_type = self
            .entity_type
            .as_deref()
            .map(EntityType::parse)
            .transpose()
            .map_err(RejectReason::Id)?;
        let attribute = AttributeName::parse(&self.attribute).map_err(RejectReason::Id)?;
        let ts = match &self.ts {
            None => default_ts,
            Some(raw) => DateTime::parse_from_rfc3339(raw)
                .map_err(|_| RejectReason::BadTimestamp(raw.clone()))?
                .with_timezone(&Utc),
        };
        window.check(ts, now)?;
        Ok((entity, entity_type, attribute, ts))
    }
}

impl TypedReading {
    pub fn new(
        entity_id: EntityId,
        entity_type: Option<EntityType>,
        attribute_id: i64,
        attribute: &AttributeName,
        data_type: DataType,
        raw: &serde_json::Value,
        ts: DateTime<Utc>,
    ) -> Result<Self, RejectReason> {
        let value = Value::parse(data_type, raw).map_err(|error| RejectReason::Value {
            attribute: attribute.to_string(),
            error,
        })?;
        Ok(Self {
            entity_id,
            entity_type,
            attribute_id,
            value,
            ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(v: serde_json::Value) -> RawReading {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn envelope_defaults_ts_to_now() {
        let now = Utc::now();
        let r = raw(json!({"entity_id": 1, "attribute": "temperature", "value": 1}));
        let (e, t, a, ts) = r
            .parse_envelope(now, now, &AcceptWindow::default())
            .unwrap();
        assert_eq!((e.get(), t, a.as_str(), ts), (1, None, "temperature", now));
    }

    #[test]
    fn envelope_rejects_each_bad_part_by_name() {
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let w = AcceptWindow::default();
        let cases = [
            (
                json!({"entity_id": -1, "attribute": "a", "value": 1}),
                "entity_id",
            ),
            (
                json!({"entity_id": 1, "attribute": "Bad Name", "value": 1}),
                "attribute name",
            ),
            (
                json!({"entity_id": 1, "attribute": "a", "value": 1, "ts": "noon"}),
                "RFC 3339",
            ),
            (
                json!({"entity_id": 1, "attribute": "a", "value": 1, "ts": "2026-09-01T00:00:00Z"}),
                "outside",
            ),
            (
                json!({"entity_id": 1, "attribute": "a", "value": 1, "ts": "2026-11-24T12:00:00Z"}),
                "outside",
            ),
            (
                json!({"entity_id": 1, "entity_type": "", "attribute": "a", "value": 1}),
                "entity_type",
            ),
        ];
        for (body, needle) in cases {
            let err = raw(body.clone())
                .parse_envelope(now, now, &w)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn default_ts_is_checked_against_the_receive_time() {
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let r = raw(json!({"entity_id": 1, "attribute": "a", "value": 1}));
        let old = now - Duration::days(31);
        assert!(
            r.parse_envelope(old, now, &AcceptWindow::default())
                .is_err()
        );
        let recent = now - Duration::minutes(5);
        assert_eq!(
            r.parse_envelope(recent, now, &AcceptWindow::default())
                .unwrap()
                .3,
            recent
        );
    }

    #[test]
    fn window_edges_are_inclusive() {
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let w = AcceptWindow::default();
        assert!(w.check(now - Duration::days(30), now).is_ok());
        assert!(w.check(now + Duration::hours(1), now).is_ok());
        assert!(
            w.check(now + Duration::hours(1) + Duration::seconds(1), now)
                .is_err()
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<RawReading>(
            json!({"entity_id": 1, "attribute": "a", "value": 1, "timestamp": "x"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }
}
