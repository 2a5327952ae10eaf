//! `POST /v1/entities/search` through the query API's handler against a
//! real PostgreSQL: the seed's Query 1 and orderings paged to the end by
//! cursor, the plan PostgreSQL picks for a filter, and refusals of bad or
//! hostile input.

use std::collections::HashSet;

use atlas_core::TenantId;
use atlas_ingest::{IngestConfig, IngestService};
use atlas_query::QueryApi;
use atlas_query::search::{CursorKey, Search, SearchRequest};
use atlas_store::{DbRole, begin_tenant};
use atlas_tests::{TestDb, api_request, body_json, count, demo_tenants, flush_all, query_api};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde_json::{Value, json};

const ENVIRONMENTS: [&str; 3] = ["production", "staging", "dev"];
const STATUSES: [&str; 3] = ["online", "warning", "offline"];
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// What entity `i` of tenant 1 reports: (environment, status, priority,
/// region, seconds before the base time). Several entities share a time,
/// so orderings must break ties.
fn device(i: i64) -> (&'static str, &'static str, i64, Option<&'static str>, i64) {
    (
        ENVIRONMENTS[(i % 3) as usize],
        STATUSES[((i / 3) % 3) as usize],
        i % 11,
        (i % 4 != 0).then(|| REGIONS[(i % 3) as usize]),
        i % 17,
    )
}

const DEVICES: i64 = 240;

async fn setup() -> (TestDb, QueryApi, DateTime<Utc>) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let ingest = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
    let base = Utc::now() - chrono::Duration::minutes(5);
    let ts = |s: i64| {
        (base - chrono::Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let post = |tenant: &'static str, readings: Vec<Value>| {
        let ingest = &ingest;
        async move {
            let body = json!({ "readings": readings }).to_string();
            let resp = atlas_ingest::http::handle(
                ingest,
                api_request(tenant, "POST", "/v1/telemetry", Some(body.as_bytes())),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::ACCEPTED, "{}", body_json(&resp));
        }
    };
    for chunk in (0..DEVICES).collect::<Vec<_>>().chunks(100) {
        let mut readings = Vec::new();
        for &i in chunk {
            let (env, status, priority, region, ago) = device(i);
            let t = ts(ago);
            let mut add = |attribute: &str, value: Value| {
                readings
                    .push(json!({"entity_id": i, "attribute": attribute, "value": value, "ts": t}))
            };
            add("environment", env.into());
            add("status", status.into());
            add("priority", priority.into());
            if let Some(r) = region {
                add("region", r.into());
            }
        }
        post("1", readings).await;
    }
    // Tenant 2's devices match every filter below, and must never show.
    let others = (0..50)
        .flat_map(|i| {
            [
                ("environment", json!("production")),
                ("status", json!("online")),
                ("priority", json!(10)),
                ("region", json!("eu-west")),
            ]
            .map(|(a, v)| json!({"entity_id": i, "attribute": a, "value": v, "ts": ts(0)}))
        })
        .collect();
    post("2", others).await;
    flush_all(&db).await;
    let api = query_api(&db);
    (db, api, base)
}

async fn search(api: &QueryApi, tenant: &str, body: &Value) -> (StatusCode, Value) {
    let body = body.to_string();
    let resp = atlas_query::http::handle(
        api,
        api_request(tenant, "POST", "/v1/entities/search", Some(body.as_bytes())),
    )
    .await;
    (resp.status(), body_json(&resp))
}

/// Follows `next_cursor` to the end; the ids in the order served.
async fn all_pages(api: &QueryApi, mut body: Value) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let (status, page) = search(api, "1", &body).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let entities = page["entities"].as_array().unwrap();
        assert!(entities.len() <= body["limit"].as_u64().unwrap() as usize);
        ids.extend(entities.iter().map(|e| e["entity_id"].as_i64().unwrap()));
        match page.get("next_cursor") {
            Some(c) => body["cursor"] = c.clone(),
            None => return ids,
        }
    }
    panic!("paging never ended");
}

