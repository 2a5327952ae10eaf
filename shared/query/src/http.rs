//! The query API's routes behind API Gateway (and the local gateway):
//!
//! - `GET /v1/entities/{id}?consistency=strong|eventual|analytics&max_lag_seconds=N`
//!   (eventual ones through the Redis cache when there is one)
//! - `POST /v1/entities/search`: a filter over hot attributes
//! - `GET /v1/entities/{id}/attributes/{name}/history?from=T&to=T[&limit=N]`
//! - `GET /v1/analytics/attributes/{name}/stats?from=T&to=T[&group_by=A]`
//! - `GET /v1/analytics/attributes/{name}/daily?from=D&to=D`: the
//!   warehouse's days
//! - `POST /v1/attributes`, `GET` and `PATCH /v1/attributes/{name}`: the
//!   catalog, and promotion or demotion of an attribute
//! - everything under `/v1/plugins`, handed to the plugin registry
//!
//! The tenant is always the authorizer's. Another tenant's entity is a 404,
//! like a missing one, so ids reveal nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cache::{HotCache, Lookup};
use atlas_core::{AttributeName, DataType, EntityId, TenantId};
use atlas_http::{
    ApiError, Body, Request, Response, Scope, authorize, body_bytes, json, query_params,
    tenant_from_request,
};
use atlas_plugins::Registry;
use atlas_store::{Catalog, Pool, TenantStatus};
use atlas_warehouse::{Warehouse, WarehouseError};
use chrono::{DateTime, NaiveDate, Utc};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::analytics::{Daily, Refused, Stats};
use crate::catalog::{Attribute, AttributePatch, Created, NewAttribute, Patched};
use crate::routing::{ReadError, Replica, Route, Router};
use crate::search::{Search, SearchRequest};
use crate::{CacheStatus, Consistency, Entity, Freshness, History, Missing, QueryConfig, Range};

pub const ENTITIES: &str = "/v1/entities";
pub const ATTRIBUTES: &str = "/v1/attributes";
pub const ANALYTICS: &str = "/v1/analytics";
pub const STATUS: &str = "/v1/status";

/// Everything the query API serves from.
pub struct QueryApi {
    registry: Registry,
    webhooks: atlas_webhooks::Registry,
    config: QueryConfig,
    /// Which attributes a search may name, and their types.
    catalog: Catalog,
    /// Which tenants may be served at all.
    tenants: TenantStatus,
    /// The primary and the replicas, all acting as the application role.
    router: Router,
    /// Point reads at eventual consistency look here first.
    cache: Option<Arc<HotCache>>,
    /// Analytics reads are served here when it is fresh enough.
    warehouse: Option<Arc<dyn Warehouse>>,
}

impl QueryApi {
    /// Served by `pool` (the primary) alone until `with_replicas`.
    pub fn new(pool: Pool, registry: Registry, config: QueryConfig) -> Self {
        Self {
            catalog: Catalog::new(pool.clone(), config.catalog_ttl),
            tenants: TenantStatus::new(pool.clone(), config.catalog_ttl),
            webhooks: atlas_webhooks::Registry::new(pool.clone(), config.webhooks),
            router: Router::new(
                pool,
                config.routing.clone(),
                atlas_cloud::metrics::from_env("Atlas"),
            ),
            registry,
            config,
            cache: None,
            warehouse: None,
        }
    }

