//! `GET /v1/analytics/attributes/{name}/stats` (the seed's Query 2)
//! through the query API's handler against a real PostgreSQL: per-group
//! distributions computed independently here, the "data as of" every
//! answer carries, and refusals.

use atlas_query::QueryApi;
use atlas_tests::{
    TestDb, api_request, body_json, demo_tenants, flush_all, post_readings, query_api,
};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde_json::{Value, json};

/// Entity `e` (1..=6) is in region `REGIONS[e % 2]` (entity 6 has none)
/// and reports temperature `e * 10 + k` at `k` hours ago, k = 1..=4.
const REGIONS: [&str; 2] = ["eu-west", "us-east"];

fn readings() -> Vec<(i64, f64)> {
    (1..=6)
        .flat_map(|e| (1..=4).map(move |k| (e, (e * 10 + k) as f64)))
        .collect()
}

fn hours_ago(h: i64) -> String {
    (Utc::now() - chrono::Duration::hours(h)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn setup() -> (TestDb, QueryApi) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let mut batch = Vec::new();
    for e in 1..=6i64 {
        if e != 6 {
            batch.push(json!({"entity_id": e, "attribute": "region",
                              "value": REGIONS[(e % 2) as usize], "ts": hours_ago(1)}));
        }
        for k in 1..=4i64 {
            batch.push(json!({"entity_id": e, "attribute": "temperature",
                              "value": (e * 10 + k) as f64, "ts": hours_ago(k)}));
        }
    }
    post_readings(&db, "1", Value::Array(batch)).await;
    flush_all(&db).await;
    let api = query_api(&db);
    (db, api)
}

/// PostgreSQL's percentile_cont: linear interpolation between ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn expected(values: &mut [f64]) -> (usize, f64, f64, f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    (
        values.len(),
        avg,
        values[0],
        values[values.len() - 1],
        percentile(values, 0.5),
        percentile(values, 0.95),
    )
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

async fn stats(api: &QueryApi, tenant: &str, query: &str) -> (StatusCode, http::HeaderMap, Value) {
    let path = format!("/v1/analytics/attributes/temperature/stats?{query}");
    let resp = atlas_query::http::handle(api, api_request(tenant, "GET", &path, None)).await;
    (resp.status(), resp.headers().clone(), body_json(&resp))
}

