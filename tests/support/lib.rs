//! Shared set-up for the black-box tests: a fresh, migrated database per
//! test on the real PostgreSQL server, dropped again when the test ends.
//!
//! The server comes from `ATLAS_TEST_DATABASE_URL` (default: the machine's
//! local server). If it is unreachable the test fails; nothing is skipped.

pub mod browser;
pub mod dev;

use std::sync::atomic::{AtomicU32, Ordering};

use atlas_core::AcceptWindow;
use atlas_store::{DbConfig, DbRole, Pool};
use tokio_postgres::NoTls;

pub fn server_url() -> String {
    std::env::var("ATLAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDb {
    pub name: String,
    /// The owner's URL (the login that ran the migrations).
    pub url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new() -> Self {
        let name = format!(
            "atlas_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin = server_url();
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is required for this test and is unreachable: {e}")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = atlas_store::with_database(&admin, &name);
        atlas_store::migrate(
            &DbConfig::new(&url, DbRole::AsLogin),
            &AcceptWindow::default(),
        )
        .await
        .expect("migrations apply");
        Self { name, url }
    }

    pub fn pool(&self, role: DbRole) -> Pool {
        DbConfig::new(&self.url, role).pool().expect("pool")
    }

    /// A direct connection as the owner (superuser locally): it bypasses
    /// RLS, so use it only to inspect results, never to test isolation.
    pub async fn owner(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect owner");
        tokio::spawn(conn);
        client
    }

    /// Sets `tenants.is_active = false`, as an operator would.
    pub async fn deactivate(&self, tenant: i64) {
        self.owner()
            .await
            .execute(
                "UPDATE tenants SET is_active = false WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .expect("deactivate the tenant");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (server_url(), self.name.clone());
        // Drop runs outside any async context we can borrow; a short-lived
        // runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls).await.ok()?;
                tokio::spawn(conn);
                // A change tap's slot would keep the database (and WAL)
                // alive; its session goes first, waited for, so the slot is
                // free to drop.
                client
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid(); \
                         SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                         WHERE database = '{name}' AND NOT active"
                    ))
                    .await
                    .ok()?;
                // Alone: DROP DATABASE cannot run in a multi-statement
                // batch. `atlas dev` keeps its warehouse beside the database.
                client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {name}_warehouse WITH (FORCE)"
                    ))
                    .await
                    .ok()?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A change tap on `db`'s `atlas_cdc` publication, through its own
/// connection as the owner; its slot goes with the database.
pub async fn tap(db: &TestDb) -> atlas_tap::Tap {
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls)
        .await
        .expect("connect the tap");
    tokio::spawn(conn);
    let cfg = atlas_tap::TapConfig {
        slot: db.name.clone(),
        ..atlas_tap::TapConfig::default()
    };
    atlas_tap::Tap::new(client, cfg)
        .await
        .expect("the tap needs wal_level = logical (.ci/test sets it)")
}

/// The server's own message for a database error ("db error" alone says nothing).
pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// An API Gateway v2 event for `POST /v1/telemetry`, built from the sample
/// in `events/` with this body and tenant claim (`None`: no claim at all).
pub fn apigw_request(tenant_claim: Option<&str>, body: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&apigw_event(tenant_claim, body).to_string())
        .expect("valid event")
}

