//! `atlas bench query`: reads through the query API's handler, in process,
//! on a dataset of N entities across T tenants (kept between runs in the
//! database `atlas_bench_query_<N>_<T>`; `--rebuild` makes it again).
//!
//! It times, one request at a time:
//! - the seed's Query 1 (`POST /v1/entities/search`) for random tenants;
//! - point reads at strong consistency (never cached) and cached ones
//!   (eventual, each entity read once before to fill Redis);
//! - the same Query 1 filter answered from `entity_values_ts` alone, the
//!   pure-EAV design the seed compares against, as SQL in a tenant-scoped
//!   transaction like every other read, against Query 1's own statement
//!   run the same way.
//!
//! The time series holds `history` readings per attribute and entity, an
//! hour apart; the projection holds the latest, as the flusher leaves it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cache::{CacheConfig, HotCache};
use atlas_core::TenantId;
use atlas_query::QueryApi;
use atlas_store::{DbConfig, DbRole, begin_tenant};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_postgres::NoTls;

use crate::scratch::ScratchDb;
use crate::{percentile, round3};

use crate::BoxError;

#[derive(Clone)]
pub struct Options {
    pub server_url: String,
    pub entities: i64,
    pub tenants: i64,
    /// Requests timed per kind (EAV: a tenth, at least 20).
    pub iterations: usize,
    pub rebuild: bool,
    pub redis_url: String,
    /// Readings per attribute per entity in the time series (the
    /// projection holds the latest): what the EAV query has to sift.
    pub history: i64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub entities: i64,
    pub tenants: i64,
    pub history: i64,
    pub q1_p50_ms: f64,
    pub q1_p99_ms: f64,
    /// Entities Query 1 returned, on average (of at most 100).
    pub q1_rows_avg: f64,
    pub point_p50_ms: f64,
    pub point_p99_ms: f64,
    pub cached_point_p50_ms: f64,
    pub cached_point_p99_ms: f64,
    /// Query 1's statement alone, as the handler runs it (prepared, in a
    /// tenant-scoped transaction), to compare like with like.
    pub q1_sql_p50_ms: f64,
    pub eav_q1_p50_ms: f64,
    pub eav_q1_p99_ms: f64,
    /// eav_q1_p50_ms / q1_sql_p50_ms.
    pub hot_vs_eav_speedup: f64,
    /// Partitions of the projection the flusher's upkeep rewrote before
    /// the timing (0 once a dataset has been kept).
    pub reclustered: usize,
}

/// Each attribute's value for entity `g` as SQL over `g`, hashed so the
/// attributes are independent. Shared by the time series and the
/// projection, which therefore agree.
const ENVIRONMENT: &str = "CASE WHEN abs(hashint8(g)) % 10 = 0 THEN 'production' \
                           WHEN abs(hashint8(g)) % 10 < 4 THEN 'staging' ELSE 'dev' END";
const STATUS: &str = "CASE WHEN abs(hashint8(g + 7)) % 10 < 7 THEN 'online' \
                      WHEN abs(hashint8(g + 7)) % 10 = 7 THEN 'warning' ELSE 'offline' END";
const PRIORITY: &str = "(abs(hashint8(g + 13)) % 10 + 1)::bigint";
const REGION: &str = "(ARRAY['eu-west', 'eu-central', 'us-east', 'us-west', 'ap-south'])\
                      [abs(hashint8(g + 29)) % 5 + 1]";
/// The latest reading's time; older ones (`h` = 1, 2, ...) are an hour apart.
const READ_AT: &str = "now() - (abs(hashint8(g + 41)) % 3600) * interval '1 second'";

/// Earlier readings (`h` > 0) of the attributes that change: other values,
/// so the latest one is the one that must be found.
const OLD_STATUS: &str = "CASE WHEN h = 0 THEN (CASE WHEN abs(hashint8(g + 7)) % 10 < 7 THEN 'online' \
                          WHEN abs(hashint8(g + 7)) % 10 = 7 THEN 'warning' ELSE 'offline' END) \
                          ELSE (ARRAY['online', 'warning', 'offline'])[abs(hashint8(g * 31 + h)) % 3 + 1] END";
const OLD_PRIORITY: &str = "CASE WHEN h = 0 THEN (abs(hashint8(g + 13)) % 10 + 1)::bigint \
                            ELSE (abs(hashint8(g * 37 + h)) % 10 + 1)::bigint END";

