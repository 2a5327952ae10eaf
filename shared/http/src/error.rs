use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;

/// A client-facing error: an HTTP status, a stable machine-readable code
/// and a message that names the problem. Rendered as
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The `Allow` header of a 405: the methods the path serves.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `allowed` lists the path's methods as the `Allow` header writes
    /// them ("GET, PATCH"), which RFC 9110 requires with a 405.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self {
            allow: Some(allowed.to_owned()),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("use {allowed}"),
            )
        }
    }

    /// The database or another dependency is down: retry later. Never used
    /// for anything the client sent.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn into_response(self) -> Response<Body> {
        let mut resp = crate::json(
            self.status,
            &json!({"error": {"code": self.code, "message": self.message}}),
        );
        if let Some(allow) = self.allow.as_deref().and_then(|a| a.parse().ok()) {
            resp.headers_mut().insert(http::header::ALLOW, allow);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
