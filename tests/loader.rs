//! The CDC-batch loader against a real PostgreSQL warehouse: Debezium
//! records in MSK events, as Lambda delivers them, loaded exactly once.

use std::sync::Arc;

use atlas_store::{DbConfig, DbRole};
use atlas_tests::{TestDb, count, dead_letters, local_store};
use atlas_warehouse::{Loader, PgWarehouse, Report};
use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine;
use serde_json::{Value, json};

const PREFIX: &str = "atlas.public";
/// 2026-11-30T10:00:00Z, a Monday.
const COMMIT_MS: i64 = 1_764_496_800_000;

/// A full-envelope change of `table` (no schema), at `lsn`.
fn change(table: &str, op: &str, lsn: i64, row: Value) -> (String, Option<Value>) {
    let (before, after) = if op == "d" {
        (row, Value::Null)
    } else {
        (Value::Null, row)
    };
    let value = json!({
        "before": before, "after": after, "op": op, "ts_ms": COMMIT_MS + lsn + 5,
        "source": {"lsn": lsn, "txId": lsn / 10, "ts_ms": COMMIT_MS + lsn,
                   "table": table, "snapshot": "false", "schema": "public", "db": "atlas"},
    });
    (format!("{PREFIX}.{table}"), Some(value))
}

fn tenant(lsn: i64) -> (String, Option<Value>) {
    change(
        "tenants",
        "c",
        lsn,
        json!({"tenant_id": 1, "tenant_name": "acme", "created_at": "2026-11-01T00:00:00Z",
               "is_active": true, "allow_auto_register": true}),
    )
}

fn attribute(lsn: i64, id: i64, name: &str, data_type: &str, hot: bool) -> (String, Option<Value>) {
    change(
        "attributes",
        "c",
        lsn,
        json!({"attribute_id": id, "tenant_id": 1, "attribute_name": name, "data_type": data_type,
               "is_hot": hot, "created_at": "2026-11-01T00:00:00Z"}),
    )
}

fn entity(lsn: i64) -> (String, Option<Value>) {
    change(
        "entities",
        "c",
        lsn,
        json!({"entity_id": 100, "tenant_id": 1, "entity_type": "sensor",
               "created_at": "2026-11-01T00:00:00Z", "is_deleted": false}),
    )
}

/// A reading of entity 100; `value` names its column (`value_int`, `value`).
fn reading(
    lsn: i64,
    attribute_id: i64,
    at: &str,
    column: &str,
    value: Value,
) -> (String, Option<Value>) {
    let mut row = json!({"entity_id": 100, "tenant_id": 1, "attribute_id": attribute_id,
        "value": null, "value_int": null, "value_decimal": null, "value_bool": null,
        "value_timestamp": null, "ingested_at": at});
    row[column] = value;
    // Rows of a monthly partition, as a publication without
    // publish_via_partition_root names them.
    change("entity_values_ts_2026_11", "c", lsn, row)
}

fn state(lsn: i64, status: &str, updated_at: &str) -> (String, Option<Value>) {
    change(
        "entity_jsonb",
        "u",
        lsn,
        json!({"entity_id": 100, "tenant_id": 1,
               "hot_attrs": json!({"status": status}).to_string(),
               "hot_attrs_ts": json!({"status": updated_at}).to_string(),
               "updated_at": updated_at}),
    )
}

/// The records as one MSK event: each on its topic's partition 0, each
/// topic's offsets counting from `first_offset` in the order given.
fn event(first_offset: i64, records: &[(String, Option<Value>)]) -> KafkaEvent {
    event_of_bytes(
        first_offset,
        records
            .iter()
            .map(|(topic, value)| {
                let b64 = value
                    .as_ref()
                    .map(|v| base64::engine::general_purpose::STANDARD.encode(v.to_string()));
                (topic.clone(), b64)
            })
            .collect(),
    )
}

fn event_of_bytes(first_offset: i64, records: Vec<(String, Option<String>)>) -> KafkaEvent {
    let mut by_partition: serde_json::Map<String, Value> = Default::default();
    for (topic, value) in records {
        let records = by_partition
            .entry(format!("{topic}-0"))
            .or_insert_with(|| json!([]));
        let offset = first_offset + records.as_array().unwrap().len() as i64;
        let rec = json!({"topic": topic, "partition": 0, "offset": offset,
            "timestamp": COMMIT_MS, "timestampType": "CREATE_TIME", "key": null,
            "value": value, "headers": []});
        records.as_array_mut().unwrap().push(rec);
    }
    serde_json::from_value(json!({"eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/atlas/abc",
        "bootstrapServers": "b-1:9092", "records": by_partition}))
    .expect("an MSK event")
}

