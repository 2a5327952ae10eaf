//! The ingest function through its API Gateway and MSK handlers, against a
//! real PostgreSQL, with events built from the samples in `events/`.

use std::sync::Arc;

use atlas_ingest::{IngestConfig, IngestService};
use atlas_store::DbRole;
use atlas_tests::{
    TestDb, apigw_event, apigw_request, body_json, count, demo_tenants, fixture, flush_all,
    msk_event,
};
use chrono::{Duration, SecondsFormat, Utc};
use http::StatusCode;
use serde_json::{Value, json};

async fn setup() -> (TestDb, Arc<IngestService>) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let svc = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
    (db, Arc::new(svc))
}

async fn post(svc: &IngestService, tenant: Option<&str>, body: &str) -> (StatusCode, Value) {
    let resp = atlas_ingest::http::handle(svc, apigw_request(tenant, body)).await;
    let status = resp.status();
    (status, body_json(&resp))
}

fn ts(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[tokio::test]
async fn happy_path_lands_in_the_time_series_and_hot_projection() {
    let (db, svc) = setup().await;
    let body = json!({"readings": [
        {"entity_id": 123, "entity_type": "device", "attribute": "temperature", "value": 72.5, "ts": ts(Duration::seconds(-5))},
        {"entity_id": 123, "attribute": "status", "value": "online"},
        {"entity_id": 123, "attribute": "humidity", "value": 40},
        {"entity_id": 124, "attribute": "online", "value": true},
        {"entity_id": 124, "attribute": "priority", "value": 8},
        {"entity_id": 124, "attribute": "last_seen", "value": "2026-11-24T09:00:00Z"},
    ]});
    let (status, out) = post(&svc, Some("1"), &body.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out, json!({"accepted": 6, "rejected": []}));

    let owner = db.owner().await;
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ingest WHERE tenant_id = 1"
        )
        .await,
        6
    );
    flush_all(&db).await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        0
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 1"
        )
        .await,
        6
    );
    let typed = owner
        .query_one(
            "SELECT v.value_decimal::text, v.ingested_at < now() - interval '4 seconds' \
             FROM entity_values_ts v JOIN attributes a USING (attribute_id) \
             WHERE a.attribute_name = 'temperature' AND v.entity_id = 123",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(typed.get::<_, String>(0), "72.50000");
    assert!(typed.get::<_, bool>(1), "the device's ts is kept");

    // Hot attributes reach entity_jsonb; cold ones (humidity, online) do not.
    let hot: Value = owner
        .query_one(
            "SELECT hot_attrs FROM entity_jsonb WHERE tenant_id = 1 AND entity_id = 123",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot, json!({"temperature": 72.5, "status": "online"}));
    let hot: Value = owner
        .query_one(
            "SELECT hot_attrs FROM entity_jsonb WHERE tenant_id = 1 AND entity_id = 124",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot["priority"], json!(8));
    assert!(hot.get("online").is_none(), "{hot}");
    assert!(
        hot["last_seen"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-24T09:00:00"),
        "{hot}"
    );

    let types: Vec<(i64, String)> = owner
        .query(
            "SELECT entity_id, entity_type FROM entities WHERE tenant_id = 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        types,
        vec![(123, "device".to_owned()), (124, "device".to_owned())]
    );
}

#[tokio::test]
async fn every_rejection_reason_is_reported_by_index() {
    let (db, svc) = setup().await;
    let long = "x".repeat(5000);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"entity_id": 1, "attribute": "pressure", "value": 1}),
            "unknown attribute \"pressure\"",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": "hot"}),
            "is not a valid decimal",
        ),
        (
            json!({"entity_id": 1, "attribute": "priority", "value": 1.5}),
            "is not a valid int",
        ),
        (
            json!({"entity_id": 1, "attribute": "online", "value": "yes"}),
            "is not a valid bool",
        ),
        (
            json!({"entity_id": 1, "attribute": "last_seen", "value": "noon"}),
            "is not a valid timestamp",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": 1e16}),
            "out of range for decimal(20,5)",
        ),
        (
            json!({"entity_id": 1, "attribute": "status", "value": long}),
            "the limit is 4096",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": 1, "ts": ts(-Duration::days(31))}),
            "outside the accepted window",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": 1, "ts": ts(Duration::hours(2))}),
            "outside the accepted window",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": 1, "ts": "yesterday"}),
            "not an RFC 3339 timestamp",
        ),
        (
            json!({"entity_id": -4, "attribute": "temperature", "value": 1}),
            "entity_id must be",
        ),
        (
            json!({"entity_id": "abc", "attribute": "temperature", "value": 1}),
            "entity_id must be",
        ),
        (
            json!({"entity_id": 1, "attribute": "Temp'; DROP TABLE x;--", "value": 1}),
            "attribute name",
        ),
        (
            json!({"entity_id": 1, "entity_type": "", "attribute": "temperature", "value": 1}),
            "entity_type",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature"}),
            "missing field `value`",
        ),
        (
            json!({"entity_id": 1, "attribute": "temperature", "value": 1, "timestamp": "x"}),
            "unknown field `timestamp`",
        ),
        (json!("not an object"), "malformed reading"),
    ];
    let mut readings: Vec<Value> =
        vec![json!({"entity_id": 9, "attribute": "temperature", "value": 20.5})];
    readings.extend(cases.iter().map(|(r, _)| r.clone()));
    let (status, out) = post(
        &svc,
        Some("1"),
        &json!({ "readings": readings }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["accepted"], 1);
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), cases.len(), "{out:#}");
    for (i, (_, needle)) in cases.iter().enumerate() {
        assert_eq!(rejected[i]["index"], i + 1);
        let reason = rejected[i]["reason"].as_str().unwrap();
        assert!(
            reason.contains(needle),
            "reading {}: expected {needle:?} in {reason:?}",
            i + 1
        );
    }
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        1,
        "only the good reading"
    );
}