const QUERY_1: &str = r#"{"filter": [
    {"attribute": "environment", "op": "eq", "value": "production"},
    {"attribute": "status", "op": "in", "value": ["online", "warning"]},
    {"attribute": "priority", "op": "gte", "value": 8}],
  "order_by": "updated_at", "limit": 100}"#;

/// The same filter over the time series alone: each entity's latest value
/// of each attribute, pivoted, then filtered and ordered.
const EAV_QUERY_1: &str = r#"
WITH attrs AS (
    SELECT attribute_id, attribute_name FROM attributes
    WHERE tenant_id = $1 AND attribute_name IN ('environment', 'status', 'priority', 'region')
), latest AS (
    SELECT DISTINCT ON (v.entity_id, v.attribute_id) v.entity_id, a.attribute_name,
           coalesce(v.value, v.value_int::text) AS value, v.ingested_at
    FROM entity_values_ts v JOIN attrs a USING (attribute_id)
    WHERE v.tenant_id = $1
    ORDER BY v.entity_id, v.attribute_id, v.ingested_at DESC
), pivot AS (
    SELECT entity_id,
           max(value) FILTER (WHERE attribute_name = 'environment') AS environment,
           max(value) FILTER (WHERE attribute_name = 'status') AS status,
           max(value) FILTER (WHERE attribute_name = 'priority')::int AS priority,
           max(value) FILTER (WHERE attribute_name = 'region') AS region,
           max(ingested_at) AS updated_at
    FROM latest GROUP BY entity_id
)
SELECT p.entity_id, e.entity_type, p.environment, p.status, p.priority, p.region, p.updated_at
FROM pivot p JOIN entities e ON e.tenant_id = $1 AND e.entity_id = p.entity_id AND NOT e.is_deleted
WHERE p.environment = 'production' AND p.status IN ('online', 'warning') AND p.priority >= 8
ORDER BY p.updated_at DESC, p.entity_id DESC
LIMIT 100
"#;

/// Several datasets measured in one invocation, smallest first.
#[derive(Debug, Serialize)]
pub struct Runs {
    pub bench: &'static str,
    pub runs: Vec<Report>,
    /// q1_p99_ms of the largest dataset over that of the smallest, at the
    /// first history given: how Query 1 grows with the fleet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<f64>,
}

/// Every combination of `entities` and `history`, entities outermost, each
/// on its own dataset (`opts.entities` and `opts.history` are overridden).
pub async fn run_all(opts: Options, entities: &[i64], history: &[i64]) -> Result<Runs, BoxError> {
    let (mut entities, history) = (entities.to_vec(), history.to_vec());
    entities.sort_unstable();
    entities.dedup();
    if entities.is_empty() || history.is_empty() {
        return Err("need at least one entity count and one history".into());
    }
    let mut runs = Vec::new();
    for &n in &entities {
        for &h in &history {
            runs.push(
                run(&Options {
                    entities: n,
                    history: h,
                    ..opts.clone()
                })
                .await?,
            );
        }
    }
    let q1 = |n: i64| {
        runs.iter()
            .find(|r| r.entities == n && r.history == history[0])
            .map(|r| r.q1_p99_ms)
    };
    let (small, large) = (entities[0], entities[entities.len() - 1]);
    let growth = match (q1(small), q1(large)) {
        (Some(a), Some(b)) if large > small && a > 0.0 => Some(round3(b / a)),
        _ => None,
    };
    Ok(Runs {
        bench: "query",
        runs,
        growth,
    })
}

pub async fn run(opts: &Options) -> Result<Report, BoxError> {
    if opts.tenants < 1
        || opts.entities < opts.tenants
        || opts.iterations < 10
        || !(1..=24).contains(&opts.history)
    {
        return Err(
            "need tenants >= 1, entities >= tenants, iterations >= 10 and history 1 to 24".into(),
        );
    }
    let name = format!(
        "atlas_bench_query_{}_{}_{}",
        opts.entities, opts.tenants, opts.history
    );
    let url = atlas_store::with_database(&opts.server_url, &name);
    if opts.rebuild || !dataset_ready(&url, opts).await {
        build(opts, &name).await?;
    } else {
        eprintln!("reusing the dataset in {name} (--rebuild to make it again)");
        // A dataset built by an older build lacks the newer migrations.
        atlas_store::migrate(
            &atlas_store::DbConfig::new(&url, atlas_store::DbRole::AsLogin),
            &atlas_core::AcceptWindow::default(),
        )
        .await?;
    }
    let reclustered = upkeep(&url).await?;
    Ok(Report {
        reclustered,
        ..measure(opts, &url).await?
    })
}

