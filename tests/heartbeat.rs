//! The heartbeat against a real PostgreSQL: it beats on its interval until
//! shortly before the deadline, prunes what is past retention, and two runs
//! at once get along.

use std::time::{Duration, Instant};

use atlas_store::DbRole;
use atlas_store::heartbeat::{HeartbeatConfig, beat_until};
use atlas_tests::{TestDb, count};

fn fast() -> HeartbeatConfig {
    HeartbeatConfig {
        interval: Duration::from_millis(100),
        stop_margin: Duration::from_millis(200),
        ..HeartbeatConfig::default()
    }
}

#[tokio::test]
async fn it_beats_on_its_interval_until_the_margin_before_the_deadline() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Worker);
    let started = Instant::now();
    let beats = beat_until(&pool, &fast(), started + Duration::from_millis(1200))
        .await
        .unwrap();
    // Beats at 0, 100, ..., 900 ms: the next one would fall inside the margin.
    assert_eq!(beats.written, 10, "{beats:?}");
    // None comes early: the schedule spans at least 900 ms (a late beat
    // only makes the next one follow it closely, so no gap is checked).
    let owner = db.owner().await;
    let span: f64 = owner
        .query_one(
            "SELECT extract(epoch FROM max(\"timestamp\") - min(\"timestamp\"))::float8 \
             FROM replication_heartbeat WHERE source = 'primary'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(span >= 0.8, "beats spanned only {span} s");
    // A deadline already inside the margin still leaves one beat.
    let beats = beat_until(&pool, &fast(), Instant::now()).await.unwrap();
    assert_eq!(beats.written, 1);
}

#[tokio::test]
async fn old_rows_are_pruned_and_recent_ones_kept() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    owner
        .batch_execute(
            "INSERT INTO replication_heartbeat (\"timestamp\", source) \
             SELECT now() - interval '2 days' - make_interval(secs => g), 'primary' \
             FROM generate_series(1, 25000) g; \
             INSERT INTO replication_heartbeat (\"timestamp\", source) VALUES (now() - interval '1 hour', 'primary')",
        )
        .await
        .unwrap();
    let beats = beat_until(&db.pool(DbRole::Worker), &fast(), Instant::now())
        .await
        .unwrap();
    assert_eq!(beats.pruned, 25_000, "pruned in batches until none is left");
    assert_eq!(
        count(&owner, "SELECT count(*) FROM replication_heartbeat").await,
        2
    );
}

#[tokio::test]
async fn two_runs_at_once_both_beat_and_prune_once() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    owner
        .batch_execute(
            "INSERT INTO replication_heartbeat (\"timestamp\", source) \
             SELECT now() - interval '2 days', 'primary' FROM generate_series(1, 500)",
        )
        .await
        .unwrap();
    let pool = db.pool(DbRole::Worker);
    let deadline = Instant::now() + Duration::from_millis(700);
    let (cfg_a, cfg_b) = (fast(), fast());
    let (a, b) = tokio::join!(
        beat_until(&pool, &cfg_a, deadline),
        beat_until(&pool, &cfg_b, deadline)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.written >= 4 && b.written >= 4, "{a:?} {b:?}");
    assert_eq!(a.pruned + b.pruned, 500);
    assert_eq!(
        count(&owner, "SELECT count(*) FROM replication_heartbeat").await,
        (a.written + b.written) as i64
    );
}
