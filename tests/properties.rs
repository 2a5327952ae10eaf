//! Bad input tried by machines (proptest): the request parser, `Value::parse`,
//! the search parser with its cursors, and the MSK record decoder. Any input
//! gives `Ok` or a typed refusal, never a panic; and whatever is accepted,
//! PostgreSQL stores or answers: the database-backed properties run the
//! input through the real handlers and require a 2xx or a 4xx, never a 5xx.

use atlas_core::{DECIMAL_MAX_ABS, DataType, MAX_STRING_BYTES, Value};
use atlas_ingest::{IngestConfig, IngestService};
use atlas_store::DbRole;
use atlas_tests::{TestDb, api_request, body_json, demo_tenants, query_api};
use chrono::Datelike;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value as Json, json};

/// Any JSON, with strings that may hold NUL, controls and any Unicode.
fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Json::String),
        // Strings that almost parse as the typed values.
        prop_oneof![
            Just("2026-11-30T10:00:00Z".to_owned()),
            Just("0000-01-01T00:00:00Z".to_owned()),
            Just("9999-12-31T23:59:59.999999999+14:00".to_owned()),
            Just("on\u{0}line".to_owned()),
        ]
        .prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::hash_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// A name from the demo catalog most of the time, else anything.
fn arb_attribute() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "temperature", "humidity", "status", "priority", "environment",
            "region", "firmware", "online", "last_seen",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// PostgreSQL takes this value in its typed column and in JSONB.
fn storable(v: &Value) -> bool {
    match v {
        Value::Int(_) | Value::Bool(_) => true,
        Value::Decimal(d) => d.abs() < DECIMAL_MAX_ABS && d.scale() <= 5,
        Value::String(s) => s.len() <= MAX_STRING_BYTES && !s.contains('\0'),
        // timestamptz spans 4713 BC to 294276 AD.
        Value::Timestamp(t) => (-4712..=294_275).contains(&t.year()),
    }
}

