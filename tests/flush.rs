//! The flusher: crash safety, concurrency, hot-projection merge rules,
//! partition upkeep and per-batch metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_cloud::metrics::{Metrics, MetricsSink, Sample};
use atlas_core::{EntityId, TenantId, TypedReading, Value as Val};
use atlas_store::flush::{FlushConfig, Mode, flush_batch, flush_in, run_until};
use atlas_store::projection::{RECLUSTER_BELOW, recluster_one};
use atlas_store::{DbRole, stage};
use atlas_tests::{TestDb, count, current_partition, demo_tenants};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

async fn attr_id(db: &TestDb, tenant: i64, name: &str) -> i64 {
    db.owner()
        .await
        .query_one(
            "SELECT attribute_id FROM attributes WHERE tenant_id = $1 AND attribute_name = $2",
            &[&tenant, &name],
        )
        .await
        .unwrap()
        .get(0)
}

fn reading(entity: i64, attr: i64, value: Val, ts: DateTime<Utc>) -> TypedReading {
    TypedReading {
        entity_id: EntityId::new(entity).unwrap(),
        entity_type: None,
        attribute_id: attr,
        value,
        ts,
    }
}

/// Stages readings for one tenant through the application role, as ingest does.
async fn stage_as_app(db: &TestDb, tenant: i64, readings: &[TypedReading]) {
    let pool = db.pool(DbRole::App);
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let n = stage(&tx, &[(TenantId::new(tenant).unwrap(), readings)])
        .await
        .unwrap();
    assert_eq!(n as usize, readings.len());
    tx.commit().await.unwrap();
}

/// Batches of `batch_size` rows, whether staging's slots are being written
/// or done (never drained whole), so a test counts batches the same
/// whichever second it runs in.
fn rows_of(batch_size: i64) -> FlushConfig {
    FlushConfig {
        batch_size,
        drain_max_bytes: 0,
        ..FlushConfig::default()
    }
}

async fn drain(db: &TestDb, cfg: &FlushConfig) {
    let pool = db.pool(DbRole::Worker);
    while flush_batch(&pool, cfg).await.unwrap().moved > 0 {}
}

/// Everything staged is in the time series, `n` rows, and staging is empty.
async fn assert_flushed(owner: &tokio_postgres::Client, n: i64) {
    assert_eq!(
        count(owner, "SELECT count(*) FROM entity_values_ts").await,
        n
    );
    assert_eq!(
        count(owner, "SELECT count(*) FROM entity_values_ingest").await,
        0
    );
}