#[tokio::test]
async fn query_1_pages_through_exactly_the_matching_entities_newest_first() {
    let (_db, api, _) = setup().await;
    let query_1 = json!({
        "filter": [
            {"attribute": "environment", "op": "eq", "value": "production"},
            {"attribute": "status", "op": "in", "value": ["online", "warning"]},
            {"attribute": "priority", "op": "gte", "value": 8},
        ],
        "order_by": "updated_at",
        "limit": 7,
    });
    let got = all_pages(&api, query_1.clone()).await;
    let mut want: Vec<i64> = (0..DEVICES)
        .filter(|&i| {
            let (env, status, priority, _, _) = device(i);
            env == "production" && status != "offline" && priority >= 8
        })
        .collect();
    // Newest first: fewer seconds before the base; ties by id, descending.
    want.sort_by_key(|&i| (device(i).4, std::cmp::Reverse(i)));
    assert!(want.len() > 14, "the data spans several pages");
    assert_eq!(got, want);

    // One page carries each entity's projection and the freshness.
    let (status, page) = search(&api, "1", &query_1).await;
    assert_eq!(status, StatusCode::OK);
    let first = &page["entities"][0];
    let id = first["entity_id"].as_i64().unwrap();
    let (env, st, priority, region, _) = device(id);
    let mut hot = json!({"environment": env, "status": st, "priority": priority});
    if let Some(r) = region {
        hot["region"] = r.into();
    }
    assert_eq!(first["hot_attributes"], hot);
    assert_eq!(first["entity_type"], "device");
    assert_eq!(page["_metadata"]["source"], "primary");
}

#[tokio::test]
async fn ordering_by_an_attribute_puts_entities_without_it_last() {
    let (_db, api, _) = setup().await;
    let production = json!([{"attribute": "environment", "op": "eq", "value": "production"}]);
    let got = all_pages(
        &api,
        json!({"filter": production, "order_by": "region", "limit": 9}),
    )
    .await;
    let mut want: Vec<i64> = (0..DEVICES)
        .filter(|&i| device(i).0 == "production")
        .collect();
    want.sort_by_key(|&i| (device(i).3.is_none(), device(i).3, i));
    assert_eq!(got, want);

    let got = all_pages(
        &api,
        json!({"filter": production, "order_by": "priority", "order": "desc", "limit": 11}),
    )
    .await;
    want.sort_by_key(|&i| (std::cmp::Reverse(device(i).2), std::cmp::Reverse(i)));
    assert_eq!(got, want);

    let got = all_pages(
        &api,
        json!({"filter": [{"attribute": "region", "op": "exists", "value": false},
                          {"attribute": "priority", "op": "lt", "value": 3}], "limit": 1000}),
    )
    .await;
    let want: HashSet<i64> = (0..DEVICES)
        .filter(|&i| device(i).3.is_none() && device(i).2 < 3)
        .collect();
    assert_eq!(got.iter().copied().collect::<HashSet<_>>(), want);
    assert_eq!(got.len(), want.len());
}

