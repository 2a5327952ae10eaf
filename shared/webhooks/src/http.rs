//! The webhook routes of the query API, all `admin` scope:
//!
//! - `POST /v1/webhooks`: register; the answer holds the signing secret,
//!   shown this once;
//! - `GET /v1/webhooks`, `GET /v1/webhooks/{id}`: the tenant's webhooks;
//! - `DELETE /v1/webhooks/{id}`;
//! - `POST /v1/webhooks/{id}/test`: send a signed test event now;
//! - `GET /v1/webhooks/{id}/dead-letters`: deliveries that never succeeded.
//!
//! The tenant is always the authorizer's, never the request's.

use atlas_core::TenantId;
use atlas_http::{
    ApiError, Body, Request, Response, body_bytes, json, query_params, segments_under,
    tenant_from_request,
};
use http::{Method, StatusCode};
use serde_json::json;

use crate::destination::DestinationError;
use crate::{NewWebhook, Registry, RegistryError, WebhookId};

pub const PREFIX: &str = "/v1/webhooks";
/// A registration is a URL and a few names.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Never fails: every problem becomes a JSON error response.
pub async fn handle(registry: &Registry, req: Request) -> Response<Body> {
    route(registry, req)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn route(registry: &Registry, req: Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let parts = segments_under(&path, PREFIX)?;
    if !query_params(&req).is_empty() {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("{PREFIX} routes take no query parameters"),
        ));
    }
    let tenant = || -> Result<TenantId, ApiError> { Ok(tenant_from_request(&req)?) };
    match (parts.as_slice(), req.method().clone()) {
        ([], Method::GET) => {
            let hooks = registry.list(tenant()?).await.map_err(api_error)?;
            Ok(json(StatusCode::OK, &json!({ "webhooks": hooks })))
        }
        ([], Method::POST) => {
            let body = body_bytes(&req);
            if body.len() > MAX_BODY_BYTES {
                return Err(ApiError::too_large(
                    "body_too_large",
                    format!("a registration is at most {MAX_BODY_BYTES} bytes"),
                ));
            }
            let new = NewWebhook::parse(body, registry.policy()).map_err(api_error)?;
            let created = registry.create(tenant()?, new).await.map_err(api_error)?;
            Ok(json(StatusCode::CREATED, &created))
        }
        ([], _) => Err(ApiError::method_not_allowed("GET, POST")),
        ([id], Method::GET) => {
            let hook = registry
                .get(tenant()?, &webhook_id(id)?)
                .await
                .map_err(api_error)?;
            Ok(json(StatusCode::OK, &hook))
        }
        ([id], Method::DELETE) => {
            let id = webhook_id(id)?;
            registry.delete(tenant()?, &id).await.map_err(api_error)?;
            Ok(json(
                StatusCode::OK,
                &json!({ "id": id.as_str(), "deleted": true }),
            ))
        }
        ([_], _) => Err(ApiError::method_not_allowed("GET, DELETE")),
        ([id, "test"], Method::POST) => {
            let outcome = registry
                .send_test(tenant()?, &webhook_id(id)?)
                .await
                .map_err(api_error)?;
            Ok(json(StatusCode::OK, &outcome))
        }
        ([_, "test"], _) => Err(ApiError::method_not_allowed("POST")),
        ([id, "dead-letters"], Method::GET) => {
            let letters = registry
                .dead_letters(tenant()?, &webhook_id(id)?)
                .await
                .map_err(api_error)?;
            Ok(json(StatusCode::OK, &json!({ "dead_letters": letters })))
        }
        ([_, "dead-letters"], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

/// A malformed id names no webhook, as another tenant's id does not.
fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).ok_or_else(|| ApiError::not_found(format!("no webhook {raw}")))
}

fn api_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Invalid { code, message } => ApiError::bad_request(code, message),
        RegistryError::Destination(d @ DestinationError::Refused { .. }) => {
            ApiError::bad_request("url_refused", d.to_string())
        }
        RegistryError::Destination(d @ DestinationError::Unresolvable { .. }) => {
            ApiError::bad_request("url_unresolvable", d.to_string())
        }
        RegistryError::Destination(d) => ApiError::bad_request("invalid_url", d.to_string()),
        RegistryError::TooMany => {
            ApiError::new(StatusCode::CONFLICT, "too_many_webhooks", e.to_string())
        }
        RegistryError::NotFound(_) => ApiError::not_found(e.to_string()),
        RegistryError::Random => {
            tracing::error!("random generator failed");
            ApiError::unavailable("webhooks are unavailable: retry shortly")
        }
        RegistryError::Store(s) => {
            tracing::warn!(error = %s, "webhook store unavailable");
            ApiError::unavailable("webhooks are unavailable: retry shortly")
        }
    }
}
