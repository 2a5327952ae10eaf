use std::time::Duration;

use atlas_http::{Body, Response};
use chrono::{DateTime, Utc};
use http::HeaderValue;
use serde::Serialize;

/// The consistency a caller asks for (`?consistency=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Read from the primary.
    Strong,
    /// The cache, a healthy replica or the primary, whichever answers
    /// within the caller's `max_lag_seconds`.
    #[default]
    Eventual,
    /// The warehouse (a replica until the warehouse exists).
    Analytics,
}

impl Consistency {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "strong" => Ok(Self::Strong),
            "eventual" => Ok(Self::Eventual),
            "analytics" => Ok(Self::Analytics),
            other => Err(format!(
                "consistency must be strong, eventual or analytics, not {other:?}"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Strong => "strong",
            Self::Eventual => "eventual",
            Self::Analytics => "analytics",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    Hit,
    Miss,
    /// No cache was consulted (strong reads, or the cache is down).
    Bypass,
}

impl CacheStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// Where an answer came from and how old its source's data may be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    pub source: String,
    /// How far the source lags the primary; 0 for the primary itself.
    pub lag_seconds: f64,
    /// The answer holds every change committed before this time.
    pub data_as_of: DateTime<Utc>,
    pub consistency: Consistency,
    pub cache_status: CacheStatus,
    pub query_ms: f64,
}

impl Freshness {
    /// The freshness of an answer read from `source`, lagging `lag_seconds`,
    /// that took `took` to produce.
    pub fn new(
        source: impl Into<String>,
        lag_seconds: f64,
        consistency: Consistency,
        cache_status: CacheStatus,
        took: Duration,
    ) -> Self {
        Self {
            source: source.into(),
            lag_seconds,
            data_as_of: Utc::now() - chrono::Duration::microseconds((lag_seconds * 1e6) as i64),
            consistency,
            cache_status,
            query_ms: Self::millis(took),
        }
    }

    /// A duration as milliseconds to the microsecond.
    pub fn millis(took: Duration) -> f64 {
        (took.as_secs_f64() * 1e6).round() / 1e3
    }

    /// A JSON answer with `_metadata` in the body and the `X-…` headers.
    pub fn respond(&self, status: http::StatusCode, mut body: serde_json::Value) -> Response<Body> {
        if let Some(obj) = body.as_object_mut() {
            obj.insert(
                "_metadata".into(),
                serde_json::to_value(self).expect("freshness serializes"),
            );
        }
        let mut resp = atlas_http::json(status, &body);
        let headers = resp.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("x-data-source", self.source.clone());
        set("x-data-lag-seconds", format!("{:.3}", self.lag_seconds));
        set(
            "x-data-as-of",
            self.data_as_of
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        set("x-consistency-level", self.consistency.as_str().into());
        set("x-cache-status", self.cache_status.as_str().into());
        set("x-query-duration-ms", format!("{:.3}", self.query_ms));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_carries_headers_and_metadata() {
        let before = Utc::now();
        let f = Freshness::new(
            "replica:1",
            2.5,
            Consistency::Strong,
            CacheStatus::Bypass,
            Duration::from_micros(1500),
        );
        let resp = f.respond(http::StatusCode::OK, serde_json::json!({"a": 1}));
        let h = resp.headers();
        assert_eq!(h["x-data-source"], "replica:1");
        assert_eq!(h["x-data-lag-seconds"], "2.500");
        let lag = chrono::Duration::milliseconds(2500);
        assert!(f.data_as_of >= before - lag && f.data_as_of <= Utc::now() - lag);
        assert_eq!(
            h["x-data-as-of"],
            f.data_as_of
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        assert_eq!(h["x-consistency-level"], "strong");
        assert_eq!(h["x-cache-status"], "bypass");
        assert_eq!(h["x-query-duration-ms"], "1.500");
        let Body::Text(t) = resp.body() else {
            panic!("text body")
        };
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["a"], 1);
        let mut m = v["_metadata"].clone();
        assert!(m["data_as_of"].is_string());
        m.as_object_mut().unwrap().remove("data_as_of");
        assert_eq!(
            m,
            serde_json::json!({"source": "replica:1", "lag_seconds": 2.5, "consistency": "strong",
                               "cache_status": "bypass", "query_ms": 1.5})
        );
    }

    #[test]
    fn consistency_levels_parse_by_name() {
        assert_eq!(Consistency::parse("strong"), Ok(Consistency::Strong));
        assert!(Consistency::parse("STRONG").is_err());
        assert_eq!(Consistency::default(), Consistency::Eventual);
    }
}
