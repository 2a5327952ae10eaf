//! The lag checker against a real primary and a real streaming replica
//! (`pg_basebackup -R`, as `tests/replica.rs`): what it measures and
//! publishes for a healthy replica, a paused one and a stopped one, a dead
//! heartbeat writer, a staging backlog, and a CDC slot that falls behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_cloud::metrics::{MetricsSink, Sample};
use atlas_freshness::status::Published;
use atlas_freshness::{CheckerConfig, LagChecker, State};
use atlas_store::{DbConfig, DbRole, heartbeat};
use atlas_tests::{
    Standby, TestDb, atlas_bin, demo_tenants, eventually, routed_read, serving_replica,
};

/// Keeps what the checker records, to read back.
#[derive(Default)]
struct Recorded(Mutex<Vec<Sample>>);

impl MetricsSink for Recorded {
    fn record(&self, sample: &Sample) {
        self.0.lock().unwrap().push(sample.clone());
    }
}

impl Recorded {
    /// The last value recorded for `metric`.
    fn last(&self, metric: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|s| s.values.iter().find(|(n, _, _)| *n == metric).map(|v| v.1))
    }
}

fn checker(
    db: &TestDb,
    standby: Option<&Standby>,
    slot: Option<String>,
) -> (LagChecker, Arc<Recorded>) {
    let recorded = Arc::new(Recorded::default());
    let config = CheckerConfig {
        cdc_slot: slot,
        ..CheckerConfig::default()
    };
    let mut checker = LagChecker::new(db.pool(DbRole::Worker), config, recorded.clone());
    if let Some(standby) = standby {
        let replica = DbConfig::new(standby.url(&db.name), DbRole::Worker)
            .pool()
            .unwrap();
        checker = checker.with_replicas(vec![("1".into(), replica)]);
    }
    (checker, recorded)
}

fn path<'a>(rows: &'a [Published], path: &str) -> &'a Published {
    rows.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no {path} row in {rows:?}"))
}

/// Tenant 1's demo catalog and one heartbeat, on a fresh database.
async fn demo_db() -> TestDb {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    heartbeat::beat(&db.pool(DbRole::Worker), "test")
        .await
        .unwrap();
    db
}

/// `rows` readings for tenant 1 that have waited `seconds` in staging,
/// which no flusher has taken.
async fn stage_aged(db: &TestDb, rows: i64, seconds: i64) {
    db.owner()
        .await
        .execute(
            "INSERT INTO entity_values_ingest (entity_id, tenant_id, attribute_id, value_decimal, \
                                               ingested_at, staged_at) \
             SELECT g, 1, (SELECT attribute_id FROM attributes WHERE tenant_id = 1 LIMIT 1), 1.5, \
                    now() - make_interval(secs => $2), now() - make_interval(secs => $2) \
             FROM generate_series(1, $1::bigint) g",
            &[&rows, &(seconds as f64)],
        )
        .await
        .unwrap();
}

