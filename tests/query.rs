//! The query API's entity reads through its API Gateway handler, against a
//! real PostgreSQL: what ingest and the flusher wrote, with its freshness,
//! and nothing of another tenant's.

use atlas_ingest::{IngestConfig, IngestService};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_tests::{
    TestDb, api_request, apigw_request, body_json, demo_tenants, fixture, flush_all, query_api,
};
use http::StatusCode;
use serde_json::{Value, json};

async fn setup() -> (TestDb, QueryApi) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let ingest = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
    let body = json!({"readings": [
        {"entity_id": 123, "attribute": "temperature", "value": 21.5},
        {"entity_id": 123, "attribute": "status", "value": "online"},
        {"entity_id": 123, "attribute": "humidity", "value": 40},
        {"entity_id": 123, "attribute": "humidity", "value": 41.25, "ts": ago(3)},
        {"entity_id": 123, "attribute": "humidity", "value": 42, "ts": ago(2)},
    ]});
    let resp =
        atlas_ingest::http::handle(&ingest, apigw_request(Some("1"), &body.to_string())).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    flush_all(&db).await;

    let api = query_api(&db);
    (db, api)
}

/// RFC 3339 for `hours` ago.
fn ago(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn get(api: &QueryApi, tenant: &str, path: &str) -> (StatusCode, http::HeaderMap, Value) {
    let resp = atlas_query::http::handle(api, api_request(tenant, "GET", path, None)).await;
    (resp.status(), resp.headers().clone(), body_json(&resp))
}

#[tokio::test]
async fn an_entity_comes_back_with_its_hot_attributes_and_freshness() {
    let (_db, api) = setup().await;
    let (status, headers, body) = get(&api, "1", "/v1/entities/123?consistency=strong").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entity_id"], 123);
    // humidity is cold in the demo catalog: not in the projection.
    assert_eq!(
        body["hot_attributes"],
        json!({"temperature": 21.5, "status": "online"})
    );
    assert!(body["updated_at"].is_string());
    assert_eq!(headers["x-data-source"], "primary");
    assert_eq!(headers["x-consistency-level"], "strong");
    assert_eq!(headers["x-cache-status"], "bypass");
    assert_eq!(headers["x-data-lag-seconds"], "0.000");
    let ms: f64 = headers["x-query-duration-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0.0);
    assert_eq!(body["_metadata"]["source"], "primary");
    assert_eq!(body["_metadata"]["consistency"], "strong");
    assert_eq!(body["_metadata"]["query_ms"].as_f64(), Some(ms));

    // Eventual is the default level.
    let (_, headers, body) = get(&api, "1", "/v1/entities/123").await;
    assert_eq!(headers["x-consistency-level"], "eventual");
    assert_eq!(body["_metadata"]["consistency"], "eventual");
}

/// Every sample event for the query API in `events/`, as API Gateway
/// would deliver it, in an order where each finds what it needs.
#[tokio::test]
async fn every_sample_api_gateway_event_is_served() {
    let (_db, api) = setup().await;
    let mut served = Vec::new();
    for (file, status, check) in [
        ("apigw-get-entity.json", StatusCode::OK, "entity_id"),
        ("apigw-get-history.json", StatusCode::OK, "points"),
        ("apigw-post-search.json", StatusCode::OK, "entities"),
        ("apigw-get-stats.json", StatusCode::OK, "groups"),
        ("apigw-post-attribute.json", StatusCode::CREATED, "name"),
        (
            "apigw-patch-attribute.json",
            StatusCode::ACCEPTED,
            "hot_change",
        ),
        ("apigw-get-plugins.json", StatusCode::OK, "plugins"),
    ] {
        let req = lambda_http::request::from_str(&fixture(file).to_string()).unwrap();
        let resp = atlas_query::http::handle(&api, req).await;
        let body = body_json(&resp);
        assert_eq!(resp.status(), status, "{file}: {body}");
        assert!(body.get(check).is_some(), "{file}: {body}");
        served.push(file);
    }
    // Nothing in events/ for the query API is left untried.
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("apigw-") && name != "apigw-post-telemetry.json" {
            assert!(served.contains(&name.as_str()), "{name} is not exercised");
        }
    }
}

#[tokio::test]
async fn another_tenants_entity_is_a_404_like_a_missing_one() {
    let (_db, api) = setup().await;
    let (status, _, other) = get(&api, "2", "/v1/entities/123").await;
    let (missing_status, _, missing) = get(&api, "1", "/v1/entities/999").await;
    assert_eq!(
        (status, missing_status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(other["error"]["code"], "not_found");
    assert_eq!(other["error"]["code"], missing["error"]["code"]);
    assert!(other.get("hot_attributes").is_none());
}

#[tokio::test]
async fn bad_reads_are_typed_400s() {
    let (_db, api) = setup().await;
    for (path, status, code) in [
        (
            "/v1/entities/abc",
            StatusCode::BAD_REQUEST,
            "invalid_entity_id",
        ),
        (
            "/v1/entities/-1",
            StatusCode::BAD_REQUEST,
            "invalid_entity_id",
        ),
        (
            "/v1/entities/1%27%20OR%201=1",
            StatusCode::BAD_REQUEST,
            "invalid_entity_id",
        ),
        (
            "/v1/entities/123?consistency=fast",
            StatusCode::BAD_REQUEST,
            "invalid_consistency",
        ),
        (
            "/v1/entities/123?max_lag_seconds=-1",
            StatusCode::BAD_REQUEST,
            "invalid_max_lag",
        ),
        (
            "/v1/entities/123?max_lag_seconds=soon",
            StatusCode::BAD_REQUEST,
            "invalid_max_lag",
        ),
        (
            "/v1/entities/123?limit=5",
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
        ("/v1/entities", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/entities/123/x", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/nothing", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, _, body) = get(&api, "1", path).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let resp =
        atlas_query::http::handle(&api, api_request("1", "DELETE", "/v1/entities/123", None)).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The primary does not lag, so even max_lag_seconds=0 is served.
    let (status, _, _) = get(&api, "1", "/v1/entities/123?max_lag_seconds=0").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn plugin_routes_are_served_by_the_same_function() {
    let (_db, api) = setup().await;
    let (status, _, body) = get(&api, "1", "/v1/plugins").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"plugins": []})));
}

#[tokio::test]
async fn history_reads_a_bounded_range_oldest_first_in_pages() {
    let (_db, api) = setup().await;
    let path = |extra: &str| {
        format!(
            "/v1/entities/123/attributes/humidity/history?from={}&to={}{extra}",
            ago(24).replace('+', "%2B"),
            ago(-1).replace('+', "%2B")
        )
    };
    let (status, headers, body) = get(&api, "1", &path("")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-data-source"], "primary");
    assert_eq!(body["data_type"], "decimal");
    let values: Vec<f64> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [41.25, 42.0, 40.0]);
    assert!(body.get("next_from").is_none());

    let (_, _, page) = get(&api, "1", &path("&limit=2")).await;
    assert_eq!(page["points"].as_array().unwrap().len(), 2);
    let next = page["next_from"].as_str().expect("a next page").to_owned();
    let rest = format!(
        "/v1/entities/123/attributes/humidity/history?from={}&to={}",
        next.replace('+', "%2B"),
        ago(-1).replace('+', "%2B")
    );
    let (_, _, last) = get(&api, "1", &rest).await;
    assert_eq!(last["points"][0]["value"], 40.0);
    assert_eq!(last["points"].as_array().unwrap().len(), 1);

    // Another tenant has the same attribute name but not the entity.
    let (status, _, other) = get(&api, "2", &path("")).await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert!(other.get("points").is_none());
}

#[tokio::test]
async fn history_refuses_unbounded_or_oversized_ranges() {
    let (_db, api) = setup().await;
    let base = "/v1/entities/123/attributes/humidity/history";
    let (from, to) = ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z");
    for (query, status, code) in [
        (String::new(), StatusCode::BAD_REQUEST, "range_required"),
        (
            format!("?from={from}"),
            StatusCode::BAD_REQUEST,
            "range_required",
        ),
        (
            format!("?from={from}&to=2026-11-20T00:00:00Z"),
            StatusCode::BAD_REQUEST,
            "range_too_large",
        ),
        (
            format!("?from={to}&to={from}"),
            StatusCode::BAD_REQUEST,
            "invalid_range",
        ),
        (
            format!("?from=yesterday&to={to}"),
            StatusCode::BAD_REQUEST,
            "invalid_time",
        ),
        (
            format!("?from={from}&to={to}&limit=0"),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            format!("?from={from}&to={to}&limit=1001"),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            format!("?from={from}&to={to}&order=desc"),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
        ),
    ] {
        let path = format!("{base}{query}");
        let (got, _, body) = get(&api, "1", &path).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let q = format!("?from={from}&to={to}");
    for (path, status, field, want) in [
        (
            "/v1/entities/123/attributes/pressure/history",
            StatusCode::NOT_FOUND,
            "code",
            "not_found",
        ),
        (
            "/v1/entities/123/attributes/Bad-Name/history",
            StatusCode::BAD_REQUEST,
            "code",
            "invalid_attribute",
        ),
        (
            "/v1/entities/999/attributes/humidity/history",
            StatusCode::NOT_FOUND,
            "message",
            "no entity 999",
        ),
    ] {
        let (got, _, body) = get(&api, "1", &format!("{path}{q}")).await;
        assert_eq!(
            (got, body["error"][field].as_str()),
            (status, Some(want)),
            "{path}: {body}"
        );
    }
}

async fn post_attribute(api: &QueryApi, tenant: &str, body: &str) -> (StatusCode, Value) {
    let req = api_request(tenant, "POST", "/v1/attributes", Some(body.as_bytes()));
    let resp = atlas_query::http::handle(api, req).await;
    (resp.status(), body_json(&resp))
}

#[tokio::test]
async fn attributes_are_created_once_and_read_back_per_tenant() {
    let (db, api) = setup().await;
    let (status, created) = post_attribute(
        &api,
        "1",
        r#"{"name":"pressure","data_type":"decimal","is_hot":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (
            created["name"].as_str(),
            created["data_type"].as_str(),
            created["is_hot"].as_bool()
        ),
        (Some("pressure"), Some("decimal"), Some(true))
    );
    // The same definition again changes nothing; another one is a conflict.
    let (status, _) = post_attribute(
        &api,
        "1",
        r#"{"name":"pressure","data_type":"decimal","is_hot":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        post_attribute(&api, "1", r#"{"name":"pressure","data_type":"int"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("attribute_exists"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decimal (hot)")
    );

    let (status, headers, read) = get(&api, "1", "/v1/attributes/pressure").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["data_type"], "decimal");
    assert_eq!(headers["x-data-source"], "primary");
    let (status, _, _) = get(&api, "2", "/v1/attributes/pressure").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "tenant 2 has no pressure");

    // Ingest takes it at once, and it is hot.
    let ingest = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
    let body = json!({"readings": [{"entity_id": 123, "attribute": "pressure", "value": 1013.25}]});
    let resp =
        atlas_ingest::http::handle(&ingest, apigw_request(Some("1"), &body.to_string())).await;
    assert_eq!(body_json(&resp)["accepted"], 1);
    flush_all(&db).await;
    let (_, _, entity) = get(&api, "1", "/v1/entities/123").await;
    assert_eq!(entity["hot_attributes"]["pressure"], 1013.25);
}