#[tokio::test]
async fn distributions_per_group_match_the_readings() {
    let (_db, api) = setup().await;
    let range = format!("from={}&to={}", hours_ago(6), hours_ago(0));
    let (status, headers, body) = stats(&api, "1", &format!("{range}&group_by=region")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-consistency-level"], "analytics");
    let as_of: DateTime<Utc> = headers["x-data-as-of"].to_str().unwrap().parse().unwrap();
    assert!(as_of <= Utc::now());
    assert!(body["_metadata"]["data_as_of"].is_string());

    let groups = body["groups"].as_array().unwrap();
    let names: Vec<&Value> = groups.iter().map(|g| &g["group"]).collect();
    assert_eq!(names, [&json!("eu-west"), &json!("us-east"), &Value::Null]);
    for g in groups {
        let members: Vec<i64> = (1..=6)
            .filter(|&e| match g["group"].as_str() {
                Some(r) => e != 6 && REGIONS[(e % 2) as usize] == r,
                None => e == 6,
            })
            .collect();
        let mut values: Vec<f64> = readings()
            .into_iter()
            .filter(|(e, _)| members.contains(e))
            .map(|(_, v)| v)
            .collect();
        let (count, avg, min, max, p50, p95) = expected(&mut values);
        assert_eq!(g["count"], count as i64, "{g}");
        assert_eq!(g["entities"], members.len() as i64, "{g}");
        assert!(close(&g["avg"], avg), "{g}: avg {avg}");
        assert!(close(&g["min"], min) && close(&g["max"], max), "{g}");
        assert!(
            close(&g["p50"], p50) && close(&g["p95"], p95),
            "{g}: {p50} {p95}"
        );
    }

    // Without group_by: one group of everything; the range bounds it.
    let range = format!("from={}&to={}", hours_ago(2), hours_ago(0));
    let (_, _, body) = stats(&api, "1", &range).await;
    let mut values: Vec<f64> = readings()
        .into_iter()
        .filter(|(e, v)| (*v as i64) - e * 10 <= 1)
        .map(|(_, v)| v)
        .collect();
    let (count, avg, ..) = expected(&mut values);
    assert_eq!(body["groups"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["groups"][0]["group"], Value::Null);
    assert_eq!(body["groups"][0]["count"], count as i64);
    assert!(close(&body["groups"][0]["avg"], avg));
    assert_eq!(body["truncated"], false);
}

#[tokio::test]
async fn bad_stats_reads_are_refused_and_other_tenants_see_nothing() {
    let (_db, api) = setup().await;
    let range = format!("from={}&to={}", hours_ago(6), hours_ago(0));
    let cases = [
        (
            "status",
            range.clone(),
            StatusCode::BAD_REQUEST,
            "not_numeric",
        ),
        (
            "temperature",
            format!("{range}&group_by=nope"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "temperature",
            format!("to={}", hours_ago(0)),
            StatusCode::BAD_REQUEST,
            "range_required",
        ),
        (
            "temperature",
            format!("from={}&to={}", hours_ago(24 * 40), hours_ago(0)),
            StatusCode::BAD_REQUEST,
            "range_too_large",
        ),
        (
            "temperature",
            format!("{range}&group_by=a;b"),
            StatusCode::BAD_REQUEST,
            "invalid_attribute",
        ),
        (
            "temperature",
            format!("{range}&bucket=1h"),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
        ("nope", range.clone(), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (attribute, query, status, code) in cases {
        let path = format!("/v1/analytics/attributes/{attribute}/stats?{query}");
        let resp = atlas_query::http::handle(&api, api_request("1", "GET", &path, None)).await;
        let body = body_json(&resp);
        assert_eq!(
            (resp.status(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    // Tenant 2 has the same catalog and none of the readings.
    let (status, _, body) = stats(&api, "2", &range).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["groups"], json!([]));
}

/// `setup()`'s data plus tenant 2's own temperatures (far above tenant 1's),
/// loaded into a warehouse by the change tap's snapshot, and a query API
/// that reads it at analytics consistency.
async fn with_warehouse() -> (TestDb, TestDb, QueryApi) {
    let (db, _) = setup().await;
    let batch: Vec<Value> = (1..=3)
        .map(|e| json!({"entity_id": e, "attribute": "temperature", "value": 1000 + e, "ts": hours_ago(1)}))
        .collect();
    post_readings(&db, "2", Value::Array(batch)).await;
    flush_all(&db).await;
    let warehouse = TestDb::new().await;
    let wh = || -> std::sync::Arc<dyn atlas_warehouse::Warehouse> {
        std::sync::Arc::new(atlas_warehouse::PgWarehouse::new(
            atlas_store::DbConfig::new(&warehouse.url, atlas_store::DbRole::AsLogin)
                .pool()
                .unwrap(),
        ))
    };
    let loader = atlas_warehouse::Loader::new(
        wh(),
        atlas_tests::dead_letters(&atlas_tests::local_store("analytics"), "cdc-loader"),
        atlas_cdc::Options::default(),
    );
    let tap = atlas_tests::tap(&db).await;
    for event in tap.snapshot().await.unwrap().events {
        loader.handle(&event).await.unwrap();
    }
    let api = query_api(&db).with_warehouse(wh());
    (db, warehouse, api)
}

#[tokio::test]
async fn the_warehouse_answers_analytics_reads_as_postgres_does() {
    let (_db, warehouse, api) = with_warehouse().await;
    let range = format!("from={}&to={}", hours_ago(6), hours_ago(0));
    for query in [range.clone(), format!("{range}&group_by=region")] {
        let (status, headers, mut from_wh) = stats(&api, "1", &query).await;
        assert_eq!(status, StatusCode::OK, "{from_wh}");
        assert_eq!(headers["x-data-source"], "warehouse");
        let (_, headers, mut from_pg) =
            stats(&api, "1", &format!("{query}&consistency=strong")).await;
        assert_eq!(headers["x-data-source"], "primary");
        from_wh.as_object_mut().unwrap().remove("_metadata");
        from_pg.as_object_mut().unwrap().remove("_metadata");
        assert_eq!(from_wh, from_pg, "{query}");
    }
    // The answer is as of the newest commit the warehouse loaded.
    let (_, headers, _) = stats(&api, "1", &range).await;
    let as_of: DateTime<Utc> = headers["x-data-as-of"].to_str().unwrap().parse().unwrap();
    let c = warehouse.owner().await;
    let loaded: DateTime<Utc> = c
        .query_one("SELECT max(source_commit_at) FROM load_watermarks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        (as_of - loaded).num_milliseconds().abs() <= 5,
        "{as_of} {loaded}"
    );
    // A caller who allows less lag than the warehouse has is served by
    // PostgreSQL.
    let (_, headers, _) = stats(&api, "1", &format!("{range}&max_lag_seconds=0")).await;
    assert_eq!(headers["x-data-source"], "primary");
}

#[tokio::test]
async fn warehouse_reads_never_include_another_tenants_rows() {
    let (_db, _warehouse, api) = with_warehouse().await;
    let range = format!("from={}&to={}", hours_ago(6), hours_ago(0));
    let (_, headers, one) = stats(&api, "1", &range).await;
    assert_eq!(headers["x-data-source"], "warehouse");
    assert_eq!(one["groups"][0]["count"], 24);
    assert!(one["groups"][0]["max"].as_f64().unwrap() < 1000.0, "{one}");
    let (_, _, two) = stats(&api, "2", &range).await;
    assert_eq!(two["groups"][0]["count"], 3);
    assert!(close(&two["groups"][0]["min"], 1001.0), "{two}");
    let today = Utc::now().date_naive();
    let days = |tenant: &'static str| {
        let api = &api;
        async move {
            let path = format!(
                "/v1/analytics/attributes/temperature/daily?from={}&to={today}",
                today - chrono::Duration::days(1)
            );
            let resp =
                atlas_query::http::handle(api, api_request(tenant, "GET", &path, None)).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let body = body_json(&resp);
            body["days"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["count"].as_i64().unwrap())
                .sum::<i64>()
        }
    };
    assert_eq!(days("1").await, 24);
    assert_eq!(days("2").await, 3);
}

#[tokio::test]
async fn the_warehouse_serves_months_by_day_and_bounds_the_range() {
    let (db, _warehouse, api) = with_warehouse().await;
    let today = Utc::now().date_naive();
    let path = |from: chrono::NaiveDate, to: chrono::NaiveDate| {
        format!("/v1/analytics/attributes/temperature/daily?from={from}&to={to}")
    };
    let resp = atlas_query::http::handle(
        &api,
        api_request(
            "1",
            "GET",
            &path(today - chrono::Duration::days(180), today),
            None,
        ),
    )
    .await;
    let body = body_json(&resp);
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert_eq!(resp.headers()["x-data-source"], "warehouse");
    // Each day as PostgreSQL computes it from the time series.
    let expected = db
        .owner()
        .await
        .query(
            "SELECT ingested_at::date::text, count(*), count(DISTINCT entity_id), \
             avg(value_decimal)::float8 FROM entity_values_ts \
             WHERE tenant_id = 1 AND attribute_id = (SELECT attribute_id FROM attributes \
             WHERE tenant_id = 1 AND attribute_name = 'temperature') \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got = body["days"].as_array().unwrap();
    assert_eq!(got.len(), expected.len(), "{body}");
    for (day, row) in got.iter().zip(&expected) {
        assert_eq!(day["day"], row.get::<_, String>(0));
        assert_eq!(day["count"], row.get::<_, i64>(1));
        assert_eq!(day["entities"], row.get::<_, i64>(2));
        assert!(close(&day["avg"], row.get::<_, f64>(3)), "{day}");
    }
    // Six months fit; more do not, and the answer names the setting.
    let resp = atlas_query::http::handle(
        &api,
        api_request(
            "1",
            "GET",
            &path(today - chrono::Duration::days(200), today),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        body_json(&resp)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ATLAS_WAREHOUSE_MAX_RANGE_SECS")
    );
    // Statistics over two months: the warehouse serves them, PostgreSQL
    // (31 days) does not.
    let range = format!("from={}&to={}", hours_ago(24 * 60), hours_ago(0));
    let (status, headers, _) = stats(&api, "1", &range).await;
    assert_eq!(
        (status, &headers["x-data-source"]),
        (StatusCode::OK, &"warehouse".parse().unwrap())
    );
    let (status, _, body) = stats(&api, "1", &format!("{range}&consistency=strong")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ATLAS_ANALYTICS_MAX_RANGE_SECS")
    );
}