fn many(attr: i64, n: i64, base: DateTime<Utc>) -> Vec<TypedReading> {
    (0..n)
        .map(|i| {
            reading(
                i % 500,
                attr,
                Val::Int(i),
                base + chrono::Duration::microseconds(i),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_flusher_killed_mid_batch_loses_nothing_and_a_rerun_finishes() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    let base = Utc::now() - chrono::Duration::minutes(1);
    stage_as_app(&db, 1, &many(prio, 5_000, base)).await;

    // A flusher moves a batch inside its transaction and is then killed
    // before it commits.
    let pool = db.pool(DbRole::Worker);
    let mut victim = pool.get().await.unwrap();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let tx = victim.transaction().await.unwrap();
    let batch = flush_in(&tx, &rows_of(2_000), Mode::Fast).await.unwrap();
    assert_eq!(batch.moved, 2_000);
    let owner = db.owner().await;
    owner
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(
        tx.commit().await.is_err(),
        "the killed flusher cannot commit"
    );
    drop(victim);

    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        5_000,
        "nothing left staging"
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        0,
        "nothing half-moved"
    );
    drain(
        &db,
        &FlushConfig {
            batch_size: 1_500,
            ..FlushConfig::default()
        },
    )
    .await;
    assert_flushed(&owner, 5_000).await;
}

#[tokio::test]
async fn concurrent_flushers_neither_lose_nor_duplicate() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let (prio, temp) = (
        attr_id(&db, 1, "priority").await,
        attr_id(&db, 1, "temperature").await,
    );
    let base = Utc::now() - chrono::Duration::minutes(2);
    let mut rows = many(prio, 20_000, base);
    // Replays of part of the data, staged again, must not double up.
    rows.extend(many(prio, 2_000, base));
    // Many updates of the same hot key across batches: the newest must win.
    rows.extend((0..3_000).map(|i| {
        reading(
            7,
            temp,
            Val::Decimal(i.into()),
            base + chrono::Duration::milliseconds(i),
        )
    }));
    fastrand::shuffle(&mut rows);
    for chunk in rows.chunks(5_000) {
        stage_as_app(&db, 1, chunk).await;
    }

    let cfg = FlushConfig {
        batch_size: 700,
        ..FlushConfig::default()
    };
    let flushers: Vec<_> = (0..4)
        .map(|_| {
            let pool = db.pool(DbRole::Worker);
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let mut moved = 0;
                loop {
                    let b = flush_batch(&pool, &cfg).await.unwrap();
                    if b.moved == 0 {
                        return moved;
                    }
                    moved += b.moved;
                }
            })
        })
        .collect();
    let mut moved = 0;
    for f in flushers {
        moved += f.await.unwrap();
    }
    drain(&db, &cfg).await; // anything a flusher skipped while another held it
    assert_eq!(moved, 25_000, "each staged row was moved exactly once");
    let owner = db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        0
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        23_000
    );
    let hot: Value = owner
        .query_one(
            "SELECT hot_attrs FROM entity_jsonb WHERE tenant_id = 1 AND entity_id = 7",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        hot["temperature"],
        json!(2999.0),
        "the newest reading wins, whatever the flush order"
    );
}

#[tokio::test]
async fn an_older_reading_never_overwrites_a_newer_hot_value() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let (status, temp) = (
        attr_id(&db, 1, "status").await,
        attr_id(&db, 1, "temperature").await,
    );
    let now = Utc::now();
    stage_as_app(
        &db,
        1,
        &[reading(1, status, Val::String("online".into()), now)],
    )
    .await;
    drain(&db, &FlushConfig::default()).await;
    stage_as_app(
        &db,
        1,
        &[
            reading(
                1,
                status,
                Val::String("offline".into()),
                now - chrono::Duration::minutes(5),
            ),
            reading(
                1,
                temp,
                Val::Decimal(20.into()),
                now - chrono::Duration::minutes(5),
            ),
        ],
    )
    .await;
    drain(&db, &FlushConfig::default()).await;
    let owner = db.owner().await;
    let row = owner
        .query_one(
            "SELECT hot_attrs, updated_at FROM entity_jsonb WHERE tenant_id = 1 AND entity_id = 1",
            &[],
        )
        .await
        .unwrap();
    let hot: Value = row.get(0);
    assert_eq!(
        hot,
        json!({"status": "online", "temperature": 20.0}),
        "old status ignored, new key merged"
    );
    let updated: DateTime<Utc> = row.get(1);
    assert!(
        (updated - now).num_milliseconds().abs() < 1,
        "updated_at never moves backwards"
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        3,
        "history keeps everything"
    );
}

#[tokio::test]
async fn a_reading_whose_month_has_no_partition_is_kept_until_one_exists() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    let owner = db.owner().await;
    // Lose this month's partition (as if upkeep never ran), then flush.
    let part = current_partition(&owner).await;
    owner
        .batch_execute(&format!("DROP TABLE {part}"))
        .await
        .unwrap();
    stage_as_app(&db, 1, &[reading(1, prio, Val::Int(3), Utc::now())]).await;
    drain(&db, &FlushConfig::default()).await;
    assert_flushed(&owner, 1).await;
}

