//! `POST /v1/telemetry` behind API Gateway (and the local gateway).

use atlas_http::{ApiError, Body, Request, Response, Scope, authorize, body_bytes, json};
use http::{Method, StatusCode};

use crate::{IngestService, Refused, TenantBatch, parse_batch};

pub const PATH: &str = "/v1/telemetry";

/// Never fails: every problem becomes a JSON error response.
pub async fn handle(svc: &IngestService, req: Request) -> Response<Body> {
    match accept(svc, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn accept(svc: &IngestService, req: Request) -> Result<Response<Body>, ApiError> {
    if req.uri().path() != PATH {
        return Err(ApiError::not_found(format!(
            "no route {}; readings go to POST {PATH}",
            req.uri().path()
        )));
    }
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let tenant = authorize(&req, Scope::TelemetryWrite)?;
    let body = body_bytes(&req);
    let cfg = svc.config();
    let readings = parse_batch(body, cfg.max_body_bytes, cfg.max_readings)?;
    let batch = TenantBatch {
        tenant,
        readings,
        default_ts: chrono::Utc::now(),
    };
    let outcome = svc.ingest(vec![batch]).await.map_err(|e| {
        tracing::error!(error = %e, %tenant, "ingest failed");
        ApiError::unavailable("the database is unavailable; nothing was stored, retry the request")
    })?;
    let refused = match outcome.into_iter().next() {
        Some(Ok(o)) => return Ok(json(StatusCode::ACCEPTED, &o)),
        Some(Err(refused)) => refused,
        None => Refused::UnknownTenant,
    };
    let message = refused.describe();
    Err(match refused {
        Refused::Plugin { run, .. } => {
            return Ok(json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({
                    "error": {"code": "plugin_rejected", "message": message},
                    "plugin": run,
                }),
            ));
        }
        // Retrying helps once the tenant activates a module that loads.
        Refused::PluginUnavailable(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin_unavailable",
            format!("{message}; nothing was stored"),
        ),
        // Retrying the same body can never help, so it is not a 503.
        Refused::Unstorable(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unstorable_value",
            format!("{message}; nothing was stored"),
        ),
        Refused::UnknownTenant => {
            ApiError::unauthorized(format!("tenant {tenant} does not exist or is inactive"))
        }
    })
}
