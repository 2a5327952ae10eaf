//! Promoting and demoting an attribute with `PATCH /v1/attributes/{name}`
//! against a real PostgreSQL: the background backfill in batches, its
//! progress on `GET /v1/attributes/{name}`, resuming, a newer reading
//! winning over the backfill, demotion removing the key, and the
//! divergence check seeing every gap until the work is done.

use std::time::{Duration, Instant};

use atlas_core::{AttributeName, TenantId};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_store::flush::{FlushConfig, Flusher, HOT_BATCH, Mode, flush_in};
use atlas_store::hot::{divergent, work_batch};
use atlas_tests::{
    TestDb, api_request, body_json, demo_tenants, flush_all, post_readings, query_api,
};
use chrono::Utc;
use http::StatusCode;
use serde_json::{Value, json};

const ENTITIES: i64 = 2500;

fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Tenant 1's entities 1..=2500 each report `firmware` (cold) twice: the
/// later reading is `v2-<id>`.
async fn setup() -> (TestDb, QueryApi) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let readings: Vec<Value> = (1..=ENTITIES)
        .flat_map(|e| {
            [
                json!({"entity_id": e, "attribute": "firmware", "value": format!("v1-{e}"), "ts": ago(20)}),
                json!({"entity_id": e, "attribute": "firmware", "value": format!("v2-{e}"), "ts": ago(10)}),
            ]
        })
        .collect();
    post_readings(&db, "1", Value::Array(readings)).await;
    flush_all(&db).await;
    let api = query_api(&db);
    (db, api)
}

async fn call(api: &QueryApi, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let resp =
        atlas_query::http::handle(api, api_request("1", method, path, body.map(str::as_bytes)))
            .await;
    (resp.status(), body_json(&resp))
}

