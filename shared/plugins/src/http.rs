//! The plugin routes of the query API:
//!
//! - `PUT /v1/plugins/{name}`: upload a module (the body) as the next version
//! - `POST /v1/plugins/{name}/versions/{v}/activate`: make it the tenant's plugin
//! - `GET /v1/plugins`: the tenant's plugins and versions
//! - `DELETE /v1/plugins/{name}`: deactivate and hide a plugin
//!
//! The tenant is always the authorizer's, never the request's.

use atlas_core::TenantId;
use atlas_http::{
    ApiError, Body, Request, Response, body_bytes, json, query_params, segments_under,
    tenant_from_request,
};
use atlas_plugin_host::PluginError;
use http::{Method, StatusCode};
use serde_json::json;

use crate::{PluginName, PluginSettings, Registry, RegistryError};

pub const PREFIX: &str = "/v1/plugins";

/// Never fails: every problem becomes a JSON error response.
pub async fn handle(registry: &Registry, req: Request) -> Response<Body> {
    route(registry, req)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn route(registry: &Registry, req: Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let parts = segments_under(&path, PREFIX)?;
    let method = req.method().clone();
    let tenant = || -> Result<TenantId, ApiError> { Ok(tenant_from_request(&req)?) };
    match (parts.as_slice(), method) {
        ([], Method::GET) => {
            let plugins = registry.list(tenant()?).await.map_err(api_error)?;
            Ok(json(StatusCode::OK, &json!({ "plugins": plugins })))
        }
        ([], _) => Err(ApiError::method_not_allowed("GET")),
        ([name], Method::PUT) => {
            let tenant = tenant()?;
            let name = parse_name(name)?;
            let settings = PluginSettings::from_query(&query_params(&req))
                .map_err(|e| ApiError::bad_request("invalid_settings", e))?;
            upload(registry, tenant, &name, body_bytes(&req).to_vec(), settings).await
        }
        ([name], Method::DELETE) => {
            let name = parse_name(name)?;
            let was_active = registry.delete(tenant()?, &name).await.map_err(api_error)?;
            Ok(json(
                StatusCode::OK,
                &json!({ "name": name.as_str(), "deleted": true, "was_active": was_active }),
            ))
        }
        ([_], _) => Err(ApiError::method_not_allowed("PUT, DELETE")),
        ([name, "versions", v, "activate"], Method::POST) => {
            let name = parse_name(name)?;
            let version = v.parse::<i32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_version",
                    format!("version must be a positive whole number, not {v:?}"),
                )
            })?;
            let active = registry
                .activate(tenant()?, &name, version)
                .await
                .map_err(api_error)?;
            Ok(json(StatusCode::OK, &active))
        }
        ([_, "versions", _, "activate"], _) => Err(ApiError::method_not_allowed("POST")),
        _ => Err(ApiError::not_found(format!(
            "no route {path}; plugins are managed under {PREFIX}"
        ))),
    }
}

async fn upload(
    registry: &Registry,
    tenant: TenantId,
    name: &PluginName,
    wasm: Vec<u8>,
    settings: PluginSettings,
) -> Result<Response<Body>, ApiError> {
    if wasm.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body must be the WebAssembly module",
        ));
    }
    let upload = registry
        .upload(tenant, name, wasm, settings)
        .await
        .map_err(api_error)?;
    tracing::info!(%tenant, plugin = %name, version = upload.version.version, sha256 = %upload.version.sha256, created = upload.created, "plugin uploaded");
    let status = if upload.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &upload))
}

fn parse_name(s: &str) -> Result<PluginName, ApiError> {
    PluginName::parse(s).map_err(|e| ApiError::bad_request("invalid_name", e))
}

fn api_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Rejected(p @ PluginError::TooLarge { .. }) => {
            ApiError::too_large(p.kind(), p.to_string())
        }
        RegistryError::Rejected(p) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, p.kind(), p.to_string())
        }
        e @ (RegistryError::NoSuchPlugin(_) | RegistryError::NoSuchVersion { .. }) => {
            ApiError::not_found(e.to_string())
        }
        e @ (RegistryError::Store(_) | RegistryError::Objects(_)) => {
            tracing::error!(error = %e, "plugin registry unavailable");
            ApiError::unavailable("the plugin registry is unavailable; retry the request")
        }
    }
}