/// Puts the projection in the order the flusher's idle-time upkeep keeps
/// it (each partition's rows grouped by tenant), so the reads are timed on
/// the system as it runs rather than on a bulk load's interleaved rows.
/// Returns how many partitions it rewrote (none on a dataset already kept).
async fn upkeep(url: &str) -> Result<usize, BoxError> {
    use atlas_store::projection::{RECLUSTER_BELOW, RECLUSTER_MIN_ROWS, recluster_one};
    let pool = DbConfig::new(url, DbRole::Worker).pool()?;
    let started = Instant::now();
    let mut n = 0;
    while recluster_one(&pool, RECLUSTER_BELOW, RECLUSTER_MIN_ROWS)
        .await?
        .is_some()
    {
        n += 1;
    }
    if n > 0 {
        eprintln!(
            "projection upkeep: {n} partition(s) put in tenant order in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(n)
}

/// Whether `url` holds a complete dataset of this size.
async fn dataset_ready(url: &str, opts: &Options) -> bool {
    let Ok((client, conn)) = tokio_postgres::connect(url, NoTls).await else {
        return false;
    };
    tokio::spawn(conn);
    client
        .query_opt(
            "SELECT entities, tenants, history FROM atlas_bench_dataset",
            &[],
        )
        .await
        .ok()
        .flatten()
        .is_some_and(|r| {
            (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2))
                == (opts.entities, opts.tenants, opts.history)
        })
}

async fn build(opts: &Options, name: &str) -> Result<(), BoxError> {
    eprintln!(
        "building {} entities across {} tenants, {} reading(s) per attribute, in {name} on {}",
        opts.entities,
        opts.tenants,
        opts.history,
        atlas_store::redact_url(&opts.server_url)
    );
    let db = ScratchDb::create(&opts.server_url, name.to_owned()).await?;
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls).await?;
    tokio::spawn(conn);
    // The owner loads the data; Row-Level Security binds the app role only.
    client
        .batch_execute(&format!(
            "SET synchronous_commit = off;
             INSERT INTO tenants (tenant_id, tenant_name)
                 SELECT t, 'bench tenant ' || t FROM generate_series(1, {t}) t;
             INSERT INTO attributes (tenant_id, attribute_name, data_type, is_hot)
                 SELECT t, a.name, a.type, true
                 FROM generate_series(1, {t}) t,
                      (VALUES ('environment', 'string'), ('status', 'string'),
                              ('priority', 'int'), ('region', 'string')) a(name, type)
                 ORDER BY t;",
            t = opts.tenants
        ))
        .await
        .map_err(db_error)?;
    let chunk = 250_000i64;
    let bar = ProgressBar::new(opts.entities as u64).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} entities ({eta} left)")
            .expect("progress template")
            .progress_chars("=> "),
    );
    bar.set_message("loading");
    let mut from = 1i64;
    while from <= opts.entities {
        let to = (from + chunk - 1).min(opts.entities);
        let tenant = format!("(g % {} + 1)", opts.tenants);
        let last = opts.history - 1;
        let sql = format!(
            "INSERT INTO entities (entity_id, tenant_id, entity_type)
                 SELECT g, {tenant}, 'device' FROM generate_series({from}, {to}) g;
             INSERT INTO entity_values_ts (entity_id, tenant_id, attribute_id, value, value_int, ingested_at)
                 SELECT g, {tenant}, a.attribute_id,
                        CASE a.attribute_name WHEN 'environment' THEN {ENVIRONMENT}
                                              WHEN 'status' THEN {OLD_STATUS}
                                              WHEN 'region' THEN {REGION} END,
                        CASE WHEN a.attribute_name = 'priority' THEN {OLD_PRIORITY} END,
                        {READ_AT} - h * interval '1 hour'
                 FROM generate_series({from}, {to}) g
                 CROSS JOIN generate_series(0, {last}) h
                 JOIN attributes a ON a.tenant_id = {tenant};
             INSERT INTO entity_jsonb (entity_id, tenant_id, hot_attrs, hot_attrs_ts, updated_at)
                 SELECT g, {tenant},
                        jsonb_build_object('environment', {ENVIRONMENT}, 'status', {STATUS},
                                           'priority', {PRIORITY}, 'region', {REGION}),
                        jsonb_build_object('environment', us, 'status', us, 'priority', us, 'region', us),
                        at
                 FROM (SELECT g, {READ_AT} AS at,
                              (extract(epoch FROM {READ_AT}) * 1000000)::bigint AS us
                       FROM generate_series({from}, {to}) g) s;"
        );
        client.batch_execute(&sql).await.map_err(db_error)?;
        bar.set_position(to as u64);
        from = to + 1;
    }
    bar.set_message("analyzing");
    client
        .batch_execute("VACUUM ANALYZE entities, entity_values_ts, entity_jsonb, attributes")
        .await
        .map_err(db_error)?;
    client
        .batch_execute(
            "CREATE TABLE atlas_bench_dataset (entities bigint, tenants bigint, history bigint, \
             built_at timestamptz)",
        )
        .await
        .map_err(db_error)?;
    client
        .execute(
            "INSERT INTO atlas_bench_dataset VALUES ($1, $2, $3, now())",
            &[&opts.entities, &opts.tenants, &opts.history],
        )
        .await?;
    bar.finish_with_message("built");
    Ok(())
}

