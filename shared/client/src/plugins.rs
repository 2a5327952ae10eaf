//! The plugin registry (`/v1/plugins`), `admin` scope.

use reqwest::Method;
use serde_json::Value;

use crate::client::{Body, Client, ClientError, segment};

/// A version's limits and failure policy, as upload parameters; `None`
/// leaves the API's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginLimits {
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub output_kb: Option<u64>,
    /// `reject` or `pass_through`.
    pub on_failure: Option<String>,
}

impl PluginLimits {
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        let numbers = [
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout_ms),
            ("memory_mb", self.memory_mb),
            ("output_kb", self.output_kb),
        ];
        for (k, v) in numbers {
            if let Some(v) = v {
                q.append_pair(k, &v.to_string());
            }
        }
        if let Some(p) = &self.on_failure {
            q.append_pair("on_failure", p);
        }
        let q = q.finish();
        if q.is_empty() { q } else { format!("?{q}") }
    }
}

impl Client {
    /// `PUT /v1/plugins/{name}`: the module as the plugin's next version
    /// (inactive), or the newest one if it has the same bytes and settings
    /// (`created: false`).
    pub async fn upload_plugin(
        &self,
        name: &str,
        wasm: Vec<u8>,
        limits: &PluginLimits,
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/plugins/{}{}", segment(name), limits.query());
        self.call(Method::PUT, &path, Some(Body::Wasm(wasm))).await
    }

    /// `POST /v1/plugins/{name}/versions/{version}/activate`.
    pub async fn activate_plugin(&self, name: &str, version: i64) -> Result<Value, ClientError> {
        let path = format!("/v1/plugins/{}/versions/{version}/activate", segment(name));
        self.call(Method::POST, &path, None).await
    }

    /// `GET /v1/plugins`: the tenant's plugins and their versions.
    pub async fn plugins(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, "/v1/plugins", None).await
    }

    /// `DELETE /v1/plugins/{name}`: deactivate and hide it.
    pub async fn delete_plugin(&self, name: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/plugins/{}", segment(name));
        self.call(Method::DELETE, &path, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_the_documented_parameters() {
        assert_eq!(PluginLimits::default().query(), "");
        let l = PluginLimits {
            fuel: Some(1000),
            memory_mb: Some(16),
            on_failure: Some("pass_through".into()),
            ..PluginLimits::default()
        };
        assert_eq!(l.query(), "?fuel=1000&memory_mb=16&on_failure=pass_through");
    }
}