pub fn apigw_event(tenant_claim: Option<&str>, body: &str) -> serde_json::Value {
    let mut event = fixture("apigw-post-telemetry.json");
    event["body"] = body.into();
    // Every scope, unless a test narrows them (`with_scopes`).
    event["requestContext"]["authorizer"]["jwt"]["scopes"] =
        serde_json::json!(["telemetry:write", "read", "admin"]);
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    match tenant_claim {
        Some(t) => claims["tenant_id"] = t.into(),
        None => {
            claims
                .as_object_mut()
                .expect("claims object")
                .remove("tenant_id");
        }
    }
    event
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The response body as JSON.
pub fn body_json(resp: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// Tenants 1 and 2 with the demo catalog, as `atlas dev` creates them.
pub async fn demo_tenants(db: &TestDb) {
    let pool = db.pool(atlas_store::DbRole::Worker);
    let client = pool.get().await.expect("worker connection");
    atlas_devstack::demo::seed(&**client, &[1, 2])
        .await
        .expect("demo data");
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The name of this month's `entity_values_ts` partition.
pub async fn current_partition(client: &tokio_postgres::Client) -> String {
    client
        .query_one(
            "SELECT format('entity_values_ts_%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))",
            &[],
        )
        .await
        .expect("partition name")
        .get(0)
}

/// An API Gateway v2 request for any route of the API, with `body` passed
/// base64-encoded as API Gateway does for binary payloads.
pub fn api_request(
    tenant: &str,
    method: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
) -> lambda_http::Request {
    api_request_scoped(
        tenant,
        &["telemetry:write", "read", "admin"],
        method,
        path_and_query,
        body,
    )
}

/// `api_request` with a token that carries only `scopes`.
pub fn api_request_scoped(
    tenant: &str,
    scopes: &[&str],
    method: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
) -> lambda_http::Request {
    use base64::Engine;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut event = apigw_event(Some(tenant), "");
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = serde_json::json!(scopes);
    event["routeKey"] = format!("{method} {path}").into();
    event["rawPath"] = path.into();
    event["rawQueryString"] = query.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    match body {
        Some(b) => {
            event["body"] = base64::engine::general_purpose::STANDARD.encode(b).into();
            event["isBase64Encoded"] = true.into();
        }
        None => {
            event.as_object_mut().expect("event object").remove("body");
        }
    }
    lambda_http::request::from_str(&event.to_string()).expect("valid event")
}

/// An object store on the S3 API (moto in CI), in a fresh bucket. Needs
/// `AWS_ENDPOINT_URL` and credentials as `.ci/test` sets them; fails
/// loudly when the endpoint is unreachable.
pub async fn s3_store() -> std::sync::Arc<dyn atlas_objects::ObjectStore> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: these tests need an S3 endpoint such as moto \
             (`moto_server -p 4566`, then AWS_ENDPOINT_URL=http://127.0.0.1:4566; see .ci/test)"
        )
    });
    let bucket = format!(
        "atlas-t-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    );
    let store = atlas_objects::S3Store::connect(&bucket, "").await;
    store
        .create_bucket_if_missing()
        .await
        .unwrap_or_else(|e| panic!("the S3 endpoint {endpoint} is required and failed: {e}"));
    std::sync::Arc::new(store)
}

/// An example plugin built by `plugins/build.sh`.
pub fn example_plugin(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../plugins/target/wasm32-unknown-unknown/release/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; build the examples first with `bash plugins/build.sh`")
    })
}

/// An MSK event from the sample in `events/` with these records:
/// (offset, record key, body, `tenant_id` header).
pub fn msk_event(records: Vec<(i64, &str, serde_json::Value, Option<i64>)>) -> serde_json::Value {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut event = fixture("msk-raw-telemetry.json");
    let now = chrono::Utc::now().timestamp_millis();
    let recs: Vec<serde_json::Value> = records
        .into_iter()
        .map(|(offset, tenant, body, header)| {
            let headers = match header {
                Some(t) => serde_json::json!([{"tenant_id": t.to_string().bytes().collect::<Vec<u8>>()}]),
                None => serde_json::json!([]),
            };
            serde_json::json!({"topic": "atlas.raw-telemetry", "partition": 0, "offset": offset, "timestamp": now - 1000,
                   "timestampType": "CREATE_TIME", "key": b64(tenant), "value": b64(&body.to_string()),
                   "headers": headers})
        })
        .collect();
    event["records"] = serde_json::json!({ "atlas.raw-telemetry-0": recs });
    event
}

/// Posts `readings` for `tenant` through the ingest handler; they must all
/// be accepted. Flushing is left to the caller.
pub async fn post_readings(db: &TestDb, tenant: &str, readings: serde_json::Value) {
    let ingest = atlas_ingest::IngestService::new(
        db.pool(DbRole::App),
        atlas_ingest::IngestConfig::default(),
    );
    let body = serde_json::json!({ "readings": readings }).to_string();
    let resp = atlas_ingest::http::handle(
        &ingest,
        api_request(tenant, "POST", "/v1/telemetry", Some(body.as_bytes())),
    )
    .await;
    assert_eq!(
        resp.status(),
        http::StatusCode::ACCEPTED,
        "{}",
        body_json(&resp)
    );
}