struct Warehouse {
    db: TestDb,
    loader: Loader,
    store: Arc<dyn atlas_objects::ObjectStore>,
}

async fn warehouse() -> Warehouse {
    let db = TestDb::new().await;
    let store = local_store("loader");
    let pool = DbConfig::new(&db.url, DbRole::AsLogin).pool().unwrap();
    let loader = Loader::new(
        Arc::new(PgWarehouse::new(pool)),
        dead_letters(&store, "cdc-loader"),
        atlas_cdc::Options::default(),
    );
    Warehouse { db, loader, store }
}

fn the_first_batch() -> Vec<(String, Option<Value>)> {
    vec![
        tenant(10),
        attribute(11, 7, "temperature", "decimal", false),
        attribute(12, 8, "status", "string", true),
        entity(13),
        reading(20, 7, "2026-11-30T09:00:00Z", "value_decimal", json!(21.5)),
        reading(21, 7, "2026-11-30T09:30:00Z", "value_int", json!(25)),
        reading(22, 8, "2026-11-30T09:30:00Z", "value", json!("online")),
        state(23, "online", "2026-11-30T09:30:00Z"),
    ]
}

#[tokio::test]
async fn a_batch_loads_enriched_and_a_redelivery_adds_nothing() {
    let w = warehouse().await;
    let batch = event(0, &the_first_batch());
    let first = w.loader.handle(&batch).await.unwrap();
    assert_eq!(
        first,
        Report {
            records: 8,
            changes: 8,
            loaded: 3,
            duplicates: 0,
            dead_lettered: 0
        }
    );
    let c = w.db.owner().await;
    let row = c
        .query_one(
            "SELECT tenant_name, attribute_name, data_type, attribute_category, entity_type, \
             value_decimal::text, ingested_date::text, ingested_hour, day_of_week, year_month, \
             source_lsn, source_commit_at = to_timestamp($1::float8 / 1000) \
             FROM fact_telemetry WHERE attribute_id = 7 AND ingested_at = '2026-11-30T09:00:00Z'",
            &[&((COMMIT_MS + 20) as f64)],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), Some("acme"));
    assert_eq!(row.get::<_, Option<&str>>(1), Some("temperature"));
    assert_eq!(row.get::<_, Option<&str>>(2), Some("decimal"));
    assert_eq!(row.get::<_, Option<&str>>(3), Some("cold"));
    assert_eq!(row.get::<_, Option<&str>>(4), Some("sensor"));
    assert_eq!(row.get::<_, Option<&str>>(5), Some("21.50000"));
    assert_eq!(row.get::<_, &str>(6), "2026-11-30");
    assert_eq!(row.get::<_, i16>(7), 9);
    assert_eq!(row.get::<_, i16>(8), 1, "a Monday");
    assert_eq!(row.get::<_, &str>(9), "2026-11");
    assert_eq!(row.get::<_, i64>(10), 20);
    assert!(row.get::<_, bool>(11), "the commit time is the source's");

    let stats = "SELECT attribute_name, sample_count, value_sum::text, value_min::text, \
                 value_max::text FROM agg_daily_entity_stats";
    let agg = c.query(stats, &[]).await.unwrap();
    assert_eq!(agg.len(), 1, "the text reading has no statistics");
    let agg_row = |r: &tokio_postgres::Row| {
        (
            r.get::<_, Option<String>>(0),
            r.get::<_, i64>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, String>(4),
        )
    };
    let expected = (
        Some("temperature".to_owned()),
        2,
        "46.50000".to_owned(),
        "21.50000".to_owned(),
        "25.00000".to_owned(),
    );
    assert_eq!(agg_row(&agg[0]), expected);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM fact_current_state WHERE hot_attrs->>'status' = 'online'"
        )
        .await,
        1
    );
    let mark: (i64, bool) = c
        .query_one(
            "SELECT source_lsn, source_commit_at = to_timestamp($1::float8 / 1000) \
             FROM load_watermarks WHERE source = 'atlas'",
            &[&((COMMIT_MS + 23) as f64)],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(mark, (23, true));

    // Lambda delivers the same batch again (a retry, a redelivery).
    let again = w.loader.handle(&batch).await.unwrap();
    assert_eq!((again.loaded, again.duplicates), (0, 3));
    assert_eq!(count(&c, "SELECT count(*) FROM fact_telemetry").await, 3);
    let agg = c.query(stats, &[]).await.unwrap();
    assert_eq!(
        agg_row(&agg[0]),
        expected,
        "statistics count each reading once"
    );
}