#[tokio::test]
async fn another_tenant_finds_only_its_own_entities() {
    let (_db, api, _) = setup().await;
    let body = json!({"filter": [{"attribute": "environment", "op": "eq", "value": "production"}],
                      "limit": 1000});
    let (status, page) = search(&api, "2", &body).await;
    assert_eq!(status, StatusCode::OK);
    let ids: HashSet<i64> = page["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..50).collect());
    for e in page["entities"].as_array().unwrap() {
        assert_eq!(e["hot_attributes"]["priority"], 10, "tenant 2's own values");
    }
}

#[tokio::test]
async fn bad_and_hostile_searches_are_refused_with_a_named_reason() {
    let (db, api, _) = setup().await;
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({"filter": [{"attribute": "status' OR 1=1 --", "op": "eq", "value": "x"}]}),
            StatusCode::BAD_REQUEST,
            "unknown_attribute",
            "status' OR 1=1 --",
        ),
        (
            json!({"filter": [{"attribute": "firmware", "op": "eq", "value": "1.0"}]}),
            StatusCode::BAD_REQUEST,
            "cold_attribute",
            "firmware",
        ),
        (
            json!({"filter": [{"attribute": "priority", "op": "gte", "value": "8; DROP TABLE entities"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_value",
            "priority",
        ),
        (
            json!({"filter": [{"attribute": "status", "op": "in", "value": ["ok", "on\u{0}line"]}]}),
            StatusCode::BAD_REQUEST,
            "invalid_value",
            "U+0000",
        ),
        (
            json!({"limit": 1_000_000}),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "1000",
        ),
        (
            json!({"cursor": "eyJxIjoiMCIsImkiOjF9"}),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "cursor",
        ),
        (
            json!({"filters": []}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "filters",
        ),
        (
            json!({"filter": {"status": "online"}}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "filter",
        ),
        (
            // serde would read this array as {"filter": [], "order_by": "status", ...}.
            json!([[], "status", null, null, null]),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "JSON object",
        ),
    ];
    for (body, want_status, want_code, named) in cases {
        let (status, answer) = search(&api, "1", &body).await;
        assert_eq!(status, want_status, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], want_code, "{body} -> {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{body}: the message names {named:?}: {answer}"
        );
    }

    // A hostile value is only ever a value: it matches nothing, harms nothing.
    let (status, page) = search(
        &api,
        "1",
        &json!({"filter": [{"attribute": "status", "op": "eq",
                            "value": "x'); DELETE FROM entity_jsonb; --"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["entities"], json!([]));
    let owner = db.owner().await;
    let left: i64 = owner
        .query_one("SELECT count(*) FROM entity_jsonb", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, DEVICES + 50);

    let resp = atlas_query::http::handle(
        &api,
        api_request("1", "POST", "/v1/entities/search", Some(b"{not json")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let huge = format!(r#"{{"filter": [], "cursor": "{}"}}"#, "a".repeat(70_000));
    let resp = atlas_query::http::handle(
        &api,
        api_request("1", "POST", "/v1/entities/search", Some(huge.as_bytes())),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp =
        atlas_query::http::handle(&api, api_request("1", "GET", "/v1/entities/search", None)).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// The plan PostgreSQL chooses for `body` on tenant 1, as JSON text.
/// `table` replaces the view the search reads.
async fn plan(db: &TestDb, body: Value, table: Option<&str>) -> String {
    let pool = db.pool(DbRole::App);
    let mut client = pool.get().await.unwrap();
    let tenant = TenantId::parse("1").unwrap();
    let catalog = {
        let tx = begin_tenant(&mut client, tenant).await.unwrap();
        let c = atlas_store::TenantCatalog::load(&tx, tenant).await.unwrap();
        tx.commit().await.unwrap();
        c
    };
    let req: SearchRequest = serde_json::from_value(body).unwrap();
    let st = Search::parse(req, catalog.as_ref(), tenant, &CursorKey::random())
        .unwrap()
        .statement(tenant);
    let sql = match table {
        Some(t) => st
            .sql
            .replace("entity_jsonb_search", t)
            .replace("ej.entity_type", "'device'"),
        None => st.sql.clone(),
    };
    let tx = begin_tenant(&mut client, tenant).await.unwrap();
    let row = tx
        .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &st.params())
        .await
        .unwrap();
    let plan: Value = row.get(0);
    plan.to_string()
}

#[tokio::test]
async fn selective_filters_are_answered_from_the_gin_index() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    // 20,000 entities in tenant 1, 0.1% of them in production, sharing
    // their partition with five other tenants' 100,000, as partitions by
    // tenant do.
    db.owner()
        .await
        .batch_execute(
            "INSERT INTO entities (entity_id, tenant_id, entity_type)
                 SELECT g, 1, 'device' FROM generate_series(1, 20000) g;
             INSERT INTO entity_jsonb (entity_id, tenant_id, hot_attrs, updated_at)
                 SELECT g, 1, jsonb_build_object(
                            'environment', CASE WHEN g % 1000 = 0 THEN 'production'
                                                WHEN g % 1000 = 1 THEN 'dev' ELSE 'staging' END,
                            'status', (ARRAY['online', 'warning', 'offline'])[g % 3 + 1],
                            'priority', g % 10)
                            || CASE WHEN g % 2000 = 0 THEN '{\"region\": \"eu-west\"}'::jsonb ELSE '{}' END,
                        now() - g * interval '1 second'
                 FROM generate_series(1, 20000) g;
             WITH part AS (
                 SELECT r FROM generate_series(0, 63) r
                 WHERE satisfies_hash_partition('entity_jsonb'::regclass, 64, r, 1::bigint)
             ), neighbours AS (
                 SELECT t FROM generate_series(2, 5000) t, part
                 WHERE satisfies_hash_partition('entity_jsonb'::regclass, 64, part.r, t::bigint)
                 LIMIT 5
             )
             INSERT INTO entity_jsonb (entity_id, tenant_id, hot_attrs, updated_at)
                 SELECT g, t, '{\"environment\": \"staging\", \"priority\": 1}', now()
                 FROM neighbours, generate_series(1, 20000) g;
             ANALYZE entities, entity_jsonb;",
        )
        .await
        .unwrap();
    // A jsonb operator among the conditions of an index scan.
    let uses_gin = |plan: &str| {
        fn walk(node: &Value) -> bool {
            let cond = node["Index Cond"].as_str().unwrap_or("");
            cond.contains("hot_attrs @>")
                || cond.contains("hot_attrs ?")
                || node["Plans"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(walk))
        }
        let plan: Value = serde_json::from_str(plan).unwrap();
        walk(&plan[0]["Plan"])
    };
    // Each indexable operator on a rare value. (An IN of common values is
    // another matter: one GIN scan reads every key it names, so beside a
    // rare equality the planner rightly prefers other plans.)
    for body in [
        json!({"filter": [
            {"attribute": "environment", "op": "eq", "value": "production"},
            {"attribute": "priority", "op": "gte", "value": 8},
        ]}),
        json!({"filter": [{"attribute": "region", "op": "exists"}]}),
        json!({"filter": [{"attribute": "environment", "op": "in", "value": ["production", "dev"]}],
               "order_by": "priority"}),
    ] {
        let chosen = plan(&db, body.clone(), None).await;
        assert!(
            uses_gin(&chosen),
            "{body} is planned without the GIN index: {chosen}"
        );
        // The reason for the view: on the table itself, Row-Level Security
        // keeps these operators out of any index condition.
        let direct = plan(&db, body.clone(), Some("entity_jsonb")).await;
        assert!(!uses_gin(&direct), "{body} on entity_jsonb: {direct}");
    }
}

#[tokio::test]
async fn a_cursor_is_honoured_only_for_the_tenant_it_was_issued_to() {
    let (db, api, _) = setup().await;
    let first = json!({"limit": 2});
    let (status, page) = search(&api, "1", &first).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let cursor = page["next_cursor"].clone();
    assert!(cursor.is_string(), "{page}");
    let next = json!({"limit": 2, "cursor": cursor});
    assert_eq!(search(&api, "1", &next).await.0, StatusCode::OK);
    // The same filter from another tenant: refused, not replayed.
    let (status, out) = search(&api, "2", &next).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["code"], "invalid_cursor");
    // Another deployment's key (another process) does not open it either.
    let other = atlas_tests::query_api(&db);
    let (status, out) = search(&other, "1", &next).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["code"], "invalid_cursor");
}

/// Server memory held by this connection's cached plans, in bytes. The
/// view is the superuser's, whose login the test connection has; it steps
/// out of its role to read it and back in.
async fn plan_memory(client: &tokio_postgres::Client) -> i64 {
    client.batch_execute("RESET ROLE").await.unwrap();
    let bytes = client
        .query_one(
            "SELECT coalesce(sum(total_bytes), 0)::bigint FROM pg_backend_memory_contexts \
             WHERE name IN ('CachedPlan', 'CachedPlanSource', 'CachedPlanQuery')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client.batch_execute("SET ROLE atlas_app").await.unwrap();
    bytes
}

#[tokio::test]
async fn prepared_search_shapes_are_bounded_per_connection() {
    let (db, _, _) = setup().await;
    // One connection, so every shape lands on the same server backend.
    let pool = atlas_store::DbConfig {
        max_connections: 1,
        generic_plans: true,
        ..atlas_store::DbConfig::new(&db.url, DbRole::App)
    }
    .pool()
    .unwrap();
    let tenant = TenantId::parse("1").unwrap();
    let catalog = {
        let mut client = pool.get().await.unwrap();
        let tx = begin_tenant(&mut client, tenant).await.unwrap();
        let c = atlas_store::TenantCatalog::load(&tx, tenant).await.unwrap();
        tx.commit().await.unwrap();
        c
    };
    let key = CursorKey::random();
    let (mut most, mut peak, mut shapes) = (0, 0, 0);
    for n in 1..=20 {
        for order_by in ["updated_at", "status", "priority", "region"] {
            for order in ["asc", "desc"] {
                let filter: Vec<Value> = (0..n)
                    .map(|_| json!({"attribute": "status", "op": "exists"}))
                    .collect();
                let req: SearchRequest = serde_json::from_value(
                    json!({"filter": filter, "order_by": order_by, "order": order, "limit": 5}),
                )
                .unwrap();
                Search::parse(req, catalog.as_ref(), tenant, &key)
                    .unwrap()
                    .run(&pool, tenant)
                    .await
                    .unwrap();
                shapes += 1;
                let client = pool.get().await.unwrap();
                let held = count(&client, "SELECT count(*) FROM pg_prepared_statements").await;
                most = most.max(held);
                peak = peak.max(plan_memory(&client).await);
            }
        }
    }
    println!(
        "{shapes} search shapes: at most {most} statements prepared at once, \
         at most {} KiB of cached plans",
        peak / 1024
    );
    assert_eq!(shapes, 160);
    assert!(
        most <= atlas_query::search::MAX_PREPARED as i64 + 1,
        "{most} statements prepared on one connection"
    );
}