/// Waits until no slot holding rows is still being written (staging's
/// slots are seconds of the time a staging statement starts).
async fn until_drainable(owner: &tokio_postgres::Client) {
    for _ in 0..200 {
        let young: i64 = owner
            .query_one(
                "SELECT count(*) FROM generate_series(0, 15) s \
                 WHERE pg_relation_size(format('entity_values_ingest_%s', s)::regclass) > 0 \
                   AND s = atlas_staging_slot()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if young == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("staging's slots never aged");
}

/// A database with `n` readings staged in a slot whose second is over.
async fn staged_and_done(n: i64) -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    stage_as_app(&db, 1, &many(prio, n, Utc::now())).await;
    let owner = db.owner().await;
    until_drainable(&owner).await;
    (db, owner)
}

async fn slot_bytes(owner: &tokio_postgres::Client) -> i64 {
    owner
        .query_one(
            "SELECT sum(pg_relation_size(format('entity_values_ingest_%s', s)::regclass))::bigint \
             FROM generate_series(0, 15) s",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_aged_slot_is_drained_whole_and_emptied_and_a_rollback_keeps_it() {
    let (db, owner) = staged_and_done(3_000).await;

    let pool = db.pool(DbRole::Worker);
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let b = flush_in(&tx, &FlushConfig::default(), Mode::Fast)
        .await
        .unwrap();
    assert!(b.drained, "{b:?}");
    assert_eq!(b.moved, 3_000);
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        3_000,
        "a drain that does not commit leaves its slot as it was"
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        0
    );

    let b = flush_batch(&pool, &FlushConfig::default()).await.unwrap();
    assert!(b.drained && b.moved == 3_000, "{b:?}");
    assert_flushed(&owner, 3_000).await;
    assert_eq!(slot_bytes(&owner).await, 0, "emptied by TRUNCATE");
}

#[tokio::test]
async fn a_slot_bigger_than_a_batch_goes_in_batches_under_its_lock_then_is_emptied() {
    let (db, owner) = staged_and_done(3_000).await;
    let pool = db.pool(DbRole::Worker);
    let cfg = FlushConfig {
        batch_size: 1_000,
        drain_max_bytes: 64 << 10,
        ..FlushConfig::default()
    };
    let mut moved = Vec::new();
    loop {
        let b = flush_batch(&pool, &cfg).await.unwrap();
        assert!(!b.drained, "3,000 staged rows take more than 64 KiB");
        if b.moved == 0 {
            break;
        }
        moved.push(b.moved);
    }
    assert_eq!(moved, [1_000, 1_000, 1_000]);
    assert_flushed(&owner, 3_000).await;
    assert_eq!(slot_bytes(&owner).await, 0, "emptied once it ran dry");
}

/// A writer may still be staging into a slot whose second is over: the
/// drain's table lock waits for it, so its rows are part of the drain.
#[tokio::test]
async fn a_drain_waits_for_a_writer_still_in_its_slot_and_loses_nothing() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    let app = db.pool(DbRole::App);
    let mut writer = app.get().await.unwrap();
    let writer_tx = writer.transaction().await.unwrap();
    let rows = many(prio, 100, Utc::now());
    stage(&writer_tx, &[(TenantId::new(1).unwrap(), &rows)])
        .await
        .unwrap();
    let owner = db.owner().await;
    until_drainable(&owner).await;

    let worker = db.pool(DbRole::Worker);
    let drain =
        tokio::spawn(async move { flush_batch(&worker, &FlushConfig::default()).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !drain.is_finished(),
        "the drain waits for the writer in its slot"
    );
    writer_tx.commit().await.unwrap();
    let drain = tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("the drain goes on once the writer commits")
        .unwrap();
    assert!(drain.drained && drain.moved == 100, "{drain:?}");
    assert_flushed(&owner, 100).await;
}

/// Rows flushed one by one from the slot being written leave dead rows
/// behind; once that slot's second is over, the next batch empties it and
/// goes on to the rows staged since, in the same batch.
#[tokio::test]
async fn a_slot_left_with_dead_rows_is_emptied_on_the_way_to_younger_rows() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    let owner = db.owner().await;
    let pool = db.pool(DbRole::Worker);
    let base = Utc::now();
    stage_as_app(&db, 1, &many(prio, 200, base)).await;
    drain(&db, &FlushConfig::default()).await;
    until_drainable(&owner).await;
    assert!(slot_bytes(&owner).await > 0, "dead rows keep their pages");
    stage_as_app(&db, 1, &many(prio, 30, base + chrono::Duration::seconds(5))).await;
    let b = flush_batch(&pool, &FlushConfig::default()).await.unwrap();
    assert_eq!(b.moved, 30, "{b:?}");
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        230
    );
}

