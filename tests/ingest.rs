//! The ingest function through its API Gateway and MSK handlers, against a
//! real PostgreSQL, with events built from the samples in `events/`.

use std::sync::Arc;

use atlas_ingest::{IngestConfig, IngestError, IngestService};
use atlas_objects::ObjectStore;
use atlas_store::DbRole;
use atlas_tests::{
    TestDb, apigw_event, apigw_request, body_json, count, dead_letter, dead_letters, demo_tenants,
    fixture, flush_all, local_store, msk_event,
};
use base64::Engine;
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
    db.deactivate(2).await;
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
    let (db, svc, _letters) = setup_msk(IngestConfig::default()).await;
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
        json!({"records": 5, "accepted": 5, "rejected_readings": 0, "rejected_records": 3,
               "deferred_records": 0, "skipped_records": 0})
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

/// An ingest service whose MSK dead letters go to a fresh local directory.
async fn setup_msk(config: IngestConfig) -> (TestDb, IngestService, Arc<dyn ObjectStore>) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let store = local_store("dead-letter");
    let svc = IngestService::new(db.pool(DbRole::App), config)
        .with_dead_letters(dead_letters(&store, "ingest"));
    (db, svc, store)
}

async fn msk(svc: &IngestService, event: &Value) -> Result<atlas_ingest::msk::Report, IngestError> {
    atlas_ingest::msk::handle(svc, serde_json::from_value(event.clone()).unwrap(), None).await
}

