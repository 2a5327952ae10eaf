//! Reads at a consistency the caller picks, and how fresh each answer is.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, ClientError};

/// The seed's three read levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// The primary: every acknowledged and flushed reading.
    Strong,
    /// A replica or the cache, within a lag bound.
    Eventual,
    /// The warehouse, or a replica.
    Analytics,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Strong => "strong",
            Consistency::Eventual => "eventual",
            Consistency::Analytics => "analytics",
        }
    }
}

/// What a read asks for; the route's own default consistency without one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadOptions {
    pub consistency: Option<Consistency>,
    pub max_lag_seconds: Option<f64>,
}

impl ReadOptions {
    pub fn strong() -> Self {
        Self::at(Consistency::Strong)
    }

    pub fn eventual() -> Self {
        Self::at(Consistency::Eventual)
    }

    pub fn analytics() -> Self {
        Self::at(Consistency::Analytics)
    }

    fn at(c: Consistency) -> Self {
        Self {
            consistency: Some(c),
            max_lag_seconds: None,
        }
    }

    /// The most the answer may lag; beyond it the call is
    /// `ClientError::LagExceeded`.
    pub fn max_lag_seconds(self, seconds: f64) -> Self {
        Self {
            max_lag_seconds: Some(seconds),
            ..self
        }
    }

    /// As query parameters.
    pub(crate) fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(c) = self.consistency {
            q.append_pair("consistency", c.as_str());
        }
        if let Some(l) = self.max_lag_seconds {
            q.append_pair("max_lag_seconds", &l.to_string());
        }
        let q = q.finish();
        if q.is_empty() { q } else { format!("?{q}") }
    }
}

/// Where an answer came from and how far behind it was: the body's
/// `_metadata`, which the `X-Data-*` headers repeat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Freshness {
    /// `primary`, `replica:<name>`, `cache` or `warehouse`.
    pub source: String,
    pub lag_seconds: f64,
    pub data_as_of: DateTime<Utc>,
    pub consistency: Consistency,
    pub cache_status: String,
    pub query_ms: f64,
}

/// A value and its freshness.
#[derive(Debug, Clone, PartialEq)]
pub struct Fresh<T> {
    pub value: T,
    pub freshness: Freshness,
}

impl Client {
    /// A read: the body without its `_metadata`, and the freshness it
    /// carried, checked against the caller's bound.
    pub(crate) async fn read(
        &self,
        path: &str,
        opts: &ReadOptions,
    ) -> Result<Fresh<Value>, ClientError> {
        let path_and_query = format!("{path}{}", opts.query());
        let mut body = self.call(Method::GET, &path_and_query, None).await?;
        let meta = body
            .as_object_mut()
            .and_then(|o| o.remove("_metadata"))
            .unwrap_or(Value::Null);
        let freshness: Freshness =
            serde_json::from_value(meta).map_err(|e| ClientError::Decode {
                method: Method::GET,
                path: path.to_owned(),
                detail: format!("_metadata: {e}"),
            })?;
        if let Some(max) = opts.max_lag_seconds
            && freshness.lag_seconds > max
        {
            return Err(ClientError::LagExceeded {
                lag_seconds: freshness.lag_seconds,
                max_lag_seconds: max,
            });
        }
        Ok(Fresh {
            value: body,
            freshness,
        })
    }

    /// `GET /v1/entities/{id}`: the entity's hot attributes.
    pub async fn entity(&self, id: u64, opts: &ReadOptions) -> Result<Fresh<Value>, ClientError> {
        self.read(&format!("/v1/entities/{id}"), opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_options_become_the_documented_parameters() {
        assert_eq!(ReadOptions::default().query(), "");
        assert_eq!(
            ReadOptions::eventual().max_lag_seconds(2.5).query(),
            "?consistency=eventual&max_lag_seconds=2.5"
        );
        assert_eq!(ReadOptions::strong().query(), "?consistency=strong");
    }
}
