//! The change tap against the machine's PostgreSQL (wal_level = logical):
//! what ingest and the flusher commit reaches the local warehouse through
//! the slot and the loader, agrees with PostgreSQL, and survives restarts
//! of the tap and failures of the loader without loss.

use std::sync::Arc;

use atlas_store::{DbConfig, DbRole};
use atlas_tests::{
    TestDb, count, dead_letters, demo_tenants, flush_all, local_store, post_readings, tap,
    wal_flushed,
};
use atlas_warehouse::{Loader, PgWarehouse};
use serde_json::json;

fn loader(warehouse: &TestDb) -> Loader {
    Loader::new(
        Arc::new(PgWarehouse::new(
            DbConfig::new(&warehouse.url, DbRole::AsLogin)
                .pool()
                .unwrap(),
        )),
        dead_letters(&local_store("tap"), "cdc-loader"),
        atlas_cdc::Options::default(),
    )
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

async fn some_readings(db: &TestDb) {
    post_readings(
        db,
        "1",
        json!([
            {"entity_id": 1, "attribute": "temperature", "value": 21.5},
            {"entity_id": 1, "attribute": "status", "value": "online"},
            {"entity_id": 2, "attribute": "temperature", "value": 98765.4321},
            {"entity_id": 2, "attribute": "status", "value": "warning"},
        ]),
    )
    .await;
    post_readings(
        db,
        "2",
        json!([{"entity_id": 1, "attribute": "temperature", "value": -3}]),
    )
    .await;
    flush_all(db).await;
    wal_flushed(db).await;
}

/// A source database tapped before its demo data and readings went in,
/// and an empty warehouse with its loader.
async fn tapped_source_and_warehouse() -> (TestDb, atlas_tap::Tap, TestDb, Loader) {
    let db = TestDb::new().await;
    let tap = tap(&db).await;
    demo_tenants(&db).await;
    some_readings(&db).await;
    let warehouse = TestDb::new().await;
    let loader = loader(&warehouse);
    (db, tap, warehouse, loader)
}

#[tokio::test]
async fn what_postgres_commits_reaches_the_warehouse_and_agrees_with_it() {
    let (db, tap, warehouse, loader) = tapped_source_and_warehouse().await;
    let read = tap.read().await.unwrap();
    assert!(read.changes > 0);
    let mut loaded = 0;
    for event in &read.events {
        let report = loader.handle(event).await.unwrap();
        assert_eq!(report.dead_lettered, 0, "{report:?}");
        loaded += report.loaded;
    }
    tap.confirm(read.upto.unwrap()).await.unwrap();
    assert_eq!(loaded, 5);

    let (oltp, wh) = (db.owner().await, warehouse.owner().await);
    let values = "SELECT tenant_id::text, entity_id::text, attribute_id::text, \
                  ingested_at::text, value, value_int::text, value_decimal::text, \
                  value_bool::text, value_timestamp::text FROM {} \
                  ORDER BY tenant_id, entity_id, attribute_id, ingested_at";
    assert_eq!(
        rows(&wh, &values.replace("{}", "fact_telemetry")).await,
        rows(&oltp, &values.replace("{}", "entity_values_ts")).await
    );
    let enriched = "SELECT f.tenant_name, f.attribute_name, f.data_type, f.entity_type \
                    FROM fact_telemetry f ORDER BY tenant_id, entity_id, attribute_id";
    let expected = "SELECT t.tenant_name, a.attribute_name, a.data_type, e.entity_type \
                    FROM entity_values_ts v JOIN tenants t USING (tenant_id) \
                    JOIN attributes a ON a.tenant_id = v.tenant_id AND a.attribute_id = v.attribute_id \
                    JOIN entities e ON e.tenant_id = v.tenant_id AND e.entity_id = v.entity_id \
                    ORDER BY v.tenant_id, v.entity_id, v.attribute_id";
    assert_eq!(rows(&wh, enriched).await, rows(&oltp, expected).await);
    let stats = "SELECT tenant_id::text, entity_id::text, attribute_id::text, \
                 sample_count::text, value_sum::numeric(38, 5)::text, \
                 value_min::numeric(38, 5)::text, value_max::numeric(38, 5)::text \
                 FROM agg_daily_entity_stats ORDER BY 1, 2, 3";
    let from_oltp = "SELECT tenant_id::text, entity_id::text, attribute_id::text, \
                     count(*)::text, sum(n)::numeric(38, 5)::text, \
                     min(n)::numeric(38, 5)::text, max(n)::numeric(38, 5)::text \
                     FROM (SELECT *, coalesce(value_decimal, value_int) AS n \
                     FROM entity_values_ts) v WHERE n IS NOT NULL \
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    assert_eq!(rows(&wh, stats).await, rows(&oltp, from_oltp).await);
    let state = "SELECT tenant_id::text, entity_id::text, hot_attrs::text FROM {} ORDER BY 1, 2";
    assert_eq!(
        rows(&wh, &state.replace("{}", "fact_current_state")).await,
        rows(&oltp, &state.replace("{}", "entity_jsonb")).await
    );
    // The slot has moved on: nothing is read twice.
    let after = tap.read().await.unwrap();
    assert_eq!((after.changes, after.upto), (0, None));
}

#[tokio::test]
async fn a_tap_restart_reads_again_what_it_had_not_confirmed_and_nothing_more() {
    let db = TestDb::new().await;
    let first_tap = tap(&db).await;
    demo_tenants(&db).await;
    some_readings(&db).await;
    let offsets = |read: &atlas_tap::Read| -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = read
            .events
            .iter()
            .flat_map(|e| e.records.values().flatten())
            .map(|r| (r.topic.clone().unwrap(), r.offset))
            .collect();
        all.sort();
        all
    };
    let first = first_tap.read().await.unwrap();
    // The tap dies before the loader confirms anything.
    drop(first_tap);
    let tap = tap(&db).await;
    let again = tap.read().await.unwrap();
    assert_eq!(
        offsets(&again),
        offsets(&first),
        "the same changes, at the same offsets"
    );
    tap.confirm(again.upto.unwrap()).await.unwrap();

    post_readings(
        &db,
        "1",
        json!([{"entity_id": 3, "attribute": "temperature", "value": 7}]),
    )
    .await;
    flush_all(&db).await;
    wal_flushed(&db).await;
    let next = tap.read().await.unwrap();
    let newest_before = offsets(&again).iter().map(|o| o.1).max().unwrap();
    assert!(next.changes > 0);
    assert!(
        offsets(&next).iter().all(|o| o.1 > newest_before),
        "only what came after the confirmed position"
    );
    let topics: Vec<String> = offsets(&next).into_iter().map(|o| o.0).collect();
    assert!(
        topics.contains(&"atlas.public.entity_values_ts".to_owned()),
        "{topics:?}"
    );
}