#[tokio::test]
async fn two_flushers_never_drain_the_same_slot() {
    let (db, owner) = staged_and_done(500).await;
    let pool = db.pool(DbRole::Worker);
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let tx_a = a.transaction().await.unwrap();
    assert_eq!(
        flush_in(&tx_a, &FlushConfig::default(), Mode::Fast)
            .await
            .unwrap()
            .moved,
        500
    );
    // The second flusher passes the held slot over instead of waiting.
    let tx_b = b.transaction().await.unwrap();
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        flush_in(&tx_b, &FlushConfig::default(), Mode::Fast),
    )
    .await
    .expect("a held slot is passed over, not waited for")
    .unwrap();
    assert_eq!(other.moved, 0);
    tx_b.commit().await.unwrap();
    tx_a.commit().await.unwrap();
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ts").await,
        500
    );
}

#[derive(Default)]
struct Capture(Mutex<Vec<Sample>>);

impl MetricsSink for Capture {
    fn record(&self, sample: &Sample) {
        self.0.lock().unwrap().push(sample.clone());
    }
}

#[tokio::test]
async fn the_loop_stops_before_its_deadline_and_reports_each_batch() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let prio = attr_id(&db, 1, "priority").await;
    stage_as_app(
        &db,
        1,
        &many(prio, 2_500, Utc::now() - chrono::Duration::seconds(10)),
    )
    .await;
    let capture = Arc::new(Capture::default());
    let metrics: Metrics = capture.clone();
    let cfg = FlushConfig {
        idle_interval: Duration::from_millis(100),
        stop_margin: Duration::from_millis(200),
        ..rows_of(1_000)
    };
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let totals = run_until(&db.pool(DbRole::Worker), &cfg, deadline, &metrics, None)
        .await
        .unwrap();
    assert!(Instant::now() < deadline, "returned before the deadline");
    assert_eq!(totals.moved, 2_500);
    let samples = capture.0.lock().unwrap();
    assert_eq!(samples.len(), 3, "one sample per non-empty batch");
    let value = |s: &Sample, name: &str| s.values.iter().find(|(n, _, _)| *n == name).map(|v| v.1);
    assert_eq!(
        samples
            .iter()
            .map(|s| value(s, "RowsMoved").unwrap())
            .sum::<f64>(),
        2_500.0
    );
    for s in samples.iter() {
        for name in ["BatchMs", "StagingDepth", "FlushLagMs"] {
            assert!(value(s, name).is_some(), "{name} missing");
        }
    }
}

#[tokio::test]
async fn max_run_caps_a_run_with_a_distant_deadline() {
    let db = TestDb::new().await;
    let cfg = FlushConfig {
        idle_interval: Duration::from_millis(100),
        stop_margin: Duration::from_millis(100),
        max_run: Some(Duration::from_millis(400)),
        ..FlushConfig::default()
    };
    let started = Instant::now();
    let metrics: Metrics = Arc::new(Capture::default());
    let far = started + Duration::from_secs(600);
    let totals = run_until(&db.pool(DbRole::Worker), &cfg, far, &metrics, None)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "returned after {:?}",
        started.elapsed()
    );
    assert!(totals.batches >= 1);
}

