//! Webhook registration through the query API, as a tenant's admin uses
//! it: the secret shown once, test events that a receiver verifies, the
//! address policy, the per-tenant limit, and isolation between tenants in
//! the code and in the database.

use atlas_query::{QueryApi, QueryConfig};
use atlas_store::DbRole;
use atlas_tests::{TestDb, api_request, body_json, db_with_entity_123, query_api_with};
use std::time::{Duration, Instant};

use atlas_webhooks::receiver::Receiver;
use atlas_webhooks::{AddressPolicy, Deliverer, DeliveryConfig, HotChange, MAX_PER_TENANT, Sink};
use http::StatusCode;
use serde_json::{Value, json};

fn api(db: &TestDb, allow_loopback: bool) -> QueryApi {
    query_api_with(
        db,
        QueryConfig {
            webhooks: AddressPolicy { allow_loopback },
            ..Default::default()
        },
    )
}

async fn call(
    api: &QueryApi,
    tenant: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map(|b| b.to_string().into_bytes());
    let resp =
        atlas_query::http::handle(api, api_request(tenant, method, path, body.as_deref())).await;
    (resp.status(), body_json(&resp))
}

async fn receiver() -> Receiver {
    Receiver::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("a local port")
}

fn registration(url: &str) -> Value {
    json!({"url": url, "events": ["entity.updated"], "attributes": ["temperature"]})
}

