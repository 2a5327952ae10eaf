//! The HTTP conversation: authentication, retries, and errors.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("ATLAS_TOKEN is not set: make one with `atlas token --tenant ID` (locally)")]
    MissingToken,
    #[error("invalid API URL {0:?}")]
    Url(String),
    /// The API refused: its status, code (from the document's list) and
    /// message.
    #[error("{method} {path} answered {status}: {code}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The answer lags more than the caller allowed.
    #[error("the answer is {lag_seconds:.3} s behind, more than the {max_lag_seconds} s allowed")]
    LagExceeded {
        lag_seconds: f64,
        max_lag_seconds: f64,
    },
    #[error("{method} {path}: {detail} (is the API at {base} running?)")]
    Transport {
        method: Method,
        path: String,
        base: String,
        detail: String,
    },
    #[error("{method} {path}: an answer that is not what the API documents: {detail}")]
    Decode {
        method: Method,
        path: String,
        detail: String,
    },
}

impl ClientError {
    /// The API's error code, when the API refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How 503 answers ("unavailable: retry") are retried: after the server's
/// `Retry-After` when it gives one, else after `first_backoff`, doubled
/// each time up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One API, as one tenant (the token's).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: String,
    retry: RetryPolicy,
}

impl Client {
    /// `base_url` such as `http://127.0.0.1:9000` (`atlas dev`) or the API
    /// Gateway's URL.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self, ClientError> {
        let base = url::Url::parse(base_url).map_err(|_| ClientError::Url(base_url.into()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Url(base_url.into()));
        }
        let token = token.into().trim().to_owned();
        if token.is_empty() {
            return Err(ClientError::MissingToken);
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| ClientError::Url(e.to_string()))?,
            base,
            token,
            retry: RetryPolicy::default(),
        })
    }

    /// `ATLAS_API_URL` (default `http://127.0.0.1:9000`) and `ATLAS_TOKEN`.
    pub fn from_env() -> Result<Self, ClientError> {
        let url = std::env::var("ATLAS_API_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
        let token = std::env::var("ATLAS_TOKEN").map_err(|_| ClientError::MissingToken)?;
        Self::new(&url, token)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// One call: `path_and_query` below the base URL, a JSON or binary
    /// body. A 503 is retried; any other non-2xx is `ClientError::Api`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Body>,
    ) -> Result<Value, ClientError> {
        let url = self
            .base
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|_| ClientError::Url(path_and_query.into()))?;
        let path = url.path().to_owned();
        let mut backoff = self.retry.first_backoff;
        let mut retries = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token);
            req = match &body {
                Some(Body::Json(v)) => req.json(v),
                Some(Body::Wasm(bytes)) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                    .body(bytes.clone()),
                None => req,
            };
            let resp = req.send().await.map_err(|e| ClientError::Transport {
                method: method.clone(),
                path: path.clone(),
                base: self.base.to_string(),
                detail: e.to_string(),
            })?;
            let status = resp.status();
            if status == StatusCode::SERVICE_UNAVAILABLE && retries < self.retry.max_retries {
                let wait = retry_after(&resp).unwrap_or(backoff);
                tokio::time::sleep(wait.min(self.retry.max_backoff)).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
                retries += 1;
                continue;
            }
            let text = resp.text().await.map_err(|e| ClientError::Transport {
                method: method.clone(),
                path: path.clone(),
                base: self.base.to_string(),
                detail: e.to_string(),
            })?;
            let decode = |detail: String| ClientError::Decode {
                method: method.clone(),
                path: path.clone(),
                detail,
            };
            let json: Value = serde_json::from_str(&text)
                .map_err(|_| decode(format!("{status}, not JSON: {text:.200}")))?;
            if !status.is_success() {
                let e = &json["error"];
                return Err(ClientError::Api {
                    method,
                    path,
                    status,
                    code: e["code"].as_str().unwrap_or("unknown").to_owned(),
                    message: e["message"].as_str().unwrap_or(&text).to_owned(),
                });
            }
            return Ok(json);
        }
    }

    /// `call`, and its body as `T`.
    pub(crate) async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Body>,
    ) -> Result<T, ClientError> {
        let answer = self.call(method.clone(), path_and_query, body).await?;
        serde_json::from_value(answer).map_err(|e| ClientError::Decode {
            method,
            path: path_and_query.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// A request body.
pub(crate) enum Body {
    Json(Value),
    Wasm(Vec<u8>),
}

/// `Retry-After` in seconds (the API gives seconds, never a date).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: f64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A path segment, percent-encoded.
pub(crate) fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}