    pub fn with_cache(mut self, cache: Arc<HotCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn with_warehouse(mut self, warehouse: Arc<dyn Warehouse>) -> Self {
        self.warehouse = Some(warehouse);
        self
    }

    pub fn with_replicas(mut self, replicas: Vec<Replica>) -> Self {
        self.router = self.router.with_replicas(replicas);
        self
    }
}

/// Never fails: every problem becomes a JSON error response.
pub async fn handle(api: &QueryApi, req: Request) -> Response<Body> {
    let Some(scope) = scope_for(req.method(), req.uri().path()) else {
        // No tenant's data: a valid token is all it takes, an inactive
        // tenant's too.
        return match tenant_from_request(&req) {
            Ok(_) => serve(api, req).await,
            Err(e) => ApiError::from(e).into_response(),
        };
    };
    let tenant = match authorize(&req, scope) {
        Ok(tenant) => tenant,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A read changes nothing, so it runs beside its tenant check and its
    // answer is released only once the tenant is admitted: a tenant whose
    // answer has expired costs the read no extra round trip. A change is
    // admitted first, before it writes or compiles.
    if scope == Scope::Read {
        let (admitted, answer) = tokio::join!(admit(api, tenant), serve(api, req));
        admitted.map_or_else(ApiError::into_response, |()| answer)
    } else {
        match admit(api, tenant).await {
            Ok(()) => serve(api, req).await,
            Err(e) => e.into_response(),
        }
    }
}

async fn serve(api: &QueryApi, req: Request) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == atlas_plugins::http::PREFIX
        || path.starts_with(&format!("{}/", atlas_plugins::http::PREFIX))
    {
        return atlas_plugins::http::handle(&api.registry, req).await;
    }
    if path == atlas_webhooks::http::PREFIX
        || path.starts_with(&format!("{}/", atlas_webhooks::http::PREFIX))
    {
        return atlas_webhooks::http::handle(&api.webhooks, req).await;
    }
    match route(api, &path, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A valid token is not enough: its tenant must exist and be active, as
/// ingest requires. A deactivated tenant is refused on every route within
/// the catalog's TTL, and an unknown one before any plugin upload writes
/// to S3 or compiles.
async fn admit(api: &QueryApi, tenant: TenantId) -> Result<(), ApiError> {
    if api.tenants.is_active(tenant).await.map_err(unavailable)? {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!(
            "tenant {tenant} does not exist or is inactive"
        )))
    }
}

/// The scope a request needs: changes to the catalog and the plugins, and
/// everything about webhooks (a listing names where a tenant's data goes),
/// need `admin`, the freshness status none (it holds no tenant's data, and the
/// status page's token carries no scope), everything else `read` (a method
/// a path does not serve is answered 405 by the router, after this).
/// Whatever needs only `read` must change nothing: it runs before its
/// tenant is admitted.
fn scope_for(method: &Method, path: &str) -> Option<Scope> {
    let changes = |prefix: &str| {
        (path == prefix || path.starts_with(&format!("{prefix}/"))) && method != Method::GET
    };
    if path == STATUS {
        None
    } else if changes(atlas_plugins::http::PREFIX)
        || changes("/v1/attributes")
        || path == atlas_webhooks::http::PREFIX
        || path.starts_with(&format!("{}/", atlas_webhooks::http::PREFIX))
    {
        Some(Scope::Admin)
    } else {
        Some(Scope::Read)
    }
}

async fn route(api: &QueryApi, path: &str, req: Request) -> Result<Response<Body>, ApiError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (parts.as_slice(), req.method()) {
        (["v1", "entities", "search"], &Method::POST) => search(api, &req).await,
        (["v1", "entities", "search"], _) => Err(ApiError::method_not_allowed("POST")),
        (["v1", "entities", id], &Method::GET) => get_entity(api, id, &req).await,
        (["v1", "entities", id, "attributes", name, "history"], &Method::GET) => {
            get_history(api, id, name, &req).await
        }
        (["v1", "analytics", "attributes", name, "stats"], &Method::GET) => {
            get_stats(api, name, &req).await
        }
        (["v1", "analytics", "attributes", name, "daily"], &Method::GET) => {
            get_daily(api, name, &req).await
        }
        (["v1", "analytics", "attributes", _, "stats" | "daily"], _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        (["v1", "attributes"], &Method::POST) => create_attribute(api, &req).await,
        (["v1", "attributes", name], &Method::GET) => get_attribute(api, name, &req).await,
        (["v1", "attributes", name], &Method::PATCH) => patch_attribute(api, name, &req).await,
        (["v1", "attributes", _], _) => Err(ApiError::method_not_allowed("GET, PATCH")),
        (["v1", "entities", _], _) | (["v1", "entities", _, "attributes", _, "history"], _) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        (["v1", "attributes"], _) => Err(ApiError::method_not_allowed("POST")),
        (["v1", "status"], &Method::GET) => get_status(api, &req).await,
        (["v1", "status"], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

fn entity_id(raw: &str) -> Result<EntityId, ApiError> {
    EntityId::parse(raw).map_err(|e| ApiError::bad_request("invalid_entity_id", e.to_string()))
}

fn attribute_name(raw: &str) -> Result<AttributeName, ApiError> {
    AttributeName::parse(raw).map_err(|e| ApiError::bad_request("invalid_attribute", e.to_string()))
}

/// Refuses any query parameter on a route that takes none.
fn no_query(req: &Request, route: &str) -> Result<(), ApiError> {
    if query_params(req).is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "unknown_parameter",
            format!("{route} takes no query parameters"),
        ))
    }
}

/// Largest body `POST /v1/attributes` and `POST /v1/entities/search` read.
const MAX_BODY: usize = 64 << 10;

/// The request body as `T`, within `MAX_BODY`; `shape` tells a caller
/// what was expected.
fn json_body<T: serde::de::DeserializeOwned>(req: &Request, shape: &str) -> Result<T, ApiError> {
    let body = body_bytes(req);
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large(
            "body_too_large",
            format!(
                "request body is {} bytes; the limit is {MAX_BODY}",
                body.len()
            ),
        ));
    }
    let parsed = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body must be {shape}: {e}"))
    })?;
    if !atlas_http::is_json_object(body) {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!("the body must be {shape}, a JSON object"),
        ));
    }
    Ok(parsed)
}

