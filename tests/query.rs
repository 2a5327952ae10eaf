//! The query API's entity reads through its API Gateway handler, against a
//! real PostgreSQL: what ingest and the flusher wrote, with its freshness,
//! and nothing of another tenant's.

use atlas_ingest::{IngestConfig, IngestService};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_store::flush::{FlushConfig, flush_batch};
use atlas_tests::{TestDb, api_request, apigw_request, body_json, demo_tenants, fixture};
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
    ]});
    let resp =
        atlas_ingest::http::handle(&ingest, apigw_request(Some("1"), &body.to_string())).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let worker = db.pool(DbRole::Worker);
    while flush_batch(&worker, &FlushConfig::default())
        .await
        .unwrap()
        .moved
        > 0
    {}

    let objects = std::sync::Arc::new(atlas_objects::LocalDir::new(
        std::env::temp_dir().join(format!("atlas-query-test-{}", std::process::id())),
    ));
    let registry = atlas_plugins::Registry::new(
        db.pool(DbRole::App),
        objects,
        atlas_plugin_host::Host::new().unwrap(),
    );
    let api = QueryApi {
        pool: db.pool(DbRole::App),
        registry,
    };
    (db, api)
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

#[tokio::test]
async fn the_sample_api_gateway_event_is_served() {
    let (_db, api) = setup().await;
    let event = fixture("apigw-get-entity.json");
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let resp = atlas_query::http::handle(&api, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-consistency-level"], "strong");
    assert_eq!(body_json(&resp)["entity_id"], 123);
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