/// The batch fetches its claimed rows by ctid. A generic plan, made once and
/// kept for the connection's life, may have been made while staging was
/// small: it then scans staging and tests every row against the whole ctid
/// array, which PostgreSQL hashes only for a constant (10,000 rows of one
/// request took 9 s under Schemathesis). So the batch is always planned
/// with its own array.
#[tokio::test]
async fn a_batch_is_never_run_on_a_generic_plan() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let pool = db.pool(DbRole::Worker);
    let mut client = pool.get().await.unwrap();
    // The worst case: the session asks for generic plans from the start.
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let prio = attr_id(&db, 1, "priority").await;
    // Small batches first, so a plan could be made while staging is small.
    for round in 0..4 {
        let n = if round == 3 { 10_000 } else { 10 };
        stage_as_app(&db, 1, &many(prio, n, Utc::now())).await;
        let tx = client.transaction().await.unwrap();
        let moved = flush_in(&tx, &FlushConfig::default(), Mode::Fast)
            .await
            .unwrap()
            .moved;
        tx.commit().await.unwrap();
        assert_eq!(moved, n);
    }
    let row = client
        .query_one(
            "SELECT sum(generic_plans)::bigint, sum(custom_plans)::bigint FROM pg_prepared_statements \
             WHERE ltrim(statement, E' \\n') LIKE 'WITH moved AS%'",
            &[],
        )
        .await
        .unwrap();
    let (generic, custom): (i64, i64) = (row.get(0), row.get(1));
    // A batch may also run over a slot left with dead rows only (moving
    // none), so at least one custom plan per round.
    assert_eq!(generic, 0, "generic plans of the batch statements");
    assert!(
        custom >= 4,
        "custom plans of the batch statements: {custom}"
    );
}

/// Projection rows arrive interleaved across the tenants of a partition;
/// the idle flusher rewrites a partition so out of order in tenant order,
/// once, and then leaves it alone.
#[tokio::test]
async fn an_idle_flusher_puts_a_projection_partition_back_in_tenant_order() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    // 12,000 rows of ten tenants that all hash to partition 0, in turn.
    owner
        .batch_execute(
            "INSERT INTO entity_jsonb (entity_id, tenant_id, hot_attrs, hot_attrs_ts) \
             SELECT g, s.ids[g % 10 + 1], '{}', '{}' FROM generate_series(1, 12000) g, \
                  (SELECT array_agg(t) AS ids FROM \
                       (SELECT t::bigint FROM generate_series(1, 5000) t \
                        WHERE satisfies_hash_partition('entity_jsonb'::regclass, 64, 0, t::bigint) \
                        LIMIT 10) ten) s; \
             ANALYZE entity_jsonb_p0",
        )
        .await
        .unwrap();
    let correlation = || async {
        owner
            .query_one(
                "SELECT correlation::float8 FROM pg_stats \
                 WHERE tablename = 'entity_jsonb_p0' AND attname = 'tenant_id'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, f64>(0)
    };
    assert!(
        correlation().await < RECLUSTER_BELOW,
        "interleaved to begin with"
    );

    let pool = db.pool(DbRole::Worker);
    let cfg = FlushConfig {
        idle_interval: Duration::from_millis(100),
        stop_margin: Duration::ZERO,
        recluster_headroom: Duration::from_millis(500),
        ..FlushConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(1_500);
    run_until(
        &pool,
        &cfg,
        deadline,
        &atlas_cloud::metrics::from_env("Atlas"),
        None,
    )
    .await
    .unwrap();
    assert!(correlation().await > 0.99, "in tenant order after the run");
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_jsonb_p0").await,
        12_000,
        "the rewrite keeps every row"
    );
    assert_eq!(
        recluster_one(&pool, RECLUSTER_BELOW, 0).await.unwrap(),
        None,
        "nothing else is out of order"
    );
}
