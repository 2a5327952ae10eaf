//! Read routing against a real streaming replica (`pg_basebackup -R` on its
//! own port): eventual reads go to the replica while it keeps up, move to
//! the primary when its replay is paused and it falls behind, say so in
//! their headers, come back when it catches up, and keep being answered
//! when it is stopped.

use std::time::Duration;

use atlas_query::QueryApi;
use atlas_query::routing::{Replica, RoutingConfig};
use atlas_store::{DbConfig, DbRole, heartbeat};
use atlas_tests::{
    Standby, TestDb, api_request, body_json, db_with_entity_123, eventually, flush_all,
    post_temperature, query_api_with,
};
use http::StatusCode;
use serde_json::Value;

fn routed_api(db: &TestDb, standby: &Standby, fallback_max: usize) -> QueryApi {
    let config = atlas_query::QueryConfig {
        routing: RoutingConfig {
            max_lag: Duration::from_secs(2),
            lag_check: Duration::from_millis(100),
            retry_after: Duration::from_secs(1),
            fallback_max,
        },
        ..Default::default()
    };
    let replica = DbConfig::new(standby.url(&db.name), DbRole::App)
        .pool()
        .unwrap();
    query_api_with(db, config).with_replicas(vec![Replica::new("1", replica)])
}

async fn read(api: &QueryApi, path: &str) -> (StatusCode, String, f64, Value) {
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

#[tokio::test]
async fn eventual_reads_follow_the_replica_only_while_it_keeps_up() {
    let db = db_with_entity_123(20.5).await;
    let standby = Standby::start();
    let worker = db.pool(DbRole::Worker);
    heartbeat::beat(&worker, "test").await.unwrap();
    let api = routed_api(&db, &standby, 16);

    // A replica that keeps up serves eventual reads; strong ones never.
    eventually(
        async || read(&api, "/v1/entities/123").await.1 == "replica:1",
        "the replica to catch up",
    )
    .await;
    let (status, source, lag, body) = read(&api, "/v1/entities/123").await;
    assert_eq!((status, source.as_str()), (StatusCode::OK, "replica:1"));
    assert!(lag < 2.0, "{lag}");
    assert_eq!(body["_metadata"]["source"], "replica:1");
    assert_eq!(body["hot_attributes"]["temperature"], 20.5);
    let (_, source, lag, _) = read(&api, "/v1/entities/123?consistency=strong").await;
    assert_eq!((source.as_str(), lag), ("primary", 0.0));

    // Pause replay: the replica's heartbeat stops where it is.
    standby.pause_replay(&db.name, true).await;
    post_temperature(&db, 30.5).await;
    flush_all(&db).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    heartbeat::beat(&worker, "test").await.unwrap();

    // Eventual reads move to the primary, which has the new value.
    eventually(
        async || read(&api, "/v1/entities/123").await.1 == "primary",
        "eventual reads to leave the lagging replica",
    )
    .await;
    let (status, source, lag, body) = read(&api, "/v1/entities/123").await;
    assert_eq!(
        (status, source.as_str(), lag),
        (StatusCode::OK, "primary", 0.0)
    );
    assert_eq!(body["hot_attributes"]["temperature"], 30.5);
    assert_eq!(body["_metadata"]["lag_seconds"], 0.0);

    // Analytics tolerates the lag, and says how much; not beyond the bound.
    let (_, source, lag, body) = read(&api, "/v1/entities/123?consistency=analytics").await;
    assert_eq!(source, "replica:1");
    assert!(lag >= 2.5, "the header carries the measured lag: {lag}");
    assert_eq!(
        body["hot_attributes"]["temperature"], 20.5,
        "the replica's view"
    );
    let (_, source, _, _) = read(
        &api,
        "/v1/entities/123?consistency=analytics&max_lag_seconds=1",
    )
    .await;
    assert_eq!(source, "primary");

    // With the primary's fallback capacity used up, the answer is a 503
    // that gives the lag, never a stale answer.
    let no_fallback = routed_api(&db, &standby, 0);
    let (status, _, _, body) = read(&no_fallback, "/v1/entities/123").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("lags"), "{message}");

    // Resumed, the replica catches up and is used again.
    standby.pause_replay(&db.name, false).await;
    heartbeat::beat(&worker, "test").await.unwrap();
    eventually(
        async || read(&api, "/v1/entities/123").await.1 == "replica:1",
        "the resumed replica to be used again",
    )
    .await;

    // Stopped, it is skipped and every read is still answered.
    standby.stop();
    for path in [
        "/v1/entities/123",
        "/v1/entities/123?consistency=analytics",
        "/v1/attributes/temperature",
    ] {
        let (status, source, _, body) = read(&api, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(source, "primary", "{path}");
    }
}