async fn search(api: &QueryApi, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let params = ReadParams::parse(&query_params(req), &[])?;
    let body: SearchRequest = json_body(
        req,
        "{\"filter\": [{\"attribute\", \"op\", \"value\"}], \"order_by\", \"order\", \"limit\", \"cursor\"}",
    )?;
    let started = Instant::now();
    let mut catalog = api.catalog.get(tenant).await.map_err(unavailable)?;
    // An attribute created a moment ago may be missing from the cached
    // catalog.
    let named = body
        .filter
        .iter()
        .map(|c| c.attribute.as_str())
        .chain(body.order_by.as_deref().filter(|o| *o != "updated_at"));
    if named.into_iter().any(|n| {
        catalog
            .as_ref()
            .is_none_or(|c| !c.attributes.contains_key(n))
    }) {
        catalog = api
            .catalog
            .reload_for_unknown(tenant)
            .await
            .map_err(unavailable)?;
    }
    let search = Search::parse(body, catalog.as_deref(), tenant, &api.config.cursor_key)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let search = &search;
    let (page, route) = params
        .read(api, |pool| async move { search.run(&pool, tenant).await })
        .await?;
    Ok(params.answer(started, &route, CacheStatus::Bypass, &page))
}

async fn create_attribute(api: &QueryApi, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    no_query(req, "POST /v1/attributes")?;
    let new: NewAttribute = json_body(req, "{\"name\", \"data_type\", \"is_hot\"}")?;
    let name = attribute_name(&new.name)?;
    let data_type: DataType = new.data_type.parse().map_err(|e: atlas_core::ValueError| {
        ApiError::bad_request("invalid_data_type", e.to_string())
    })?;
    match Attribute::create(api.router.primary(), tenant, &name, data_type, new.is_hot)
        .await
        .map_err(unavailable)?
    {
        Created::New(a) => Ok(json(StatusCode::CREATED, &a)),
        Created::Same(a) => Ok(json(StatusCode::OK, &a)),
        Created::Conflict(a) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "attribute_exists",
            format!(
                "attribute {} exists as {}{}; types never change, hotness changes with PATCH",
                a.name,
                a.data_type,
                if a.is_hot { " (hot)" } else { " (cold)" }
            ),
        )),
    }
}