/// Posts tenant 1's entity 123's temperature (not flushed).
pub async fn post_temperature(db: &TestDb, value: f64) {
    let reading =
        serde_json::json!([{"entity_id": 123, "attribute": "temperature", "value": value}]);
    post_readings(db, "1", reading).await;
}

/// A database with the demo tenants and tenant 1's entity 123 flushed at
/// `temperature`.
pub async fn db_with_entity_123(temperature: f64) -> TestDb {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    post_temperature(&db, temperature).await;
    flush_all(&db).await;
    db
}

/// Waits until the WAL is on disk: the tap reads no further, and the
/// flusher commits without waiting for that (`synchronous_commit = off`),
/// so its changes reach the tap up to `wal_writer_delay` later. A commit
/// that wrote WAL flushes everything before it (one that only took a
/// transaction id would not wait).
pub async fn wal_flushed(db: &TestDb) {
    db.owner()
        .await
        .batch_execute("BEGIN; SELECT pg_logical_emit_message(true, 'atlas-test', 'flush'); COMMIT")
        .await
        .unwrap();
}

/// Runs the flusher until staging is empty.
pub async fn flush_all(db: &TestDb) {
    let pool = db.pool(atlas_store::DbRole::Worker);
    let cfg = atlas_store::flush::FlushConfig::default();
    while atlas_store::flush::flush_batch(&pool, &cfg)
        .await
        .expect("flush")
        .moved
        > 0
    {}
}

/// The query API over `db`, with plugins kept in a fresh local directory.
pub fn query_api(db: &TestDb) -> atlas_query::QueryApi {
    query_api_with(db, atlas_query::QueryConfig::default())
}