/// PATCHes tenant 1's firmware hotness.
async fn make_hot(api: &QueryApi, hot: bool) -> (StatusCode, Value) {
    let body = format!(r#"{{"is_hot": {hot}}}"#);
    call(api, "PATCH", "/v1/attributes/firmware", Some(&body)).await
}

async fn diverging(db: &TestDb) -> usize {
    divergent(
        &db.pool(DbRole::Worker),
        TenantId::parse("1").unwrap(),
        &AttributeName::parse("firmware").unwrap(),
        100_000,
    )
    .await
    .unwrap()
    .len()
}

async fn firmware_of(db: &TestDb, entity: i64) -> Option<Value> {
    db.owner()
        .await
        .query_one(
            "SELECT hot_attrs -> 'firmware' FROM entity_jsonb WHERE tenant_id = 1 AND entity_id = $1",
            &[&entity],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn promotion_backfills_in_resumable_batches_and_demotion_removes_the_key() {
    let (db, api) = setup().await;
    let worker = db.pool(DbRole::Worker);
    assert_eq!(diverging(&db).await, 0, "cold and unprojected: consistent");
    let search = r#"{"filter": [{"attribute": "firmware", "op": "eq", "value": "v2-7"}]}"#;
    let (status, body) = call(&api, "POST", "/v1/entities/search", Some(search)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cold_attribute"))
    );

    let (status, body) = make_hot(&api, true).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["is_hot"], true);
    assert_eq!(body["hot_change"]["kind"], "promote");
    assert_eq!(body["hot_change"]["state"], "pending");
    // Promoted but not yet backfilled: every entity is reported.
    assert_eq!(diverging(&db).await, ENTITIES as usize);

    // A reading that arrives now is projected by the flusher at once.
    post_readings(
        &db,
        "1",
        json!([{"entity_id": 5, "attribute": "firmware", "value": "v3-5", "ts": ago(1)}]),
    )
    .await;
    flush_all(&db).await;
    assert_eq!(firmware_of(&db, 5).await, Some(json!("v3-5")));

    // One batch, then a batch that dies before committing: the progress
    // shows the first and the work resumes from its cursor.
    let first = work_batch(&worker, HOT_BATCH).await.unwrap().unwrap();
    assert!(!first.finished);
    let (_, body) = call(&api, "GET", "/v1/attributes/firmware", None).await;
    let change = &body["hot_change"];
    assert_eq!(
        (change["state"].as_str(), change["entities_done"].as_i64()),
        (Some("running"), Some(HOT_BATCH))
    );
    assert_eq!(change["entities_total"], ENTITIES);
    {
        let mut client = worker.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute(
            "UPDATE hot_changes SET entities_done = 0, cursor_entity = NULL",
            &[],
        )
        .await
        .unwrap();
        // dropped without commit, as a killed worker's transaction is
    }
    assert_eq!(diverging(&db).await, (ENTITIES - HOT_BATCH) as usize);
    let mut batches = 1;
    while let Some(w) = work_batch(&worker, HOT_BATCH).await.unwrap() {
        batches += 1;
        if w.finished {
            break;
        }
    }
    assert_eq!(batches, 3);
    let (_, body) = call(&api, "GET", "/v1/attributes/firmware", None).await;
    let change = &body["hot_change"];
    assert_eq!(change["state"], "done", "{body}");
    assert_eq!(change["entities_done"], ENTITIES);
    assert!(change["finished_at"].is_string());
    assert_eq!(diverging(&db).await, 0);
    assert_eq!(
        firmware_of(&db, 7).await,
        Some(json!("v2-7")),
        "the latest reading"
    );
    assert_eq!(
        firmware_of(&db, 5).await,
        Some(json!("v3-5")),
        "the newer reading kept"
    );
    let (status, body) = call(&api, "POST", "/v1/entities/search", Some(search)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entities"][0]["entity_id"], 7);

    // The same again is a no-op.
    let (status, _) = make_hot(&api, true).await;
    assert_eq!(status, StatusCode::OK);

    // Demotion, worked off by the flusher between (empty) flushes.
    let (status, body) = make_hot(&api, false).await;
    assert_eq!(
        (status, body["hot_change"]["kind"].as_str()),
        (StatusCode::ACCEPTED, Some("demote"))
    );
    assert_eq!(
        diverging(&db).await,
        ENTITIES as usize,
        "cold, still projected"
    );
    let flusher = Flusher {
        pool: worker.clone(),
        config: FlushConfig {
            max_run: Some(Duration::from_millis(200)),
            stop_margin: Duration::ZERO,
            ..FlushConfig::default()
        },
        metrics: atlas_cloud::metrics::from_env("Atlas"),
        listener: None,
    };
    // Each short run does what it can; the work carries over between runs.
    for _ in 0..100 {
        flusher
            .run_until(Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        let (_, body) = call(&api, "GET", "/v1/attributes/firmware", None).await;
        if body["hot_change"]["state"] == "done" {
            break;
        }
    }
    let (_, body) = call(&api, "GET", "/v1/attributes/firmware", None).await;
    assert_eq!(body["hot_change"]["state"], "done", "{body}");
    assert_eq!(firmware_of(&db, 7).await, None);
    assert_eq!(diverging(&db).await, 0);
}

#[tokio::test]
async fn a_newer_patch_supersedes_unfinished_work_and_bad_patches_are_refused() {
    let (db, api) = setup().await;
    let worker = db.pool(DbRole::Worker);
    make_hot(&api, true).await;
    work_batch(&worker, HOT_BATCH).await.unwrap().unwrap();
    let (status, body) = make_hot(&api, false).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let superseded: i64 = db
        .owner()
        .await
        .query_one(
            "SELECT count(*) FROM hot_changes WHERE state = 'superseded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(superseded, 1);
    while let Some(w) = work_batch(&worker, HOT_BATCH).await.unwrap() {
        if w.finished {
            break;
        }
    }
    assert_eq!(
        diverging(&db).await,
        0,
        "the demotion undid the partial promotion"
    );
    assert!(
        work_batch(&worker, HOT_BATCH).await.unwrap().is_none(),
        "nothing left open"
    );

    for (path, body, status, code) in [
        (
            "/v1/attributes/nope",
            r#"{"is_hot": true}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/attributes/firmware",
            r#"{"is_hot": "yes"}"#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "/v1/attributes/firmware",
            r#"{"is_hot": true, "x": 1}"#,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "/v1/attributes/Bad-Name",
            r#"{"is_hot": true}"#,
            StatusCode::BAD_REQUEST,
            "invalid_attribute",
        ),
    ] {
        let (got, answer) = call(&api, "PATCH", path, Some(body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer}"
        );
    }
    // Another tenant cannot flip tenant 1's catalog: its own is separate.
    let resp = atlas_query::http::handle(
        &api,
        api_request(
            "2",
            "PATCH",
            "/v1/attributes/firmware",
            Some(br#"{"is_hot": true}"#),
        ),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::ACCEPTED,
        "tenant 2's own firmware"
    );
    let (_, mine) = call(&api, "GET", "/v1/attributes/firmware", None).await;
    assert_eq!(mine["is_hot"], false, "tenant 1's is untouched");
}

/// A flush batch, left open, holding tenant 1's new firmware reading of
/// entity 9 ("v9-new").
async fn batch_in_flight<'a>(
    db: &TestDb,
    client: &'a mut deadpool_postgres::Object,
) -> deadpool_postgres::Transaction<'a> {
    post_readings(
        db,
        "1",
        json!([{"entity_id": 9, "attribute": "firmware", "value": "v9-new", "ts": ago(1)}]),
    )
    .await;
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        flush_in(&tx, &FlushConfig::default(), Mode::Fast)
            .await
            .unwrap()
            .moved,
        1
    );
    tx
}

/// A hotness change waits for the flush batch in flight, so the background
/// work never misses a reading that batch is writing, nor does the batch
/// write a projection decided on the old hotness after the work began.
#[tokio::test]
async fn a_patch_waits_for_the_flush_batch_in_flight() {
    let (db, api) = setup().await;
    let api = std::sync::Arc::new(api);
    let worker = db.pool(DbRole::Worker);
    let mut client = worker.get().await.unwrap();
    let tx = batch_in_flight(&db, &mut client).await;
    let patch = tokio::spawn({
        let api = api.clone();
        async move { make_hot(&api, true).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !patch.is_finished(),
        "the PATCH waits for the batch in flight"
    );
    tx.commit().await.unwrap();
    let (status, body) = patch.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    while let Some(w) = work_batch(&worker, HOT_BATCH).await.unwrap() {
        if w.finished {
            break;
        }
    }
    assert_eq!(firmware_of(&db, 9).await, Some(json!("v9-new")));
    assert_eq!(diverging(&db).await, 0);
}

/// The projection lock is per tenant: a batch holding tenant 1's rows
/// never holds up tenant 2's PATCH (before, one lock served every tenant,
/// and a tenant looping PATCH queued everyone's flushes).
#[tokio::test]
async fn another_tenants_patch_does_not_wait_for_the_batch_in_flight() {
    let (db, api) = setup().await;
    let worker = db.pool(DbRole::Worker);
    let mut client = worker.get().await.unwrap();
    let tx = batch_in_flight(&db, &mut client).await;
    // A generous bound: without per-tenant locks the PATCH waits until the
    // batch commits, which here is never before the bound.
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        atlas_query::http::handle(
            &api,
            api_request(
                "2",
                "PATCH",
                "/v1/attributes/firmware",
                Some(br#"{"is_hot": true}"#),
            ),
        ),
    )
    .await
    .expect("tenant 2's PATCH does not wait for tenant 1's batch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    tx.commit().await.unwrap();
}