async fn patch_attribute(
    api: &QueryApi,
    name: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let name = attribute_name(name)?;
    no_query(req, "PATCH /v1/attributes/{name}")?;
    let patch: AttributePatch = json_body(req, "{\"is_hot\": true|false}")?;
    match Attribute::set_hot(api.router.primary(), tenant, &name, patch.is_hot)
        .await
        .map_err(unavailable)?
    {
        Patched::Missing => Err(ApiError::not_found(format!("no attribute {name}"))),
        Patched::Unchanged(a) => Ok(json(StatusCode::OK, &a)),
        // Accepted: GET /v1/attributes/{name} shows the progress.
        Patched::Queued(a) => {
            api.catalog.invalidate(tenant);
            Ok(json(StatusCode::ACCEPTED, &a))
        }
    }
}

/// How fresh each read path is, as the lag checker last published it. It
/// holds no tenant's data: every tenant sees the same.
async fn get_status(api: &QueryApi, req: &Request) -> Result<Response<Body>, ApiError> {
    no_query(req, "/v1/status")?;
    let primary = api.router.primary();
    let (rows, mut history) = tokio::try_join!(
        atlas_freshness::status::read(primary),
        atlas_freshness::status::history(primary, STATUS_WINDOW, STATUS_POINTS),
    )
    .map_err(unavailable)?;
    let now = Utc::now();
    let worst = atlas_freshness::status::worst(&rows);
    let paths: Vec<PathStatus> = rows
        .iter()
        .map(|r| PathStatus {
            backlog: r.backlog,
            history: history.remove(&r.path).unwrap_or_default(),
            path: &r.path,
            state: r.state,
            label: r.state.label(),
            lag_seconds: r.lag_seconds,
            measured_at: r.measured_at,
            age_seconds: ((now - r.measured_at).as_seconds_f64().max(0.0) * 1000.0).round()
                / 1000.0,
            detail: &r.detail,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &StatusBody {
            state: worst,
            label: worst.label(),
            checked_at: now,
            paths,
        },
    ))
}

#[derive(Serialize)]
struct StatusBody<'a> {
    /// The worst state of any path; red when nothing is published.
    state: atlas_freshness::State,
    label: &'static str,
    checked_at: DateTime<Utc>,
    paths: Vec<PathStatus<'a>>,
}

#[derive(Serialize)]
struct PathStatus<'a> {
    path: &'a str,
    state: atlas_freshness::State,
    label: &'static str,
    lag_seconds: Option<f64>,
    measured_at: DateTime<Utc>,
    age_seconds: f64,
    detail: &'a str,
    backlog: Option<i64>,
    history: Vec<atlas_freshness::status::Point>,
}

/// `/v1/status` draws each path's last quarter hour in 15-second buckets:
/// enough for a sparkline, and a small answer for a page that polls.
const STATUS_WINDOW: Duration = Duration::from_secs(15 * 60);
const STATUS_POINTS: u32 = 60;

async fn get_attribute(
    api: &QueryApi,
    name: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let name = attribute_name(name)?;
    let params = ReadParams::parse(&query_params(req), &[])?;
    let started = Instant::now();
    let name = &name;
    let (attribute, route) = params
        .read(api, |pool| async move {
            Attribute::get(&pool, tenant, name).await
        })
        .await?;
    let attribute = attribute.ok_or_else(|| ApiError::not_found(format!("no attribute {name}")))?;
    Ok(params.answer(started, &route, CacheStatus::Bypass, &attribute))
}

async fn get_entity(api: &QueryApi, id: &str, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let id = entity_id(id)?;
    let params = ReadParams::parse(&query_params(req), &[])?;
    let started = Instant::now();
    // Cache-aside, for eventual reads only: strong ones must see the
    // primary, analytics ones the replica or warehouse.
    let cache = api
        .cache
        .as_deref()
        .filter(|_| params.consistency == Consistency::Eventual)
        .map(|c| (c, c.entity_key(tenant.get(), id.get())));
    let mut cache_status = CacheStatus::Bypass;
    if let Some((cache, key)) = &cache {
        cache_status = CacheStatus::Miss;
        match cache.get(key).await {
            Lookup::Hit(text) => {
                if let Some(hit) = Cached::fresh_enough(&text, params.max_lag_seconds) {
                    let freshness = Freshness::new(
                        "cache",
                        hit.lag_seconds,
                        params.consistency,
                        CacheStatus::Hit,
                        started.elapsed(),
                    );
                    return Ok(freshness.respond(StatusCode::OK, hit.entity));
                }
            }
            Lookup::Miss => {}
            Lookup::Down => cache_status = CacheStatus::Bypass,
        }
    }
    let (entity, route) = params
        .read(
            api,
            |pool| async move { Entity::get(&pool, tenant, id).await },
        )
        .await?;
    let entity = entity.ok_or_else(|| ApiError::not_found(format!("no entity {}", id.get())))?;
    let body = serde_json::to_value(entity).expect("entities serialize");
    if let Some((cache, key)) = &cache
        && cache_status == CacheStatus::Miss
    {
        cache
            .put(key, &Cached::entry(&body, route.lag_seconds))
            .await;
    }
    Ok(params.answer(started, &route, cache_status, &body))
}