#[tokio::test]
async fn two_deliveries_at_once_load_each_reading_once() {
    let w = warehouse().await;
    let batch = event(0, &the_first_batch());
    let (a, b) = tokio::join!(w.loader.handle(&batch), w.loader.handle(&batch));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.loaded + b.loaded, 3);
    assert_eq!(a.duplicates + b.duplicates, 3);
    let c = w.db.owner().await;
    assert_eq!(
        count(&c, "SELECT sample_count FROM agg_daily_entity_stats").await,
        2
    );
}

#[tokio::test]
async fn readings_that_come_before_their_dimensions_are_enriched_when_they_arrive() {
    let w = warehouse().await;
    // The readings' topic is read ahead of the others'.
    let readings = event(
        0,
        &[
            reading(20, 7, "2026-11-30T09:00:00Z", "value_int", json!(3)),
            reading(21, 8, "2026-11-30T09:00:00Z", "value", json!("online")),
        ],
    );
    assert_eq!(w.loader.handle(&readings).await.unwrap().loaded, 2);
    let c = w.db.owner().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM fact_telemetry WHERE attribute_name IS NULL AND tenant_name IS NULL"
        )
        .await,
        2
    );
    let dims = event(
        0,
        &[
            tenant(10),
            attribute(11, 7, "temperature", "integer", false),
            attribute(12, 8, "status", "string", true),
            entity(13),
        ],
    );
    w.loader.handle(&dims).await.unwrap();
    let rows = c
        .query(
            "SELECT tenant_name, attribute_name, attribute_category, entity_type \
             FROM fact_telemetry ORDER BY attribute_id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "acme".into(),
                "temperature".into(),
                "cold".into(),
                "sensor".into()
            ),
            (
                "acme".into(),
                "status".into(),
                "hot".into(),
                "sensor".into()
            ),
        ]
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM agg_daily_entity_stats WHERE attribute_name = 'temperature'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn older_changes_never_overwrite_newer_ones() {
    let w = warehouse().await;
    w.loader
        .handle(&event(
            0,
            &[
                attribute(50, 7, "temperature", "decimal", true),
                state(60, "online", "2026-11-30T09:30:00Z"),
            ],
        ))
        .await
        .unwrap();
    // A later batch carries older changes (another partition's retry).
    w.loader
        .handle(&event(
            2,
            &[
                attribute(40, 7, "temperature", "decimal", false),
                state(30, "offline", "2026-11-30T09:00:00Z"),
            ],
        ))
        .await
        .unwrap();
    let c = w.db.owner().await;
    let category: String = c
        .query_one("SELECT attribute_category FROM dim_attributes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(category, "hot");
    let status: String = c
        .query_one("SELECT hot_attrs->>'status' FROM fact_current_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "online");
    // And a newer deletion removes the state.
    let deleted = change(
        "entity_jsonb",
        "d",
        70,
        json!({"entity_id": 100, "tenant_id": 1}),
    );
    w.loader.handle(&event(4, &[deleted])).await.unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM fact_current_state").await,
        0
    );
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_the_rest_loads() {
    let w = warehouse().await;
    let b64 = |s: &str| Some(base64::engine::general_purpose::STANDARD.encode(s));
    let good = reading(20, 7, "2026-11-30T09:00:00Z", "value_int", json!(3));
    let mut wrong_type = reading(21, 7, "2026-11-30T09:01:00Z", "value_int", json!(3));
    wrong_type.1.as_mut().unwrap()["after"]["value_int"] = json!("three");
    let topic = |t: &str| format!("{PREFIX}.{t}");
    let batch = event_of_bytes(
        0,
        vec![
            (topic("entity_values_ts"), b64("{not json")),
            (topic("plugins"), b64(&json!({"plugin_id": 1}).to_string())),
            (topic("entity_values_ts"), Some("***".into())),
            (
                wrong_type.0.clone(),
                b64(&wrong_type.1.unwrap().to_string()),
            ),
            (good.0.clone(), b64(&good.1.unwrap().to_string())),
            // A tombstone is no poison.
            (topic("entity_jsonb"), None),
        ],
    );
    let report = w.loader.handle(&batch).await.unwrap();
    assert_eq!(
        report,
        Report {
            records: 6,
            changes: 1,
            loaded: 1,
            duplicates: 0,
            dead_lettered: 4
        }
    );
    let letter = |topic: &str, offset: i64| {
        let store = w.store.clone();
        let key = format!("dead-letter/cdc-loader/{topic}/0/{offset:020}.json");
        async move {
            let bytes = store
                .get(&key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key}"));
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let reasons = [
        (letter("atlas.public.entity_values_ts", 0).await, "not JSON"),
        (
            letter("atlas.public.plugins", 0).await,
            "not one the loader takes",
        ),
        (
            letter("atlas.public.entity_values_ts", 1).await,
            "not base64",
        ),
        (
            letter("atlas.public.entity_values_ts_2026_11", 0).await,
            "value_int",
        ),
    ];
    for (letter, reason) in reasons {
        let found = letter["reason"].as_str().unwrap();
        assert!(found.contains(reason), "{found:?} should say {reason:?}");
        assert!(letter["value"].is_string(), "the raw bytes are kept");
    }
    let c = w.db.owner().await;
    assert_eq!(count(&c, "SELECT count(*) FROM fact_telemetry").await, 1);
}

#[tokio::test]
async fn a_loader_killed_mid_batch_loads_everything_once_on_the_rerun() {
    let w = warehouse().await;
    let batch = event(0, &the_first_batch());
    // Let the load stage its rows and merge the dimensions, then stop it at
    // the readings and kill its connection there, as a Lambda timeout or
    // a crash would.
    // A first load applies the schema, so the lock below has a table and
    // the load under test goes straight to its batch.
    w.loader.handle(&event(100, &[tenant(1)])).await.unwrap();
    let mut blocker = w.db.owner().await;
    let tx = blocker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE fact_telemetry IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let killer = async {
        let c = w.db.owner().await;
        loop {
            let killed = count(
                &c,
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{}' AND wait_event_type = 'Lock' \
                     AND query LIKE 'UPDATE fact_telemetry%'",
                    w.db.name
                ),
            )
            .await;
            if killed > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let (first, ()) = tokio::join!(w.loader.handle(&batch), killer);
    assert!(first.is_err(), "the killed load fails: {first:?}");
    tx.rollback().await.unwrap();

    let c = w.db.owner().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM dim_attributes").await,
        0,
        "nothing of the killed load remains"
    );
    let rerun = w.loader.handle(&batch).await.unwrap();
    assert_eq!((rerun.loaded, rerun.duplicates), (3, 0));
    assert_eq!(count(&c, "SELECT count(*) FROM dim_attributes").await, 2);
    assert_eq!(
        count(&c, "SELECT sample_count FROM agg_daily_entity_stats").await,
        2
    );
}

#[tokio::test]
async fn hot_state_keeps_every_digit_postgres_had() {
    let w = warehouse().await;
    let mut exact = state(10, "online", "2026-11-30T09:30:00Z");
    // numeric(20, 5) in the projection: more digits than an f64 holds.
    exact.1.as_mut().unwrap()["after"]["hot_attrs"] =
        json!(r#"{"pressure": 123456789012345.67891, "status": "online"}"#);
    w.loader.handle(&event(0, &[exact])).await.unwrap();
    let c = w.db.owner().await;
    let pressure: String = c
        .query_one("SELECT hot_attrs->>'pressure' FROM fact_current_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pressure, "123456789012345.67891");
}

#[tokio::test]
async fn a_heartbeat_moves_the_watermark_and_nothing_else() {
    let w = warehouse().await;
    w.loader
        .handle(&event(0, &the_first_batch()))
        .await
        .unwrap();
    let beat = atlas_cdc::emit::heartbeat("atlas", COMMIT_MS + 60_000);
    let report = w
        .loader
        .handle(&event(0, &[(beat.topic, Some(beat.value))]))
        .await
        .unwrap();
    assert_eq!((report.records, report.changes, report.loaded), (1, 0, 0));
    let c = w.db.owner().await;
    let (lsn, fresh): (i64, bool) = c
        .query_one(
            "SELECT source_lsn, source_commit_at = to_timestamp($1::float8 / 1000) \
             FROM load_watermarks WHERE source = 'atlas'",
            &[&((COMMIT_MS + 60_000) as f64)],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(lsn, 23, "the LSN stays the newest change's");
    assert!(fresh, "the commit time moves to the heartbeat's");
    // An older heartbeat moves nothing back.
    let old = atlas_cdc::emit::heartbeat("atlas", COMMIT_MS);
    w.loader
        .handle(&event(1, &[(old.topic, Some(old.value))]))
        .await
        .unwrap();
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT count(*) FROM load_watermarks WHERE source_commit_at = to_timestamp({})",
                (COMMIT_MS + 60_000) as f64 / 1000.0
            )
        )
        .await,
        1
    );
}