#[tokio::test]
async fn bad_attribute_definitions_are_typed_400s() {
    let (_db, api) = setup().await;
    for (body, code) in [
        ("not json", "malformed_json"),
        (r#"{"name":"x"}"#, "malformed_json"),
        (r#"["x", "int", true]"#, "malformed_json"),
        (
            r#"{"name":"x","data_type":"int","unit":"kPa"}"#,
            "malformed_json",
        ),
        (
            r#"{"name":"Bad Name","data_type":"int"}"#,
            "invalid_attribute",
        ),
        (
            r#"{"name":"x'; DROP TABLE attributes; --","data_type":"int"}"#,
            "invalid_attribute",
        ),
        (r#"{"name":"x","data_type":"float"}"#, "invalid_data_type"),
    ] {
        let (status, out) = post_attribute(&api, "1", body).await;
        assert_eq!(
            (status, out["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {out}"
        );
    }
    let big = format!(
        r#"{{"name":"x","data_type":"int","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (status, _) = post_attribute(&api, "1", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn only_an_existing_active_tenant_gets_past_a_valid_token() {
    let (db, _) = setup().await;
    // No catalog cache, so a deactivation shows on the next request.
    let api = atlas_tests::query_api_with(
        &db,
        atlas_query::QueryConfig {
            catalog_ttl: std::time::Duration::ZERO,
            ..Default::default()
        },
    );
    let wasm = atlas_tests::example_plugin("fahrenheit_to_celsius");
    let call = |tenant: &'static str,
                method: &'static str,
                path: &'static str,
                body: Option<Vec<u8>>| {
        let api = &api;
        async move {
            let resp =
                atlas_query::http::handle(api, api_request(tenant, method, path, body.as_deref()))
                    .await;
            (resp.status(), body_json(&resp))
        }
    };
    assert_eq!(
        call("1", "GET", "/v1/entities/123", None).await.0,
        StatusCode::OK
    );
    db.deactivate(1).await;
    for (tenant, method, path, body) in [
        ("1", "GET", "/v1/entities/123", None),
        ("1", "POST", "/v1/entities/search", Some(b"{}".to_vec())),
        ("1", "GET", "/v1/attributes/status", None),
        ("1", "GET", "/v1/plugins", None),
        ("1", "PUT", "/v1/plugins/f2c", Some(wasm.clone())),
        ("999", "PUT", "/v1/plugins/f2c", Some(wasm.clone())),
        ("999", "GET", "/v1/entities/123", None),
        // A GET runs beside its tenant check, yet the refusal still wins
        // over the read's own answer.
        ("1", "GET", "/v1/entities/424242", None),
        ("999", "GET", "/v1/no-such-route", None),
    ] {
        let (status, out) = call(tenant, method, path, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{tenant} {method} {path}: {out}"
        );
        assert_eq!(out["error"]["code"], "unauthorized");
        assert!(
            out["error"]["message"]
                .as_str()
                .unwrap()
                .contains("does not exist or is inactive"),
            "{out}"
        );
    }
    // Another tenant is unaffected.
    assert_eq!(
        call("2", "GET", "/v1/plugins", None).await.0,
        StatusCode::OK
    );
}

/// Tenant answers past half their life are reloaded in the background,
/// all at once: a request for one tenant refreshes every tenant asked
/// about, so another tenant's deactivation shows before its own answer
/// would have expired, and before it asks again.
#[tokio::test]
async fn one_background_reload_refreshes_every_tenant_asked_about() {
    let db = TestDb::new().await;
    atlas_tests::demo_tenants(&db).await;
    let ttl = std::time::Duration::from_secs(10);
    let status = atlas_store::TenantStatus::new(db.pool(DbRole::App), ttl);
    let (one, two) = (
        atlas_core::TenantId::new(1).unwrap(),
        atlas_core::TenantId::new(2).unwrap(),
    );
    let loaded = std::time::Instant::now();
    assert!(status.is_active(one).await.unwrap());
    assert!(status.is_active(two).await.unwrap());
    tokio::time::sleep(ttl / 2 + std::time::Duration::from_millis(100)).await;
    db.deactivate(1).await;
    // Only tenant 2 is asked about: its answer starts the reload of both.
    assert!(status.is_active(two).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(loaded.elapsed() < ttl);
    // Tenant 1's first request since then already has the new answer (its
    // own stale answer would have been served once, starting a reload).
    assert!(
        !status.is_active(one).await.unwrap(),
        "tenant 1 was not reloaded with tenant 2"
    );
}