/// A cached entity and when its data was current (read time minus the
/// lag of the source it was read from).
#[derive(serde::Deserialize)]
struct Cached {
    as_of_us: i64,
    entity: serde_json::Value,
}

struct Hit {
    entity: serde_json::Value,
    lag_seconds: f64,
}

impl Cached {
    fn entry(entity: &serde_json::Value, source_lag: f64) -> String {
        let as_of = Utc::now().timestamp_micros() - (source_lag * 1e6) as i64;
        serde_json::json!({"as_of_us": as_of, "entity": entity}).to_string()
    }

    /// The entry, unless it is unreadable or older than the caller allows.
    fn fresh_enough(text: &str, max_lag: Option<f64>) -> Option<Hit> {
        let c: Cached = serde_json::from_str(text).ok()?;
        let lag_seconds = ((Utc::now().timestamp_micros() - c.as_of_us) as f64 / 1e6).max(0.0);
        max_lag.is_none_or(|m| lag_seconds <= m).then_some(Hit {
            entity: c.entity,
            lag_seconds,
        })
    }
}

async fn get_history(
    api: &QueryApi,
    id: &str,
    name: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let id = entity_id(id)?;
    let name = attribute_name(name)?;
    let q = query_params(req);
    let params = ReadParams::parse(&q, &["from", "to", "limit"])?;
    let range = history_range(&q, api.config.history_max_range)?;
    let started = Instant::now();
    let (name, range) = (&name, &range);
    let (history, route) = params
        .read(api, |pool| async move {
            History::get(&pool, tenant, id, name, range).await
        })
        .await?;
    let history = history.map_err(|missing| match missing {
        Missing::Entity => ApiError::not_found(format!("no entity {}", id.get())),
        Missing::Attribute => ApiError::not_found(format!("no attribute {name}")),
    })?;
    Ok(params.answer(started, &route, CacheStatus::Bypass, &history))
}

/// `from` and `to` (RFC 3339, both required, `to` exclusive) no wider than
/// `max`, which `setting` configures: the seed refuses unbounded scans of
/// the time series, and so do we.
fn time_range(
    q: &HashMap<String, String>,
    max: std::time::Duration,
    setting: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let time = |key: &str| -> Result<DateTime<Utc>, ApiError> {
        let raw = q.get(key).ok_or_else(|| {
            ApiError::bad_request(
                "range_required",
                format!("{key} is required: these reads need from and to (RFC 3339)"),
            )
        })?;
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_time",
                    format!("{key}={raw:?} is not RFC 3339: {e}"),
                )
            })
    };
    let (from, to) = (time("from")?, time("to")?);
    // [from, to) with to == from is empty, and answers with nothing.
    if to < from {
        return Err(ApiError::bad_request(
            "invalid_range",
            "to must not be before from",
        ));
    }
    let max = chrono::Duration::from_std(max).unwrap_or(chrono::Duration::MAX);
    if to - from > max {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!(
                "from..to spans {} s; the limit is {} s ({setting})",
                (to - from).num_seconds(),
                max.num_seconds()
            ),
        ));
    }
    Ok((from, to))
}

/// A history read's range and `limit` (1 to 1,000, default 100).
fn history_range(q: &HashMap<String, String>, max: std::time::Duration) -> Result<Range, ApiError> {
    let (from, to) = time_range(q, max, "ATLAS_HISTORY_MAX_RANGE_SECS")?;
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to 1000, not {v:?}"),
                )
            })?,
    };
    Ok(Range { from, to, limit })
}