/// The server's own message: "db error" alone says nothing.
fn db_error(e: tokio_postgres::Error) -> BoxError {
    e.as_db_error()
        .map_or_else(
            || e.to_string(),
            |d| format!("{}: {}", d.severity(), d.message()),
        )
        .into()
}

/// Times `n` calls of `f`, each given its index, in milliseconds.
async fn timed<F, Fut>(label: &str, n: usize, mut f: F) -> Result<Vec<f64>, BoxError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        f(i).await?;
        took.push(started.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "{label:>12}: p50 {:.3} ms, p99 {:.3} ms over {n}",
        percentile(&mut took, 0.5),
        percentile(&mut took, 0.99)
    );
    Ok(took)
}

async fn call(
    api: &QueryApi,
    tenant: i64,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<lambda_http::Response<lambda_http::Body>, BoxError> {
    let req = atlas_gateway::local::in_process_request(tenant, method, path, body)?;
    let resp = atlas_query::http::handle(api, req).await;
    if resp.status() != http::StatusCode::OK {
        return Err(format!(
            "{method} {path} answered {}: {:?}",
            resp.status(),
            resp.body()
        )
        .into());
    }
    Ok(resp)
}

async fn measure(opts: &Options, url: &str) -> Result<Report, BoxError> {
    // As the query API connects: prepared statements keep generic plans.
    let app = DbConfig {
        generic_plans: true,
        ..DbConfig::new(url, DbRole::App)
    }
    .pool()?;
    let objects = Arc::new(atlas_objects::LocalDir::new(
        std::env::temp_dir().join(format!("atlas-bench-query-{}", std::process::id())),
    ));
    let mut cache = CacheConfig::new(&opts.redis_url);
    cache.namespace = format!("atlas-bench-query-{}", std::process::id());
    let cache = Arc::new(HotCache::new(cache)?);
    let api = QueryApi::new(
        app.clone(),
        atlas_plugins::Registry::new(app.clone(), objects, atlas_plugin_host::Host::new()?),
        atlas_query::QueryConfig::default(),
    )
    .with_cache(cache.clone());
    let per_tenant = opts.entities / opts.tenants;
    let tenant_of = |g: i64| g % opts.tenants + 1;
    let random_entity = || fastrand::i64(1..=opts.entities);
    eprintln!(
        "timing through the query API handler, one request at a time ({per_tenant} entities per tenant)"
    );

    // Warm the pool, the statement caches, and every tenant's catalog and
    // status: the figures are a warm container's. A container's first
    // request for a tenant costs one more statement, once (README).
    for t in 1..=opts.tenants {
        call(&api, t, "POST", "/v1/entities/search", Some(QUERY_1)).await?;
    }
    let rows = std::cell::Cell::new(0usize);
    let mut q1 = timed("query 1", opts.iterations, |_| {
        let (api, rows) = (&api, &rows);
        async move {
            let resp = call(
                api,
                fastrand::i64(1..=opts.tenants),
                "POST",
                "/v1/entities/search",
                Some(QUERY_1),
            )
            .await?;
            let lambda_http::Body::Text(t) = resp.body() else {
                return Err("search answered without a text body".into());
            };
            let page: serde_json::Value = serde_json::from_str(t)?;
            rows.set(rows.get() + page["entities"].as_array().map_or(0, Vec::len));
            Ok(())
        }
    })
    .await?;

    let mut point = timed("point", opts.iterations, |_| {
        let api = &api;
        let g = random_entity();
        async move {
            let path = format!("/v1/entities/{g}?consistency=strong");
            call(api, tenant_of(g), "GET", &path, None).await.map(drop)
        }
    })
    .await?;

    // The same entities twice: the first read fills Redis, the second is timed.
    let picks: Vec<i64> = (0..opts.iterations).map(|_| random_entity()).collect();
    for &g in &picks {
        call(
            &api,
            tenant_of(g),
            "GET",
            &format!("/v1/entities/{g}"),
            None,
        )
        .await?;
    }
    let mut cached = timed("cached point", opts.iterations, |i| {
        let api = &api;
        let g = picks[i];
        async move {
            let resp = call(api, tenant_of(g), "GET", &format!("/v1/entities/{g}"), None).await?;
            if resp.headers()["x-cache-status"] != "hit" {
                return Err(format!(
                    "entity {g} was not served from Redis at {}: is it running?",
                    opts.redis_url
                )
                .into());
            }
            Ok(())
        }
    })
    .await?;

    // Query 1's own statement, as the handler builds and runs it.
    let catalog = atlas_store::Catalog::new(app.clone(), Duration::from_secs(3600));
    let cursor_key = atlas_query::search::CursorKey::random();
    let request = || -> Result<atlas_query::search::SearchRequest, BoxError> {
        Ok(serde_json::from_str(QUERY_1)?)
    };
    let mut q1_sql = timed("query 1 SQL", opts.iterations, |_| {
        let (app, catalog, cursor_key) = (&app, &catalog, &cursor_key);
        async move {
            let tenant = TenantId::new(fastrand::i64(1..=opts.tenants))?;
            let cat = catalog.get(tenant).await?;
            let search =
                atlas_query::search::Search::parse(request()?, cat.as_deref(), tenant, cursor_key)
                    .map_err(|e| e.message)?;
            search.run(app, tenant).await?;
            Ok(())
        }
    })
    .await?;

    let eav_runs = (opts.iterations / 10).max(20);
    let mut eav = timed("EAV query 1", eav_runs, |_| {
        let app = &app;
        async move {
            let tenant = TenantId::new(fastrand::i64(1..=opts.tenants))?;
            let mut client = app.get().await?;
            let tx = begin_tenant(&mut client, tenant).await?;
            let stmt = tx.prepare_cached(EAV_QUERY_1).await?;
            tx.query(&stmt, &[&tenant.get()]).await.map_err(db_error)?;
            tx.commit().await?;
            Ok(())
        }
    })
    .await?;

    let q1_sql_p50 = percentile(&mut q1_sql, 0.5);
    let eav_p50 = percentile(&mut eav, 0.5);
    Ok(Report {
        bench: "query",
        entities: opts.entities,
        tenants: opts.tenants,
        history: opts.history,
        q1_p50_ms: round3(percentile(&mut q1, 0.5)),
        q1_p99_ms: round3(percentile(&mut q1, 0.99)),
        q1_rows_avg: round3(rows.get() as f64 / opts.iterations as f64),
        point_p50_ms: round3(percentile(&mut point, 0.5)),
        point_p99_ms: round3(percentile(&mut point, 0.99)),
        cached_point_p50_ms: round3(percentile(&mut cached, 0.5)),
        cached_point_p99_ms: round3(percentile(&mut cached, 0.99)),
        q1_sql_p50_ms: round3(q1_sql_p50),
        eav_q1_p50_ms: round3(eav_p50),
        eav_q1_p99_ms: round3(percentile(&mut eav, 0.99)),
        hot_vs_eav_speedup: round3(eav_p50 / q1_sql_p50),
        reclustered: 0,
    })
}