/// Tenant 1 registers `rx`: the answer, then its id and secret.
async fn register(api: &QueryApi, rx: &Receiver) -> (Value, String, String) {
    let url = rx.url();
    let (status, created) = call(api, "1", "POST", "/v1/webhooks", Some(registration(&url))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    (created, id, secret)
}

/// Tenant 1's test event to webhook `id`: the outcome.
async fn send_test(api: &QueryApi, id: &str) -> Value {
    let path = format!("/v1/webhooks/{id}/test");
    let (status, outcome) = call(api, "1", "POST", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    outcome
}

#[tokio::test]
async fn a_registered_endpoint_gets_a_test_event_it_can_verify() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let rx = receiver().await;

    let (created, id, secret) = register(&api, &rx).await;
    assert!(id.starts_with("wh_") && secret.starts_with("whsec_"));
    assert_eq!(created["url"], rx.url().as_str());
    assert_eq!(created["attributes"], json!(["temperature"]));

    // The secret is shown once: neither the listing nor the webhook has it.
    let (_, list) = call(&api, "1", "GET", "/v1/webhooks", None).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(list["webhooks"][0]["id"], id.as_str());
    let (status, one) = call(&api, "1", "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    for shown in [&list["webhooks"][0], &one] {
        assert!(shown.get("secret").is_none(), "{shown}");
        assert!(!shown.to_string().contains(&secret));
    }

    rx.verify_with(&secret);
    let outcome = send_test(&api, &id).await;
    assert_eq!(outcome["delivered"], true, "{outcome}");
    assert_eq!(outcome["status"], 204);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let event = &got[0];
    assert!(event.signature_ok, "the signature verifies with the secret");
    assert_eq!(event.event_id.as_deref(), outcome["event_id"].as_str());
    assert_eq!(event.body["event_type"], "webhook.test");
    assert_eq!(event.body["webhook_id"], id.as_str());
    assert_eq!(event.body["tenant_id"], 1);
    assert_eq!(event.lag_seconds, Some(0.0));
    let age = chrono::Utc::now().timestamp() - event.timestamp.unwrap();
    assert!((0..60).contains(&age), "timestamp is now: {age}");

    // A failing endpoint is the outcome, not an error of the call.
    rx.answer_with(500);
    let outcome = send_test(&api, &id).await;
    assert_eq!(
        (&outcome["delivered"], &outcome["status"]),
        (&json!(false), &json!(500))
    );
    drop(rx);
    let outcome = send_test(&api, &id).await;
    assert_eq!(outcome["delivered"], false);
    assert!(outcome["status"].is_null());
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "{outcome}"
    );

    let (status, _) = call(&api, "1", "DELETE", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&api, "1", "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn private_loopback_and_metadata_addresses_are_refused() {
    let db = db_with_entity_123(20.5).await;
    let production = api(&db, false);
    let local = api(&db, true);
    for (api, url, code) in [
        (&production, "http://127.0.0.1:8080/hook", "invalid_url"),
        (&production, "https://127.0.0.1/hook", "url_refused"),
        (&production, "https://localhost/hook", "url_refused"),
        (&production, "https://[::1]/hook", "url_refused"),
        (&production, "https://10.0.0.7/hook", "url_refused"),
        (&production, "https://192.168.1.20/hook", "url_refused"),
        (
            &production,
            "https://169.254.169.254/latest/meta-data/",
            "url_refused",
        ),
        (
            &local,
            "https://169.254.169.254/latest/meta-data/",
            "url_refused",
        ),
        (&local, "https://[fd00:ec2::254]/", "url_refused"),
        (&local, "https://172.16.0.1/hook", "url_refused"),
        (&local, "https://[::ffff:10.0.0.1]/hook", "url_refused"),
        (
            &local,
            "https://no-such-host.invalid/hook",
            "url_unresolvable",
        ),
        (&local, "http://example.com/hook", "invalid_url"),
        (&local, "https://user:pw@example.com/hook", "invalid_url"),
    ] {
        let (status, body) = call(api, "1", "POST", "/v1/webhooks", Some(registration(url))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
    }
    // Nothing was registered by any of them.
    let (_, list) = call(&local, "1", "GET", "/v1/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]));
}

#[tokio::test]
async fn bad_registrations_are_refused_by_name() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let url = "http://127.0.0.1:9/hook";
    for (body, code) in [
        (json!([url, ["entity.updated"]]), "invalid_body"),
        (json!({"url": url}), "invalid_body"),
        (
            json!({"url": url, "events": ["entity.updated"], "secret": "mine"}),
            "invalid_body",
        ),
        (json!({"url": url, "events": []}), "invalid_events"),
        (
            json!({"url": url, "events": ["entity.created"]}),
            "invalid_events",
        ),
        (
            json!({"url": url, "events": ["entity.updated"], "attributes": ["Not A Name"]}),
            "invalid_attributes",
        ),
    ] {
        let (status, got) = call(&api, "1", "POST", "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(
            (status, got["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {got}"
        );
    }
    let huge = json!({"url": url, "events": ["entity.updated"], "pad": "x".repeat(20_000)});
    let (status, got) = call(&api, "1", "POST", "/v1/webhooks", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{got}");
    for path in ["/v1/webhooks/nope", "/v1/webhooks/wh_0123/test"] {
        let method = if path.ends_with("test") {
            "POST"
        } else {
            "GET"
        };
        let (status, _) = call(&api, "1", method, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, got) = call(&api, "1", "GET", "/v1/webhooks?limit=1", None).await;
    assert_eq!(
        (status, got["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_parameter"))
    );
}

#[tokio::test]
async fn a_tenant_registers_at_most_its_limit_even_at_once() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let url = "http://127.0.0.1:9/hook";
    // All at once: the limit must hold under concurrency too.
    let attempts = (0..MAX_PER_TENANT + 5)
        .map(|_| call(&api, "1", "POST", "/v1/webhooks", Some(registration(url))));
    let results = futures_util::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .collect();
    assert_eq!(created as i64, MAX_PER_TENANT);
    assert_eq!(refused.len(), 5);
    assert_eq!(refused[0].1["error"]["code"], "too_many_webhooks");
    // Another tenant's limit is its own.
    let (status, _) = call(&api, "2", "POST", "/v1/webhooks", Some(registration(url))).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn tenants_never_see_each_others_webhooks() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let rx = receiver().await;
    let (_, id, _) = register(&api, &rx).await;

    // In the code: tenant 2 with tenant 1's id finds nothing, changes
    // nothing, and sends nothing.
    let (_, list) = call(&api, "2", "GET", "/v1/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]));
    for (method, path) in [
        ("GET", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("POST", format!("/v1/webhooks/{id}/test")),
    ] {
        let (status, body) = call(&api, "2", method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    assert!(rx.received().is_empty());
    let (status, _) = call(&api, "1", "GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "tenant 1's webhook survived");

    // In the database: as the application role, only the tenant set on the
    // transaction is visible, and nothing at all without one.
    let app = db.pool(DbRole::App);
    let client = app.get().await.unwrap();
    let none: i64 = client
        .query_one("SELECT count(*) FROM webhooks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(none, 0);
    let mut client = app.get().await.unwrap();
    let tx = atlas_store::begin_tenant(&mut client, atlas_core::TenantId::new(2).unwrap())
        .await
        .unwrap();
    let seen: i64 = tx
        .query_one("SELECT count(*) FROM webhooks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    let planted = tx
        .execute(
            "INSERT INTO webhooks (tenant_id, webhook_id, url, events, secret) \
             VALUES (1, 'wh_ffffffffffffffffffffffffffffffff', 'https://example.com/x', \
                     '{entity.updated}', $1)",
            &[&format!("whsec_{}", "1".repeat(64))],
        )
        .await;
    assert!(planted.is_err(), "tenant 2 cannot write tenant 1's rows");
}

#[tokio::test]
async fn webhooks_need_the_admin_scope() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let req = atlas_tests::api_request_scoped("1", &["read"], "GET", "/v1/webhooks", None);
    let resp = atlas_query::http::handle(&api, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(&resp)["error"]["code"], "insufficient_scope");
}

/// A sender that gives up quickly and retries soon, as tests want it.
fn deliverer(db: &TestDb, config: DeliveryConfig) -> Deliverer {
    Deliverer::new(db.pool(DbRole::Worker), config).unwrap()
}

fn quick() -> DeliveryConfig {
    DeliveryConfig {
        policy: AddressPolicy {
            allow_loopback: true,
        },
        timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(100),
        poll: Duration::from_millis(50),
        ..DeliveryConfig::default()
    }
}

/// Delivers for `secs` seconds (the last `timeout` of them takes nothing new).
async fn deliver_for(d: &Deliverer, secs: u64) -> atlas_webhooks::Sent {
    d.run_until(Instant::now() + Duration::from_secs(secs))
        .await
        .unwrap()
}

fn change(tenant: i64, entity: i64, temperature: f64, lsn: i64) -> HotChange {
    HotChange {
        tenant_id: tenant,
        entity_id: entity,
        hot_attrs: json!({"temperature": temperature})
            .as_object()
            .unwrap()
            .clone(),
        updated_at: chrono::Utc::now(),
        lsn,
    }
}

#[tokio::test]
async fn a_flushed_reading_reaches_the_receiver_signed_once_even_when_its_batch_comes_twice() {
    let db = TestDb::new().await;
    let tap = atlas_tests::tap(&db).await;
    atlas_tests::demo_tenants(&db).await;
    let api = api(&db, true);
    let rx = receiver().await;
    let (_, id, secret) = register(&api, &rx).await;
    rx.verify_with(&secret);
    let warehouse = TestDb::new().await;
    let loader = atlas_warehouse::Loader::new(
        std::sync::Arc::new(atlas_warehouse::PgWarehouse::new(
            atlas_store::DbConfig::new(&warehouse.url, DbRole::AsLogin)
                .pool()
                .unwrap(),
        )),
        atlas_tests::dead_letters(&atlas_tests::local_store("webhooks"), "cdc-loader"),
        atlas_cdc::Options::default(),
    )
    .with_sink(std::sync::Arc::new(Sink::new(db.pool(DbRole::Worker))));

    // Two readings, each flushed, tapped and loaded; every batch is loaded
    // twice, as Lambda does after a failed invocation.
    for temperature in [20.5, 21.0] {
        atlas_tests::post_temperature(&db, temperature).await;
        atlas_tests::flush_all(&db).await;
        atlas_tests::wal_flushed(&db).await;
        let read = tap.read().await.unwrap();
        for event in read.events.iter().chain(read.events.iter()) {
            loader.handle(event).await.unwrap();
        }
        tap.confirm(read.upto.unwrap()).await.unwrap();
    }
    let sent = deliver_for(&deliverer(&db, quick()), 3).await;
    assert_eq!((sent.delivered, sent.failed, sent.dead), (2, 0, 0));

    let got = rx.received();
    assert_eq!(got.len(), 2, "one delivery per change, none twice");
    for (event, (old, new)) in got.iter().zip([(Value::Null, 20.5), (json!(20.5), 21.0)]) {
        assert!(event.signature_ok);
        assert_eq!(event.body["event_type"], "entity.updated");
        assert_eq!(event.body["webhook_id"], id.as_str());
        assert_eq!(
            (
                event.body["tenant_id"].as_i64(),
                event.body["entity_id"].as_i64()
            ),
            (Some(1), Some(123))
        );
        assert_eq!(
            event.body["changes"],
            json!({"temperature": {"old": old, "new": new}})
        );
        assert_eq!(event.event_id.as_deref(), event.body["event_id"].as_str());
        let lag = event.body["lag_seconds"].as_f64().unwrap();
        assert!(lag >= 0.0);
        assert_eq!(
            event.lag_seconds.map(|l| (l * 1000.0).round()),
            Some((lag * 1000.0).round())
        );
        for field in ["occurred_at", "processed_at"] {
            assert!(event.body[field].is_string(), "{field}");
        }
    }
    assert_ne!(got[0].event_id, got[1].event_id);
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_in_order_then_dead_lettered() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let rx = receiver().await;
    let (_, id, _) = register(&api, &rx).await;
    rx.answer_with(503);
    let sink = Sink::new(db.pool(DbRole::Worker));
    // Two changes of one entity, in two batches.
    for (t, lsn) in [(30.0, 10), (31.0, 11)] {
        let done = sink.enqueue(&[change(1, 7, t, lsn)]).await.unwrap();
        assert_eq!(done.deliveries, 1);
    }
    let config = DeliveryConfig {
        max_attempts: 3,
        ..quick()
    };
    let sent = deliver_for(&deliverer(&db, config), 4).await;
    assert_eq!((sent.delivered, sent.dead), (0, 2), "{sent:?}");
    assert_eq!(sent.failed, 4, "two retries of each before it died");

    // Every attempt at the first change came before any at the second.
    let order: Vec<f64> = rx
        .received()
        .iter()
        .map(|e| e.body["changes"]["temperature"]["new"].as_f64().unwrap())
        .collect();
    assert_eq!(order, [30.0, 30.0, 30.0, 31.0, 31.0, 31.0]);

    // The tenant lists them; another tenant cannot.
    let path = format!("/v1/webhooks/{id}/dead-letters");
    let (status, body) = call(&api, "1", "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["body"]["changes"]["temperature"]["new"], 31.0);
    assert_eq!(
        (&letters[0]["attempts"], &letters[0]["last_status"]),
        (&json!(3), &json!(503))
    );
    assert!(letters[0]["last_error"].as_str().unwrap().contains("503"));
    let (status, _) = call(&api, "2", "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Once the endpoint recovers, new changes are delivered.
    rx.answer_with(204);
    sink.enqueue(&[change(1, 7, 32.0, 12)]).await.unwrap();
    let sent = deliver_for(&deliverer(&db, quick()), 3).await;
    assert_eq!(sent.delivered, 1);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_up_another_tenants_deliveries() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    // Tenant 1's endpoint accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}/hook", hung.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            open.push(stream);
        }
    });
    let (status, _) = call(
        &api,
        "1",
        "POST",
        "/v1/webhooks",
        Some(registration(&hung_url)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let rx = receiver().await;
    let (status, created) = call(
        &api,
        "2",
        "POST",
        "/v1/webhooks",
        Some(registration(&rx.url())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    rx.verify_with(created["secret"].as_str().unwrap());

    // Tenant 1's changes first, more than there are slots; then tenant 2's.
    let sink = Sink::new(db.pool(DbRole::Worker));
    let first: Vec<HotChange> = (0..40).map(|e| change(1, e, 20.0, 100 + e)).collect();
    sink.enqueue(&first).await.unwrap();
    sink.enqueue(&[change(2, 1, 25.0, 200)]).await.unwrap();

    let config = DeliveryConfig {
        timeout: Duration::from_secs(30),
        concurrency: 8,
        ..quick()
    };
    let d = std::sync::Arc::new(deliverer(&db, config));
    let running = tokio::spawn({
        let d = d.clone();
        async move { deliver_for(&d, 40).await }
    });
    atlas_tests::eventually(async || !rx.received().is_empty(), "tenant 2's delivery").await;
    assert!(rx.received()[0].signature_ok);
    // Meanwhile not one of tenant 1's posts has finished (each waits 30 s),
    // and at most `per_webhook` of them are in flight.
    let owner = db.owner().await;
    let row = owner
        .query_one(
            "SELECT count(*) FILTER (WHERE last_error IS NOT NULL OR state <> 'pending'), \
                    count(*) FILTER (WHERE attempts > 0) \
             FROM webhook_deliveries WHERE tenant_id = 1",
            &[],
        )
        .await
        .unwrap();
    let (finished, tried): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(finished, 0);
    assert_eq!(tried, DeliveryConfig::default().per_webhook);
    running.abort();
    held.abort();
}

#[tokio::test]
async fn deleting_a_webhook_drops_what_it_had_pending() {
    let db = db_with_entity_123(20.5).await;
    let api = api(&db, true);
    let rx = receiver().await;
    let (_, id, _) = register(&api, &rx).await;
    let sink = Sink::new(db.pool(DbRole::Worker));
    sink.enqueue(&[change(1, 9, 1.0, 5)]).await.unwrap();
    let (status, _) = call(&api, "1", "DELETE", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let sent = deliver_for(&deliverer(&db, quick()), 3).await;
    assert_eq!(sent, atlas_webhooks::Sent::default());
    assert!(rx.received().is_empty());
    let left: i64 = db
        .owner()
        .await
        .query_one("SELECT count(*) FROM webhook_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