async fn get_stats(api: &QueryApi, name: &str, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let name = attribute_name(name)?;
    let q = query_params(req);
    let params = ReadParams::parse_or(&q, &["from", "to", "group_by"], Consistency::Analytics)?;
    let group_by = q
        .get("group_by")
        .map(|g| AttributeName::parse(g))
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_attribute", format!("group_by: {e}")))?;
    let started = Instant::now();
    let (name, group_by) = (&name, group_by.as_ref());
    if let Some((wh, lag)) = params.warehouse(api).await? {
        let (from, to) = time_range(
            &q,
            api.config.warehouse_max_range,
            "ATLAS_WAREHOUSE_MAX_RANGE_SECS",
        )?;
        let stats = Stats::from_warehouse(wh, tenant, name, group_by, from, to)
            .await
            .map_err(warehouse_unavailable)?
            .map_err(refusal)?;
        return Ok(params.answer_from_warehouse(started, lag, &stats));
    }
    let (from, to) = time_range(
        &q,
        api.config.analytics_max_range,
        "ATLAS_ANALYTICS_MAX_RANGE_SECS",
    )?;
    let (stats, route) = params
        .read(api, |pool| async move {
            Stats::get(&pool, tenant, name, group_by, from, to).await
        })
        .await?;
    Ok(params.answer(
        started,
        &route,
        CacheStatus::Bypass,
        &stats.map_err(refusal)?,
    ))
}

/// One numeric attribute per day, from the warehouse alone: over months,
/// the time series would be read reading by reading.
async fn get_daily(api: &QueryApi, name: &str, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_from_request(req)?;
    let name = attribute_name(name)?;
    let q = query_params(req);
    if let Some(k) = q.keys().find(|k| !["from", "to"].contains(&k.as_str())) {
        // Always the warehouse, which says how fresh it is: no consistency
        // or lag bound to choose.
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown parameter {k:?}; use from, to"),
        ));
    }
    let params = ReadParams::parse_or(&q, &["from", "to"], Consistency::Analytics)?;
    let day = |key: &str| -> Result<NaiveDate, ApiError> {
        let raw = q.get(key).ok_or_else(|| {
            ApiError::bad_request(
                "range_required",
                format!("{key} is required: the first and last day, YYYY-MM-DD"),
            )
        })?;
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|e| {
            ApiError::bad_request(
                "invalid_date",
                format!("{key}={raw:?} is not YYYY-MM-DD: {e}"),
            )
        })
    };
    let (from, to) = (day("from")?, day("to")?);
    if to < from {
        return Err(ApiError::bad_request(
            "invalid_range",
            "to must not be before from",
        ));
    }
    let max_days = (api.config.warehouse_max_range.as_secs() / 86_400) as i64;
    if (to - from).num_days() + 1 > max_days {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!(
                "from..to spans {} days; the limit is {max_days} (ATLAS_WAREHOUSE_MAX_RANGE_SECS)",
                (to - from).num_days() + 1
            ),
        ));
    }
    let started = Instant::now();
    let Some((wh, lag)) = params.warehouse(api).await? else {
        return Err(match api.warehouse {
            None => ApiError::unavailable(
                "no warehouse is configured (ATLAS_WAREHOUSE_URL); daily statistics need one",
            ),
            Some(_) => ApiError::unavailable("the warehouse has loaded nothing yet; retry later"),
        });
    };
    let daily = Daily::get(wh, tenant, &name, from, to)
        .await
        .map_err(warehouse_unavailable)?
        .map_err(refusal)?;
    Ok(params.answer_from_warehouse(started, lag, &daily))
}

fn refusal(refused: Refused) -> ApiError {
    match refused {
        Refused::Missing(n) => ApiError::not_found(format!("no attribute {n}")),
        Refused::NotNumeric { name, data_type } => ApiError::bad_request(
            "not_numeric",
            format!("{name} is a {data_type} attribute; statistics need int or decimal"),
        ),
    }
}