/// The table, as the owner reads it: (state, lag, detail) of `path`.
async fn published(db: &TestDb, path: &str) -> (String, Option<f64>, String) {
    let row = db
        .owner()
        .await
        .query_one(
            "SELECT state, lag_seconds, detail FROM freshness_status \
             WHERE path = $1 AND measured_at > now() - interval '1 minute'",
            &[&path],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_replica_healthy_then_paused_then_stopped() {
    let db = TestDb::new().await;
    let standby = Standby::start();
    let worker = db.pool(DbRole::Worker);
    heartbeat::beat(&worker, "test").await.unwrap();
    let (checker, recorded) = checker(&db, Some(&standby), None);

    // Healthy: it replays what the primary writes, its heartbeat with it.
    eventually(
        async || path(&checker.check().await.unwrap(), "replica:1").state == State::Green,
        "the replica to catch up",
    )
    .await;
    let f = checker.measure().await.unwrap();
    let r = &f.replicas[0];
    assert!(r.reachable && r.error.is_none(), "{r:?}");
    assert!(r.heartbeat_lag_s.unwrap() < 1.0, "{r:?}");
    assert!(r.replay_age_s.is_some(), "{r:?}");
    assert!(r.replay_distance_bytes.is_some(), "{r:?}");
    let (state, lag, _) = published(&db, "replica:1").await;
    assert_eq!(state, "green");
    assert!(lag.unwrap() < 1.0);
    assert_eq!(recorded.last("ReplicaReachable"), Some(1.0));
    assert!(recorded.last("ReplicaLagSeconds").unwrap() < 1.0);

    // Paused: the replica's heartbeat stays where it was while the
    // primary's moves on, and WAL piles up unreplayed.
    standby.pause_replay(&db.name, true).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    heartbeat::beat(&worker, "test").await.unwrap();
    let rows = checker.check().await.unwrap();
    let paused = path(&rows, "replica:1");
    assert_eq!(paused.state, State::Yellow, "{paused:?}");
    assert!(paused.lag_seconds.unwrap() >= 2.0, "{paused:?}");
    assert!(
        paused.detail.contains("bytes of WAL not yet replayed"),
        "{paused:?}"
    );
    let f = checker.measure().await.unwrap();
    assert!(f.replicas[0].replay_distance_bytes.unwrap() > 0, "{f:?}");
    assert_eq!(published(&db, "replica:1").await.0, "yellow");
    assert!(recorded.last("ReplicaLagSeconds").unwrap() >= 2.0);

    standby.pause_replay(&db.name, false).await;
    eventually(
        async || path(&checker.check().await.unwrap(), "replica:1").state == State::Green,
        "the resumed replica to catch up",
    )
    .await;

    // Stopped: unreachable, red, and still measured within its bound.
    standby.stop();
    let rows = checker.check().await.unwrap();
    let stopped = path(&rows, "replica:1");
    assert_eq!((stopped.state, stopped.lag_seconds), (State::Red, None));
    assert!(stopped.detail.starts_with("unreachable: "), "{stopped:?}");
    assert_eq!(recorded.last("ReplicaReachable"), Some(0.0));
    assert_eq!(path(&rows, "primary").state, State::Green);
    assert_eq!(published(&db, "replica:1").await.0, "red");
}

#[tokio::test]
async fn a_dead_heartbeat_writer_turns_lag_into_unknown() {
    let db = TestDb::new().await;
    let standby = Standby::start();
    let (checker, recorded) = checker(&db, Some(&standby), None);

    // No heartbeat at all.
    let rows = checker.check().await.unwrap();
    assert_eq!(path(&rows, "heartbeat").state, State::Red);
    assert!(path(&rows, "heartbeat").detail.contains("no heartbeat row"));

    // The last beat two minutes ago: once the replica has it too, both
    // agree and the lag would read zero, so it is reported as unknown.
    db.owner()
        .await
        .execute(
            "INSERT INTO replication_heartbeat (source, \"timestamp\") \
             VALUES ('test', now() - interval '2 minutes')",
            &[],
        )
        .await
        .unwrap();
    let rows = checker.check().await.unwrap();
    let beat = path(&rows, "heartbeat");
    assert_eq!(beat.state, State::Red);
    assert!(beat.lag_seconds.unwrap() >= 120.0, "{beat:?}");
    let replica = path(&rows, "replica:1");
    assert_eq!((replica.state, replica.lag_seconds), (State::Red, None));
    assert!(replica.detail.contains("heartbeat is stale"), "{replica:?}");
    assert!(recorded.last("HeartbeatAgeSeconds").unwrap() >= 120.0);
    assert_eq!(published(&db, "heartbeat").await.0, "red");

    // A fresh beat brings both back.
    heartbeat::beat(&db.pool(DbRole::Worker), "test")
        .await
        .unwrap();
    let rows = checker.check().await.unwrap();
    assert_eq!(path(&rows, "heartbeat").state, State::Green);
}

#[tokio::test]
async fn a_staging_backlog_shows_its_depth_and_age() {
    let db = demo_db().await;
    let (checker, recorded) = checker(&db, None, None);
    let rows = checker.check().await.unwrap();
    let empty = path(&rows, "staging");
    assert_eq!((empty.state, empty.lag_seconds), (State::Green, Some(0.0)));

    // 500 readings staged 90 s ago that no flusher has taken.
    stage_aged(&db, 500, 90).await;
    let rows = checker.check().await.unwrap();
    let backlog = path(&rows, "staging");
    assert_eq!(backlog.state, State::Red);
    assert!(backlog.lag_seconds.unwrap() >= 90.0, "{backlog:?}");
    assert!(
        backlog.detail.starts_with("500 readings waiting"),
        "{backlog:?}"
    );
    assert_eq!(recorded.last("StagingDepth"), Some(500.0));
    assert!(recorded.last("StagingOldestSeconds").unwrap() >= 90.0);
}

#[tokio::test]
async fn a_cdc_slot_that_falls_behind_retains_wal() {
    let db = TestDb::new().await;
    heartbeat::beat(&db.pool(DbRole::Worker), "test")
        .await
        .unwrap();
    let slot = format!("lag_{}", db.name);
    let owner = db.owner().await;

    // The slot not there yet.
    let (checker, recorded) = checker(&db, None, Some(slot.clone()));
    let missing = checker.check().await.unwrap();
    let cdc = path(&missing, "cdc");
    assert_eq!(cdc.state, State::Red);
    assert!(cdc.detail.contains("no replication slot"), "{cdc:?}");

    owner
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    let first = checker.measure().await.unwrap().cdc.unwrap();
    assert!(first.found && !first.active, "{first:?}");
    // WAL written and never read by a consumer: the slot keeps it.
    owner
        .batch_execute("SELECT pg_logical_emit_message(true, 'atlas-test', repeat('x', 1000000))")
        .await
        .unwrap();
    let rows = checker.check().await.unwrap();
    let behind = checker.measure().await.unwrap().cdc.unwrap();
    let result = async {
        assert!(
            behind.retained_bytes.unwrap() >= first.retained_bytes.unwrap() + 1_000_000,
            "{first:?} then {behind:?}"
        );
        let cdc = path(&rows, "cdc");
        assert!(
            cdc.detail
                .contains("bytes of WAL retained, no consumer connected"),
            "{cdc:?}"
        );
        assert!(recorded.last("CdcSlotRetainedBytes").unwrap() >= 1_000_000.0);
    };
    result.await;
    owner
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

/// The query API routes by what the checker published while it is recent:
/// a replica the checker cannot reach is not used even though the query
/// API could reach it, and once that mark is old the query API measures
/// for itself again.
#[tokio::test]
async fn routing_follows_the_checker_only_while_its_word_is_recent() {
    let (db, _standby, api) = serving_replica(16).await;

    // A checker that finds replica 1 unreachable (nothing listens there).
    let (checker, _) = checker(&db, None, None);
    let unreachable = DbConfig::new(
        format!("postgres://postgres@127.0.0.1:1/{}", db.name),
        DbRole::Worker,
    )
    .pool()
    .unwrap();
    let checker = checker.with_replicas(vec![("1".into(), unreachable)]);
    let rows = checker.check().await.unwrap();
    assert_eq!(path(&rows, "replica:1").state, State::Red);
    eventually(
        async || routed_read(&api, "/v1/entities/123").await.1 == "primary",
        "reads to leave the replica the checker marked down",
    )
    .await;
    let (status, _, lag, body) = routed_read(&api, "/v1/entities/123").await;
    assert_eq!((status.as_u16(), lag), (200, 0.0));
    assert_eq!(body["hot_attributes"]["temperature"], 20.5);

    // The mark grows old: not trusted, measured again, used again.
    db.owner()
        .await
        .execute(
            "UPDATE freshness_status SET measured_at = now() - interval '1 minute'",
            &[],
        )
        .await
        .unwrap();
    eventually(
        async || routed_read(&api, "/v1/entities/123").await.1 == "replica:1",
        "reads to return once the mark is stale",
    )
    .await;
}

/// `atlas status [--measure]` as a script sees it: its exit status and
/// what it prints.
fn atlas_status(db: &TestDb, measure: bool) -> (i32, String) {
    let mut cmd = std::process::Command::new(atlas_bin());
    cmd.args(["status", "--database-url", &db.url])
        .env_remove("ATLAS_REPLICA_URLS")
        .env_remove("ATLAS_CDC_SLOT")
        .env_remove("ATLAS_WAREHOUSE_URL");
    if measure {
        cmd.arg("--measure");
    }
    let out = cmd.output().expect("atlas runs");
    (
        out.status.code().expect("an exit status"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn atlas_status_exits_by_the_worst_state() {
    let db = demo_db().await;
    let (checker, _) = checker(&db, None, None);

    // Nothing published yet: nothing is known.
    let (code, out) = atlas_status(&db, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing published"), "{out}");

    // All green.
    checker.check().await.unwrap();
    let (code, out) = atlas_status(&db, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("PATH"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("staging") && l.contains("green")),
        "{out}"
    );

    // A reading waiting 5 s: yellow.
    stage_aged(&db, 1, 5).await;
    checker.check().await.unwrap();
    let (code, out) = atlas_status(&db, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("staging") && l.contains("yellow")),
        "{out}"
    );

    // One waiting 90 s: red, whether read or measured now.
    stage_aged(&db, 1, 90).await;
    assert_eq!(atlas_status(&db, true).0, 2);
    let (code, _) = atlas_status(&db, false);
    assert_eq!(code, 1, "not yet published");
    checker.check().await.unwrap();
    let (code, out) = atlas_status(&db, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("2 readings waiting for the flusher"), "{out}");
}

/// A tmux server of the test's own, killed when the test ends.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux is required for this test (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "status"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// `atlas status --watch` as a person sees it in a terminal: the table,
/// redrawn as the state changes, and Ctrl-C ending it with the last exit
/// status.
#[tokio::test]
async fn atlas_status_watch_redraws_in_a_terminal() {
    let db = demo_db().await;
    let (checker, _) = checker(&db, None, None);
    checker.check().await.unwrap();

    let tmux = Tmux(format!("atlas-{}", db.name));
    let command = format!(
        "env -u ATLAS_REPLICA_URLS -u ATLAS_CDC_SLOT -u ATLAS_WAREHOUSE_URL {} status --watch \
         --database-url {}; echo EXIT:$?; sleep 60",
        atlas_bin().display(),
        db.url
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "status",
        "-x",
        "160",
        "-y",
        "20",
        &command,
    ]);
    eventually(
        async || {
            let screen = tmux.screen();
            screen
                .lines()
                .any(|l| l.starts_with("staging") && l.contains("green"))
        },
        "the table in the terminal",
    )
    .await;
    let screen = tmux.screen();
    assert!(screen.starts_with("PATH"), "drawn from the top:\n{screen}");

    // A backlog appears; the next redraw shows it without a restart.
    stage_aged(&db, 1, 90).await;
    checker.check().await.unwrap();
    eventually(
        async || {
            tmux.screen()
                .lines()
                .any(|l| l.starts_with("staging") && l.contains("red"))
        },
        "the redraw to show the backlog",
    )
    .await;
    tmux.run(&["send-keys", "-t", "status", "C-c"]);
    eventually(
        async || tmux.screen().contains("EXIT:2"),
        "Ctrl-C to end it with status 2",
    )
    .await;
}

/// `GET /v1/status` answers what the checker published, the same for any
/// tenant, with the worst state on top.
#[tokio::test]
async fn the_api_serves_the_published_status_to_any_tenant() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let api = atlas_tests::query_api(&db);
    let get = async |tenant: &str| {
        let resp = atlas_query::http::handle(
            &api,
            atlas_tests::api_request(tenant, "GET", "/v1/status", None),
        )
        .await;
        (resp.status().as_u16(), atlas_tests::body_json(&resp))
    };
    let (code, nothing) = get("1").await;
    assert_eq!(code, 200, "{nothing}");
    assert_eq!(
        (
            nothing["state"].as_str(),
            nothing["paths"].as_array().map(Vec::len)
        ),
        (Some("red"), Some(0))
    );

    heartbeat::beat(&db.pool(DbRole::Worker), "test")
        .await
        .unwrap();
    stage_aged(&db, 1, 5).await;
    let (checker, _) = checker(&db, None, None);
    checker.check().await.unwrap();
    let (code, one) = get("1").await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(
        (one["state"].as_str(), one["label"].as_str()),
        (Some("yellow"), Some("Near real-time"))
    );
    let staging = one["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "staging")
        .unwrap();
    assert_eq!(staging["state"], "yellow");
    assert!(staging["lag_seconds"].as_f64().unwrap() >= 5.0, "{staging}");
    assert!(staging["age_seconds"].as_f64().unwrap() < 60.0, "{staging}");
    assert_eq!(staging["backlog"], 1, "one reading waits: {staging}");
    let history = staging["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "one measurement so far: {staging}");
    assert_eq!(history[0]["lag_seconds"], staging["lag_seconds"]);
    let (_, two) = get("2").await;
    let published = |body: &serde_json::Value| -> Vec<(String, String, String)> {
        body["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"].to_string(),
                    p["state"].to_string(),
                    p["measured_at"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        published(&one),
        published(&two),
        "the same for every tenant"
    );
}

/// Each check adds to the history the status page draws, which keeps the
/// last hour: a worse measurement inside a bucket is the bucket's, an
/// unknown one makes it unknown, and what is older than an hour goes.
#[tokio::test]
async fn the_history_keeps_each_buckets_worst_lag_for_an_hour() {
    let db = demo_db().await;
    let owner = db.owner().await;
    let window = Duration::from_secs(15 * 60);
    owner
        .batch_execute(
            "INSERT INTO freshness_history (path, measured_at, lag_seconds) VALUES \
               ('replica:1', now() - interval '2 hours', 99), \
               ('replica:1', date_bin('15 seconds', now() - interval '5 minutes', timestamptz 'epoch'), 0.5), \
               ('replica:1', date_bin('15 seconds', now() - interval '5 minutes', timestamptz 'epoch') + interval '5 seconds', 7), \
               ('replica:1', date_bin('15 seconds', now() - interval '2 minutes', timestamptz 'epoch'), 0.2), \
               ('replica:1', date_bin('15 seconds', now() - interval '2 minutes', timestamptz 'epoch') + interval '1 second', NULL)",
        )
        .await
        .unwrap();
    let history = atlas_freshness::status::history(&db.pool(DbRole::App), window, 60)
        .await
        .unwrap();
    let lags: Vec<Option<f64>> = history["replica:1"].iter().map(|p| p.lag_seconds).collect();
    assert_eq!(
        lags,
        [Some(7.0), None],
        "worst of each bucket, the 2 h old row outside"
    );

    let (checker, _) = checker(&db, None, None);
    checker.check().await.unwrap();
    assert_eq!(
        atlas_tests::count(
            &owner,
            "SELECT count(*) FROM freshness_history WHERE measured_at < now() - interval '1 hour'"
        )
        .await,
        0,
        "a check prunes what is older than an hour"
    );
    let history = atlas_freshness::status::history(&db.pool(DbRole::App), window, 60)
        .await
        .unwrap();
    assert_eq!(history["staging"].len(), 1, "{history:?}");
    assert_eq!(history["replica:1"].len(), 2, "kept within the hour");
}

/// The cache row: green while the machine's Redis answers, yellow with the
/// reason when it does not (reads then bypass it, so it is not red).
#[tokio::test]
async fn the_cache_is_green_while_redis_answers() {
    let db = demo_db().await;
    let redis =
        std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    for (url, state, says) in [
        (redis.as_str(), State::Green, "Redis answers in"),
        ("redis://127.0.0.1:1", State::Yellow, "unreachable ("),
    ] {
        let mut config = atlas_cache::CacheConfig::new(url);
        config.ttl = Duration::from_secs(30);
        let (checker, _) = checker(&db, None, None);
        let checker = checker.with_cache(Arc::new(atlas_cache::HotCache::new(config).unwrap()));
        let rows = checker.check().await.unwrap();
        let cache = path(&rows, "cache");
        assert_eq!(cache.state, state, "{url}: {cache:?}");
        assert!(cache.detail.starts_with(says), "{url}: {cache:?}");
        assert!(
            cache.detail.contains("30 s"),
            "the TTL bounds it: {cache:?}"
        );
    }
}

/// With `ATLAS_RDS_PRIMARY_ID`, the replicas are the primary's read
/// replicas as RDS lists them (moto stands in for RDS), named by their
/// identifiers, each at its own endpoint with the primary's login and
/// database.
#[tokio::test]
async fn replicas_are_discovered_through_rds() {
    let sdk = aws_config::load_from_env().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let primary = format!("atlas-primary-{}", fastrand::u32(..));
    rds.create_db_instance()
        .db_instance_identifier(&primary)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("atlas")
        .master_user_password("not-a-real-password")
        .send()
        .await
        .expect("an RDS API (moto at AWS_ENDPOINT_URL) is required for this test");
    for suffix in ["b", "a"] {
        rds.create_db_instance_read_replica()
            .db_instance_identifier(format!("{primary}-{suffix}"))
            .source_db_instance_identifier(&primary)
            .send()
            .await
            .unwrap();
    }

    let found = atlas_cloud::rds::read_replicas(&rds, &primary)
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [format!("{primary}-a"), format!("{primary}-b")]);
    for r in &found {
        assert!(r.host.starts_with(&r.id), "{r:?}");
        assert!(r.port > 0, "{r:?}");
    }
    let missing = atlas_cloud::rds::read_replicas(&rds, "no-such-instance").await;
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("RDS replica discovery")
    );

    // Through the lag checker's start: each discovered replica is measured
    // under its identifier (moto's endpoints lead nowhere, so unreachable).
    let db = TestDb::new().await;
    let settings = atlas_app::Settings::from_vars(|name| match name {
        "DATABASE_URL" => Some(db.url.clone()),
        "ATLAS_RDS_PRIMARY_ID" => Some(primary.clone()),
        "ATLAS_REPLICA_URLS" | "ATLAS_CDC_SLOT" | "ATLAS_WAREHOUSE_URL" => None,
        other => std::env::var(other).ok(),
    })
    .unwrap();
    let checker = atlas_app::startup::lag_checker(&settings).await.unwrap();
    let rows = checker.check().await.unwrap();
    for id in &ids {
        let row = path(&rows, &format!("replica:{id}"));
        assert_eq!(row.state, State::Red, "{row:?}");
        assert!(row.detail.starts_with("unreachable"), "{row:?}");
    }
}

/// The sampled projections hold against their latest readings; one made
/// wrong behind the flusher's back is found, counted and published.
#[tokio::test]
async fn a_wrong_hot_projection_is_found_by_the_sample() {
    let db = demo_db().await;
    let readings: Vec<serde_json::Value> = (1..=40)
        .map(|e| serde_json::json!({"entity_id": e, "attribute": "temperature", "value": 20.0 + e as f64}))
        .collect();
    atlas_tests::post_readings(&db, "1", serde_json::Value::Array(readings)).await;
    atlas_tests::flush_all(&db).await;
    let (checker, recorded) = checker(&db, None, None);

    let f = checker.measure().await.unwrap();
    assert_eq!(
        f.divergence.map(|d| (d.sampled, d.divergent)),
        Some((40, 0)),
        "a table smaller than the sample is sampled whole"
    );
    assert_eq!(
        path(&checker.check().await.unwrap(), "projection").state,
        State::Green
    );

    db.owner()
        .await
        .execute(
            "UPDATE entity_jsonb SET hot_attrs = jsonb_set(hot_attrs, '{temperature}', '-1') \
             WHERE tenant_id = 1 AND entity_id IN (3, 7)",
            &[],
        )
        .await
        .unwrap();
    let rows = checker.check().await.unwrap();
    let projection = path(&rows, "projection");
    assert_eq!(projection.state, State::Yellow, "{projection:?}");
    assert!(
        projection.detail.starts_with("2 of 40 sampled"),
        "{projection:?}"
    );
    assert_eq!(recorded.last("DivergentEntities"), Some(2.0));
}
