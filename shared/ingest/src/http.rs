//! `POST /v1/telemetry` behind API Gateway (and the local gateway).

use atlas_http::{ApiError, Body, Request, Response, body_bytes, json, tenant_from_request};
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
    let tenant = tenant_from_request(&req)?;
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
    match outcome.into_iter().next() {
        Some(Ok(o)) => Ok(json(StatusCode::ACCEPTED, &o)),
        Some(Err(Refused::Plugin { run, message })) => Ok(json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": {
                    "code": "plugin_rejected",
                    "message": format!("plugin {} v{} rejected the batch: {message}", run.name, run.version),
                },
                "plugin": run,
            }),
        )),
        Some(Err(Refused::UnknownTenant)) | None => Err(ApiError::unauthorized(format!(
            "tenant {tenant} does not exist or is inactive"
        ))),
    }
}