/// An object store in a fresh local directory.
pub fn local_store(purpose: &str) -> std::sync::Arc<dyn atlas_objects::ObjectStore> {
    std::sync::Arc::new(atlas_objects::LocalDir::new(std::env::temp_dir().join(
        format!(
            "atlas-{purpose}-test-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ),
    )))
}

/// `pipeline`'s dead letters kept in `store`, metrics to the log.
pub fn dead_letters(
    store: &std::sync::Arc<dyn atlas_objects::ObjectStore>,
    pipeline: &'static str,
) -> atlas_msk::DeadLetters {
    atlas_msk::DeadLetters::new(
        store.clone(),
        std::sync::Arc::new(atlas_cloud::metrics::TracingSink),
        pipeline,
    )
}

/// The dead letter of offset `offset` in partition 0 of `msk_event`'s topic.
pub async fn dead_letter(
    store: &std::sync::Arc<dyn atlas_objects::ObjectStore>,
    offset: i64,
) -> Option<serde_json::Value> {
    let key = format!("dead-letter/ingest/atlas.raw-telemetry/0/{offset:020}.json");
    store
        .get(&key)
        .await
        .expect("object store")
        .map(|b| serde_json::from_slice(&b).expect("a dead letter is JSON"))
}

pub fn query_api_with(db: &TestDb, config: atlas_query::QueryConfig) -> atlas_query::QueryApi {
    let objects = local_store("query");
    atlas_query::QueryApi::new(
        db.pool(DbRole::App),
        atlas_plugins::Registry::new(
            db.pool(DbRole::App),
            objects,
            atlas_plugin_host::Host::new().expect("plugin host"),
        ),
        config,
    )
}

/// A streaming replica of the test server, on its own port (run by the
/// `postgres` user when we are root). Stopped and removed on drop.
/// The query API with `standby` as its replica "1", measuring often and
/// quick to give up on a replica, as the routing tests want it.
pub fn routed_api(db: &TestDb, standby: &Standby, fallback_max: usize) -> atlas_query::QueryApi {
    let config = atlas_query::QueryConfig {
        routing: atlas_query::routing::RoutingConfig {
            max_lag: std::time::Duration::from_secs(2),
            lag_check: std::time::Duration::from_millis(100),
            retry_after: std::time::Duration::from_secs(1),
            fallback_max,
            ..Default::default()
        },
        ..Default::default()
    };
    let replica = DbConfig::new(standby.url(&db.name), DbRole::App)
        .pool()
        .unwrap();
    query_api_with(db, config).with_replicas(vec![atlas_query::routing::Replica::new("1", replica)])
}

/// Tenant 1's GET of `path`: status, `x-data-source`, `x-data-lag-seconds`
/// (-1 when absent) and the body.
pub async fn routed_read(
    api: &atlas_query::QueryApi,
    path: &str,
) -> (http::StatusCode, String, f64, serde_json::Value) {
    let resp = atlas_query::http::handle(api, api_request("1", "GET", path, None)).await;
    let h = resp.headers();
    let source = h
        .get("x-data-source")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let lag = h
        .get("x-data-lag-seconds")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .unwrap_or(-1.0);
    (resp.status(), source, lag, body_json(&resp))
}

/// Entity 123 at 20.5 on the primary, a standby, one heartbeat, and the
/// routed query API once the replica serves its eventual reads.
pub async fn serving_replica(fallback_max: usize) -> (TestDb, Standby, atlas_query::QueryApi) {
    let db = db_with_entity_123(20.5).await;
    let standby = Standby::start();
    atlas_store::heartbeat::beat(&db.pool(DbRole::Worker), "test")
        .await
        .unwrap();
    let api = routed_api(&db, &standby, fallback_max);
    eventually(
        async || routed_read(&api, "/v1/entities/123").await.1 == "replica:1",
        "the replica to serve eventual reads",
    )
    .await;
    (db, standby, api)
}

/// The `atlas` binary beside the test executables.
pub fn atlas_bin() -> std::path::PathBuf {
    // target/<profile>/deps/<test>-<hash> → target/<profile>/atlas
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("atlas");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

/// Polls `check` for up to 60 s. What it waits for (a standby replaying,
/// a router retrying a replica it skipped) takes seconds when the machine
/// is idle and far longer when both cores are busy, and a test must not
/// depend on the machine's speed.
pub async fn eventually(mut check: impl AsyncFnMut() -> bool, what: &str) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

pub struct Standby {
    cluster: atlas_devstack::cluster::Cluster,
    dir: std::path::PathBuf,
}

impl Standby {
    pub fn start() -> Self {
        let admin: tokio_postgres::Config = server_url().parse().expect("server URL");
        let host = match admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = admin.get_ports().first().copied().unwrap_or(5432);
        let user = admin.get_user().unwrap_or("postgres").to_owned();
        // Several tests of one binary may each start one at once.
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("atlas-standby-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let own_port = (20000 + ((pid % 4000) * 5 + n) % 20000) as u16;
        let cluster =
            atlas_devstack::cluster::Cluster::replica_of((&host, port, &user), &dir, own_port)
                .unwrap_or_else(|e| {
                    panic!(
                        "a streaming replica is required for this test: {e} \
                         (.ci/test adds `host replication all 127.0.0.1/32 trust` to pg_hba.conf)"
                    )
                });
        Self { cluster, dir }
    }

    /// Database `db` on this standby.
    pub fn url(&self, db: &str) -> String {
        self.cluster.url_of(db)
    }

    /// Pauses (or resumes) WAL replay, as `postgres` on the standby.
    pub async fn pause_replay(&self, db: &str, paused: bool) {
        let (admin, conn) = tokio_postgres::connect(&self.url(db), NoTls)
            .await
            .expect("the standby accepts connections");
        tokio::spawn(conn);
        let call = if paused {
            "SELECT pg_wal_replay_pause()"
        } else {
            "SELECT pg_wal_replay_resume()"
        };
        admin.batch_execute(call).await.unwrap();
    }

    /// Stops the standby at once, as a crash would.
    pub fn stop(&self) {
        let _ = self.cluster.crash();
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