#[test]
fn value_parse_gives_storable_values_or_typed_errors() {
    runner(2048)
        .run(&arb_json(), |raw| {
            for t in DataType::ALL {
                if let Ok(v) = Value::parse(t, &raw) {
                    prop_assert!(storable(&v), "{t} {raw} gave {v:?}");
                    prop_assert_eq!(v.data_type(), t);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn request_bodies_parse_or_are_refused_by_name() {
    let bytes = prop::collection::vec(any::<u8>(), 0..512);
    runner(2048)
        .run(&bytes, |body| {
            let _ = atlas_ingest::parse_batch(&body, 1 << 20, 100);
            Ok(())
        })
        .unwrap();
    let bodies = prop_oneof![
        arb_json(),
        prop::collection::vec(arb_json(), 0..8).prop_map(|r| json!({ "readings": r })),
    ];
    runner(2048)
        .run(&bodies, |body| {
            let text = body.to_string();
            if let Ok(readings) = atlas_ingest::parse_batch(text.as_bytes(), 1 << 20, 100) {
                prop_assert!(!readings.is_empty() && readings.len() <= 100);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn msk_records_decode_or_say_why() {
    let b64 = |b: Vec<u8>| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let record = (
        prop::option::of(prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..16).prop_map(b64),
        ]),
        prop::option::of(prop_oneof![
            any::<String>(),
            arb_json().prop_map(|j| b64(j.to_string().into_bytes())),
            prop::collection::vec(arb_json(), 1..4)
                .prop_map(move |r| b64(json!({ "readings": r }).to_string().into_bytes())),
        ]),
        // Lambda passes header bytes as Java's signed bytes.
        prop::collection::vec(any::<i8>(), 0..8),
        any::<i64>(),
    );
    let cfg = IngestConfig::default();
    runner(2048)
        .run(&record, |(key, value, header, offset)| {
            let rec = json!({
                "topic": "atlas.raw-telemetry", "partition": 0, "offset": offset,
                "timestamp": 1_764_000_000_000i64, "timestampType": "CREATE_TIME",
                "key": key, "value": value, "headers": [{"tenant_id": header}],
            });
            let rec = serde_json::from_value(rec).expect("a Kafka record");
            if let Ok(batch) = atlas_ingest::msk::record_batch(&rec, &cfg) {
                prop_assert!(batch.tenant.get() > 0);
            }
            Ok(())
        })
        .unwrap();
}

/// Runs `f` for each case on one runtime, against one migrated database
/// with the demo tenants.
fn with_database(cases: u32, run: impl Fn(&tokio::runtime::Runtime, &TestDb, &mut TestRunner)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(async {
        let db = TestDb::new().await;
        demo_tenants(&db).await;
        db
    });
    run(&rt, &db, &mut runner(cases));
    drop(db);
}

#[test]
fn any_batch_is_staged_or_refused_never_a_server_error() {
    // Mostly well-formed readings, so that values reach the catalog's
    // typing and the database rather than stopping at the envelope.
    let reading = (
        prop_oneof![
            3 => (0..1000i64).prop_map(|n| json!(n)),
            1 => any::<i64>().prop_map(|n| json!(n)),
            1 => arb_json(),
        ],
        prop::option::weighted(0.2, any::<String>()),
        arb_attribute(),
        arb_json(),
        prop::option::weighted(
            0.3,
            prop_oneof![any::<String>(), Just(chrono::Utc::now().to_rfc3339())],
        ),
    )
        .prop_map(|(entity, etype, attribute, value, ts)| {
            let mut r = json!({"entity_id": entity, "attribute": attribute, "value": value});
            if let Some(t) = etype {
                r["entity_type"] = json!(t);
            }
            if let Some(t) = ts {
                r["ts"] = json!(t);
            }
            r
        });
    let batch = prop::collection::vec(reading, 1..20);
    with_database(192, |rt, db, runner| {
        let svc = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
        runner
            .run(&batch, |readings| {
                let body = json!({ "readings": readings }).to_string();
                let resp = rt.block_on(atlas_ingest::http::handle(
                    &svc,
                    api_request("1", "POST", "/v1/telemetry", Some(body.as_bytes())),
                ));
                let status = resp.status();
                prop_assert!(
                    status.as_u16() == 202 || status.as_u16() == 400,
                    "{status}: {} for {body}",
                    body_json(&resp)
                );
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn any_search_is_answered_or_refused_never_a_server_error() {
    let condition = (
        arb_attribute(),
        prop_oneof![
            prop::sample::select(vec!["eq", "in", "gt", "gte", "lt", "lte", "exists"])
                .prop_map(str::to_owned),
            any::<String>(),
        ],
        prop::option::of(arb_json()),
    )
        .prop_map(|(attribute, op, value)| {
            let mut c = json!({"attribute": attribute, "op": op});
            if let Some(v) = value {
                c["value"] = v;
            }
            c
        });
    let search = (
        prop::collection::vec(condition, 0..5),
        prop::option::of(arb_attribute()),
        prop::option::of(prop::sample::select(vec!["asc", "desc", "up"])),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(filter, order_by, order, limit, cursor)| {
            json!({"filter": filter, "order_by": order_by, "order": order,
                   "limit": limit, "cursor": cursor})
        });
    with_database(192, |rt, db, runner| {
        let api = query_api(db);
        runner
            .run(&search, |body| {
                let text = body.to_string();
                let resp = rt.block_on(atlas_query::http::handle(
                    &api,
                    api_request("1", "POST", "/v1/entities/search", Some(text.as_bytes())),
                ));
                let status = resp.status();
                prop_assert!(
                    status.as_u16() == 200 || status.as_u16() == 400,
                    "{status}: {} for {text}",
                    body_json(&resp)
                );
                Ok(())
            })
            .unwrap();
    });
}