#[tokio::test]
async fn when_the_loader_fails_the_tap_delivers_again_and_loses_nothing() {
    let (_db, tap, warehouse, loader) = tapped_source_and_warehouse().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let mut done_tx = Some(done_tx);
    let mut calls = 0;
    let loader = &loader;
    // 1: the new slot's snapshot (every row so far); 2: the slot's changes,
    // the same rows again, failing after the load as if the function timed
    // out before answering; 3: the same changes delivered again.
    let sunk = atlas_tap::run(
        &tap,
        |event| {
            // Heartbeats come while the slot is idle; this counts loads.
            let heartbeat = event
                .records
                .keys()
                .any(|k| k.starts_with("__debezium-heartbeat"));
            calls += usize::from(!heartbeat);
            let call = if heartbeat { 0 } else { calls };
            let done = if call == 3 { done_tx.take() } else { None };
            async move {
                let report = loader.handle(&event).await.map_err(|e| e.to_string())?;
                if call == 0 {
                    return Ok(());
                }
                let expected = if call == 1 { (5, 0) } else { (0, 5) };
                assert_eq!((report.loaded, report.duplicates), expected, "call {call}");
                if call == 2 {
                    return Err("the loader timed out".to_owned());
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
                Ok(())
            }
        },
        async {
            let _ = done_rx.await;
        },
    )
    .await
    .unwrap();
    assert!(sunk > 0);
    assert_eq!(calls, 3);
    let c = warehouse.owner().await;
    assert_eq!(count(&c, "SELECT count(*) FROM fact_telemetry").await, 5);
    assert_eq!(count(&c, "SELECT count(*) FROM dim_attributes").await, 18);
    assert_eq!(tap.read().await.unwrap().changes, 0);
}

#[tokio::test]
async fn a_snapshot_the_loader_refuses_drops_the_new_slot_to_start_over() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    // The slot comes after the data: only the snapshot holds it.
    let tap = tap(&db).await;
    assert!(tap.needs_snapshot());
    let err = atlas_tap::run(
        &tap,
        |_event| async { Err::<(), _>("the warehouse is down") },
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, atlas_tap::TapError::Snapshot(_)), "{err}");
    drop(tap);
    let again = atlas_tests::tap(&db).await;
    assert!(
        again.needs_snapshot(),
        "the next start takes the snapshot again"
    );
    let snapshot = again.snapshot().await.unwrap();
    assert_eq!(
        snapshot.changes,
        2 + 18,
        "the demo tenants and their catalog"
    );
}
