//! The query API's routes behind API Gateway (and the local gateway):
//!
//! - `GET /v1/entities/{id}?consistency=strong|eventual|analytics&max_lag_seconds=N`
//! - everything under `/v1/plugins`, handed to the plugin registry
//!
//! The tenant is always the authorizer's. Another tenant's entity is a 404,
//! like a missing one, so ids reveal nothing.

use std::collections::HashMap;
use std::time::Instant;

use atlas_core::EntityId;
use atlas_http::{ApiError, Body, Request, Response, query_params, tenant_from_request};
use atlas_plugins::Registry;
use atlas_store::Pool;
use http::{Method, StatusCode};

use crate::{Consistency, Entity, Freshness};

pub const ENTITIES: &str = "/v1/entities";

/// Everything the query API serves from.
pub struct QueryApi {
    /// Acting as the application role.
    pub pool: Pool,
    pub registry: Registry,
}

impl QueryApi {
    /// `DATABASE_URL` (acting as `atlas_app`) and, for the registry,
    /// `ATLAS_OBJECT_STORE`.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self {
            pool: atlas_store::DbConfig::from_env(atlas_store::DbRole::App)?.pool()?,
            registry: Registry::from_env().await?,
        })
    }
}

/// Never fails: every problem becomes a JSON error response.
pub async fn handle(api: &QueryApi, req: Request) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == atlas_plugins::http::PREFIX
        || path.starts_with(&format!("{}/", atlas_plugins::http::PREFIX))
    {
        return atlas_plugins::http::handle(&api.registry, req).await;
    }
    match route(api, &path, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(api: &QueryApi, path: &str, req: Request) -> Result<Response<Body>, ApiError> {
    let parts: Vec<&str> = path
        .strip_prefix(ENTITIES)
        .ok_or_else(|| ApiError::not_found(format!("no route {path}")))?
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (parts.as_slice(), req.method()) {
        ([id], &Method::GET) => get_entity(api, id, &req).await,
        ([_], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

async fn get_entity(api: &QueryApi, id: &str, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req).map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let id = EntityId::parse(id)
        .map_err(|e| ApiError::bad_request("invalid_entity_id", e.to_string()))?;
    let params = ReadParams::parse(&query_params(req))?;
    let started = Instant::now();
    let entity = Entity::get(&api.pool, tenant, id).await.map_err(|e| {
        tracing::error!(error = %e, %tenant, "entity read failed");
        ApiError::unavailable("the database is unavailable; retry the request")
    })?;
    let freshness = Freshness::primary(params.consistency, started.elapsed());
    // Never silently stale: a source that lags more than the caller allows
    // is refused with its lag (the primary never is).
    if let Some(max) = params.max_lag_seconds
        && freshness.lag_seconds > max
    {
        return Err(ApiError::unavailable(format!(
            "no source answers within max_lag_seconds={max}: {} lags {:.3} s",
            freshness.source, freshness.lag_seconds
        )));
    }
    match entity {
        Some(e) => Ok(freshness.respond(
            StatusCode::OK,
            serde_json::to_value(e).expect("entities serialize"),
        )),
        None => Err(ApiError::not_found(format!("no entity {}", id.get()))),
    }
}

/// The parameters every read takes.
struct ReadParams {
    consistency: Consistency,
    max_lag_seconds: Option<f64>,
}

impl ReadParams {
    fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        const KNOWN: [&str; 2] = ["consistency", "max_lag_seconds"];
        if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown parameter {k:?}; use {}", KNOWN.join(", ")),
            ));
        }
        let consistency = match q.get("consistency") {
            Some(c) => Consistency::parse(c)
                .map_err(|e| ApiError::bad_request("invalid_consistency", e))?,
            None => Consistency::default(),
        };
        let max_lag_seconds = match q.get("max_lag_seconds") {
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_max_lag",
                            format!("max_lag_seconds must be a non-negative number, not {v:?}"),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            consistency,
            max_lag_seconds,
        })
    }
}