fn warehouse_unavailable(e: WarehouseError) -> ApiError {
    tracing::error!(error = %e, "warehouse read failed");
    ApiError::unavailable("the warehouse is unavailable; retry the request")
}

fn unavailable(e: atlas_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "read failed");
    ApiError::unavailable("the database is unavailable; retry the request")
}

/// The parameters every read takes.
struct ReadParams {
    consistency: Consistency,
    max_lag_seconds: Option<f64>,
}

impl ReadParams {
    /// The common parameters; `extra` names the route's own, and anything
    /// else is refused.
    fn parse(q: &HashMap<String, String>, extra: &[&str]) -> Result<Self, ApiError> {
        Self::parse_or(q, extra, Consistency::default())
    }

    /// As `parse`, for a route whose reads default to `default`.
    fn parse_or(
        q: &HashMap<String, String>,
        extra: &[&str],
        default: Consistency,
    ) -> Result<Self, ApiError> {
        const COMMON: [&str; 2] = ["consistency", "max_lag_seconds"];
        if let Some(k) = q
            .keys()
            .find(|k| !COMMON.contains(&k.as_str()) && !extra.contains(&k.as_str()))
        {
            let known: Vec<&str> = COMMON.iter().chain(extra).copied().collect();
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown parameter {k:?}; use {}", known.join(", ")),
            ));
        }
        let consistency = match q.get("consistency") {
            Some(c) => Consistency::parse(c)
                .map_err(|e| ApiError::bad_request("invalid_consistency", e))?,
            None => default,
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

    /// Runs `read` on the source the router picks for these parameters.
    async fn read<'a, T, F, Fut>(
        &self,
        api: &'a QueryApi,
        read: F,
    ) -> Result<(T, Route<'a>), ApiError>
    where
        F: Fn(Pool) -> Fut,
        Fut: std::future::Future<Output = Result<T, atlas_store::StoreError>>,
    {
        api.router
            .read(self.consistency, self.max_lag_seconds, read)
            .await
            .map_err(|e| match e {
                ReadError::NoSource(e) => ApiError::unavailable(e.to_string()),
                ReadError::Store(e) => unavailable(e),
            })
    }

    /// The warehouse and how far it lags, when it should serve this
    /// read: an analytics read, a warehouse that has loaded something, and
    /// no more lag than the caller allows (else the router's sources
    /// serve, as for any read).
    async fn warehouse<'a>(
        &self,
        api: &'a QueryApi,
    ) -> Result<Option<(&'a dyn Warehouse, f64)>, ApiError> {
        let Some(wh) = api.warehouse.as_deref() else {
            return Ok(None);
        };
        if self.consistency != Consistency::Analytics {
            return Ok(None);
        }
        let Some(as_of) = wh.data_as_of().await.map_err(warehouse_unavailable)? else {
            return Ok(None);
        };
        let lag =
            ((Utc::now() - as_of).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0);
        Ok(self
            .max_lag_seconds
            .is_none_or(|max| lag <= max)
            .then_some((wh, lag)))
    }

    /// An answer from the warehouse, as of its newest loaded commit.
    fn answer_from_warehouse(
        &self,
        started: Instant,
        lag_seconds: f64,
        body: &impl Serialize,
    ) -> Response<Body> {
        let freshness = Freshness::new(
            "warehouse",
            lag_seconds,
            self.consistency,
            CacheStatus::Bypass,
            started.elapsed(),
        );
        let body = serde_json::to_value(body).expect("answers serialize");
        freshness.respond(StatusCode::OK, body)
    }

    /// The answer with its freshness. The router never picks a source
    /// lagging more than `max_lag_seconds`, so nothing here is silently
    /// stale.
    fn answer(
        &self,
        started: Instant,
        route: &Route<'_>,
        cache_status: CacheStatus,
        body: &impl Serialize,
    ) -> Response<Body> {
        let freshness = Freshness::new(
            route.source.clone(),
            route.lag_seconds,
            self.consistency,
            cache_status,
            started.elapsed(),
        );
        let body = serde_json::to_value(body).expect("answers serialize");
        freshness.respond(StatusCode::OK, body)
    }
}