#[tokio::test]
async fn whole_request_problems_get_typed_errors() {
    let (_db, svc) = setup().await;
    let good = r#"{"readings":[{"entity_id":1,"attribute":"temperature","value":1}]}"#;
    let many = json!({"readings": vec![json!({"entity_id": 1, "attribute": "status", "value": "x"}); 10_001]});
    let huge = format!(
        r#"{{"readings":[{{"entity_id":1,"attribute":"status","value":"{}"}}]}}"#,
        "x".repeat(6 << 20)
    );
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            Some("1"),
            "{\"readings\": [".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Some("1"),
            "".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Some("1"),
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "wrong_shape",
        ),
        (
            Some("1"),
            r#"{"readings": {"entity_id": 1}}"#.into(),
            StatusCode::BAD_REQUEST,
            "wrong_shape",
        ),
        (
            Some("1"),
            r#"{"reading": []}"#.into(),
            StatusCode::BAD_REQUEST,
            "wrong_shape",
        ),
        (
            Some("1"),
            r#"{"readings": []}"#.into(),
            StatusCode::BAD_REQUEST,
            "empty_batch",
        ),
        (
            Some("1"),
            many.to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_readings",
        ),
        (
            Some("1"),
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (None, good.into(), StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some("abc"),
            good.into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some("0"),
            good.into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some("999"),
            good.into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (tenant, body, status, code) in cases {
        let (got, out) = post(&svc, tenant, &body).await;
        assert_eq!(
            (got, out["error"]["code"].as_str().unwrap()),
            (status, code),
            "{tenant:?} {out}"
        );
        assert!(!out["error"]["message"].as_str().unwrap().is_empty());
    }

    let handle = async |event: Value| {
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        atlas_ingest::http::handle(&svc, req).await.status()
    };
    let mut event = apigw_event(Some("1"), good);
    event["requestContext"]["http"]["method"] = "GET".into();
    assert_eq!(handle(event).await, StatusCode::METHOD_NOT_ALLOWED);
    let mut event = apigw_event(Some("1"), good);
    event["rawPath"] = "/v1/other".into();
    event["requestContext"]["http"]["path"] = "/v1/other".into();
    assert_eq!(handle(event).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_inactive_tenant_is_refused() {
    let (db, svc) = setup().await;
    db.owner()
        .await
        .batch_execute("UPDATE tenants SET is_active = false WHERE tenant_id = 2")
        .await
        .unwrap();
    let (status, out) = post(
        &svc,
        Some("2"),
        r#"{"readings":[{"entity_id":1,"attribute":"status","value":"x"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
}

#[tokio::test]
async fn a_replayed_request_creates_no_duplicates() {
    let (db, svc) = setup().await;
    let body = json!({"readings": [
        {"entity_id": 5, "attribute": "temperature", "value": 20.5, "ts": ts(-Duration::seconds(30))},
        {"entity_id": 5, "attribute": "firmware", "value": "1.2.3", "ts": ts(-Duration::seconds(30))},
    ]})
    .to_string();
    for _ in 0..3 {
        let (status, _) = post(&svc, Some("1"), &body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    flush_all(&db).await;
    // And once more after the first copies were flushed.
    post(&svc, Some("1"), &body).await;
    flush_all(&db).await;
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        2
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        0
    );
}

#[tokio::test]
async fn auto_registration_is_off_by_default_and_types_new_attributes_when_on() {
    let (db, svc) = setup().await;
    let body = r#"{"readings":[{"entity_id":1,"attribute":"voltage","value":229.5},
                               {"entity_id":1,"attribute":"voltage","value":230},
                               {"entity_id":1,"attribute":"label","value":"north"},
                               {"entity_id":1,"attribute":"weird","value":[1]}]}"#;
    let (_, out) = post(&svc, Some("1"), body).await;
    assert_eq!(out["accepted"], 0, "{out}");
    assert!(
        out["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("auto-registration is off")
    );

    db.owner()
        .await
        .batch_execute("UPDATE tenants SET allow_auto_register = true WHERE tenant_id = 2")
        .await
        .unwrap();
    let (status, out) = post(&svc, Some("2"), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(out["accepted"], 3, "{out}");
    assert_eq!(out["rejected"][0]["index"], 3);
    let owner = db.owner().await;
    let rows: Vec<(String, String, bool)> = owner
        .query(
            "SELECT attribute_name, data_type, is_hot FROM attributes \
             WHERE tenant_id = 2 AND attribute_name IN ('voltage', 'label', 'weird') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("label".into(), "string".into(), false),
            ("voltage".into(), "decimal".into(), false)
        ],
        "typed by the first value, cold, and not registered from an unusable value"
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM attributes WHERE tenant_id = 1 AND attribute_name = 'voltage'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn msk_batches_are_ingested_and_redelivery_is_idempotent() {
    let (db, svc) = setup().await;
    // The sample event as shipped parses and routes through the Lambda entry point.
    let ctx = lambda_runtime::Context::default();
    let sample = lambda_runtime::LambdaEvent::new(fixture("msk-raw-telemetry.json"), ctx.clone());
    let report = atlas_ingest::lambda::handle(&svc, sample).await.unwrap();
    assert_eq!(report["records"], 2, "{report}");

    let readings = |n: i64| json!({"readings": (0..n).map(|i| json!({"entity_id": 40 + i, "attribute": "temperature", "value": 1.5})).collect::<Vec<_>>()});
    let event = msk_event(vec![
        (1, "1", readings(3), Some(1)),           // tenant from the header
        (2, "2", readings(2), None),              // tenant from the key
        (3, "1", json!({"oops": true}), Some(1)), // poison record: skipped
        (4, "777", readings(1), Some(777)),       // unknown tenant: skipped
        (5, "not-a-tenant", readings(1), None),   // no tenant: skipped
    ]);
    let first = atlas_ingest::lambda::handle(
        &svc,
        lambda_runtime::LambdaEvent::new(event.clone(), ctx.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        first,
        json!({"records": 5, "accepted": 5, "rejected_readings": 0, "rejected_records": 3})
    );
    let again = atlas_ingest::lambda::handle(&svc, lambda_runtime::LambdaEvent::new(event, ctx))
        .await
        .unwrap();
    assert_eq!(again["accepted"], 5);
    flush_all(&db).await;
    let owner = db.owner().await;
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE entity_id BETWEEN 40 AND 49"
        )
        .await,
        5,
        "readings without ts take the record timestamp, so redelivery deduplicates"
    );
    assert_eq!(count(&owner, "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 2 AND entity_id BETWEEN 40 AND 49").await, 2);
}

#[tokio::test]
async fn the_lambda_entry_point_answers_api_gateway_in_its_format() {
    let (_db, svc) = setup().await;
    let event = apigw_event(
        Some("1"),
        r#"{"readings":[{"entity_id":1,"attribute":"status","value":"ok"}]}"#,
    );
    let out = atlas_ingest::lambda::handle(
        &svc,
        lambda_runtime::LambdaEvent::new(event, Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(out["statusCode"], 202, "{out}");
    assert_eq!(out["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["accepted"], 1);
}

#[tokio::test]
async fn a_database_outage_is_a_503_not_a_panic() {
    let (db, _) = setup().await;
    let dead = atlas_store::DbConfig::new("postgres://atlas_app@127.0.0.1:1/nowhere", DbRole::App)
        .pool()
        .unwrap();
    let svc = IngestService::new(dead, IngestConfig::default());
    let (status, out) = post(
        &svc,
        Some("1"),
        r#"{"readings":[{"entity_id":1,"attribute":"status","value":"x"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{out}");
    assert_eq!(out["error"]["code"], "unavailable");
    drop(db);
}