fn readings_for(entities: std::ops::Range<i64>, value: Value) -> Value {
    json!({"readings": entities.map(|e| json!({"entity_id": e, "attribute": "status", "value": value})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn a_nul_character_costs_its_reading_only() {
    let (db, svc) = setup().await;
    let (status, out) = post(
        &svc,
        Some("1"),
        r#"{"readings":[
            {"entity_id":1,"attribute":"status","value":"ok"},
            {"entity_id":2,"attribute":"status","value":"on\u0000line"},
            {"entity_id":3,"entity_type":"dev\u0000ice","attribute":"status","value":"ok"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["accepted"], 1, "{out}");
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{out}");
    assert_eq!(rejected[0]["index"], 1);
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("U+0000"),
        "{out}"
    );
    assert_eq!(rejected[1]["index"], 2);
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("entity_type"),
        "{out}"
    );
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        1
    );
}

/// Makes PostgreSQL refuse the string value "poison" with a data exception
/// (SQLSTATE 22023), as it would a value parsing did not foresee.
async fn refuse_poison(db: &TestDb) {
    db.owner()
        .await
        .batch_execute(
            "CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.value = 'poison' THEN \
               RAISE EXCEPTION 'the value poison is refused' USING ERRCODE = '22023'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON entity_values_ingest \
               FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_value_the_database_refuses_is_a_422_not_a_retry() {
    let (db, svc) = setup().await;
    refuse_poison(&db).await;
    let (status, out) = post(
        &svc,
        Some("1"),
        r#"{"readings":[{"entity_id":1,"attribute":"status","value":"poison"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"]["code"], "unstorable_value");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("poison is refused"),
        "{out}"
    );
}

#[tokio::test]
async fn on_msk_a_value_the_database_refuses_is_dead_lettered_and_the_rest_staged() {
    let (db, svc, store) = setup_msk(IngestConfig::default()).await;
    refuse_poison(&db).await;
    let poison = readings_for(20..21, json!("poison"));
    let event = msk_event(vec![
        (1, "1", readings_for(10..12, json!("ok")), Some(1)),
        (2, "2", poison.clone(), Some(2)),
        (3, "2", readings_for(12..13, json!("ok")), Some(2)),
    ]);
    let report = msk(&svc, &event)
        .await
        .expect("one record never fails the invocation");
    assert_eq!(
        (report.accepted, report.rejected_records),
        (3, 1),
        "{report:?}"
    );
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        3
    );
    let letter = dead_letter(&store, 2)
        .await
        .expect("the record is dead-lettered");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("poison is refused"),
        "{letter}"
    );
    assert_eq!(
        (letter["partition"].clone(), letter["offset"].clone()),
        (json!(0), json!(2))
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(letter["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&raw).unwrap(),
        poison,
        "the raw bytes are kept"
    );
    assert!(dead_letter(&store, 1).await.is_none());
}

#[tokio::test]
async fn records_that_can_never_succeed_are_dead_lettered_with_their_reason() {
    let (_db, svc, store) = setup_msk(IngestConfig::default()).await;
    let event = msk_event(vec![
        (1, "1", json!({"oops": true}), Some(1)),
        (2, "777", readings_for(1..2, json!("ok")), Some(777)),
        (3, "not-a-tenant", readings_for(1..2, json!("ok")), None),
        (4, "1", readings_for(1..2, json!("ok")), Some(1)),
    ]);
    let report = msk(&svc, &event).await.unwrap();
    assert_eq!(
        (report.accepted, report.rejected_records),
        (1, 3),
        "{report:?}"
    );
    for (offset, needle) in [
        (1, "readings"),
        (2, "does not exist"),
        (3, "no valid tenant"),
    ] {
        let letter = dead_letter(&store, offset)
            .await
            .unwrap_or_else(|| panic!("offset {offset}"));
        assert!(
            letter["reason"].as_str().unwrap().contains(needle),
            "{letter}"
        );
    }
    assert!(dead_letter(&store, 4).await.is_none());
    // Without a dead-letter store such a record fails the invocation
    // rather than vanish.
    let (_db2, svc) = setup().await;
    assert!(matches!(
        msk(&svc, &event).await,
        Err(IngestError::NoDeadLetterStore)
    ));
}

#[tokio::test]
async fn past_the_plugin_budget_records_are_retried_and_the_retry_goes_on_where_it_stopped() {
    let config = IngestConfig {
        msk_plugin_budget: std::time::Duration::ZERO,
        ..IngestConfig::default()
    };
    let (db, svc, _store) = setup_msk(config).await;
    let event = msk_event(vec![
        (10, "1", readings_for(1..3, json!("ok")), Some(1)),
        (11, "1", readings_for(3..5, json!("ok")), Some(1)),
        (12, "2", readings_for(5..7, json!("ok")), Some(2)),
    ]);
    // A zero budget still lets one record through per invocation.
    for left in [2, 1] {
        match msk(&svc, &event).await {
            Err(IngestError::Deferred { deferred, .. }) => assert_eq!(deferred, left),
            other => panic!("expected a deferral, got {other:?}"),
        }
    }
    let last = msk(&svc, &event).await.expect("the third attempt finishes");
    assert_eq!((last.skipped_records, last.accepted), (2, 2), "{last:?}");
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        6,
        "each record staged once: the retries skipped what was done"
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM ingest_progress").await,
        0
    );

    // A mark whose record no longer matches (a recreated topic starts its
    // offsets over) skips nothing.
    owner
        .execute(
            "INSERT INTO ingest_progress VALUES ('atlas.raw-telemetry', 0, 12, '2001-01-01', now())",
            &[],
        )
        .await
        .unwrap();
    let svc = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
    let again = msk(&svc, &event).await.unwrap();
    assert_eq!((again.skipped_records, again.accepted), (0, 6), "{again:?}");
}

#[tokio::test]
async fn every_sample_ingest_event_is_accepted_on_any_date() {
    let (_db, svc, _letters) = setup_msk(IngestConfig::default()).await;
    // The HTTP sample carries no ts: the receive time stamps its readings,
    // whatever the date.
    let http = fixture("apigw-post-telemetry.json");
    let body: Value = serde_json::from_str(http["body"].as_str().unwrap()).unwrap();
    assert!(
        body["readings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("ts").is_none())
    );
    let out = atlas_ingest::lambda::handle(
        &svc,
        lambda_runtime::LambdaEvent::new(http, Default::default()),
    )
    .await
    .unwrap();
    let answer: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (answer["accepted"].clone(), answer["rejected"].clone()),
        (json!(3), json!([])),
        "{answer}"
    );

    // The MSK sample's record timestamps are refreshed to now on a copy of
    // the samples, as `atlas events refresh` does to events/.
    let dir = std::env::temp_dir().join(format!(
        "atlas-events-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(format!("{}/../events", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let changed = atlas_devstack::events::refresh(&dir, Utc::now()).unwrap();
    let raw = dir.join("msk-raw-telemetry.json");
    assert_eq!(changed, vec![dir.join("msk-cdc.json"), raw.clone()]);
    let msk: Value = serde_json::from_str(&std::fs::read_to_string(&raw).unwrap()).unwrap();
    let report = atlas_ingest::lambda::handle(
        &svc,
        lambda_runtime::LambdaEvent::new(msk, Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report["accepted"].clone(),
            report["rejected_readings"].clone(),
            report["rejected_records"].clone()
        ),
        (json!(3), json!(0), json!(0)),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
