//! Read routing against a real streaming replica (`pg_basebackup -R` on its
//! own port): eventual reads go to the replica while it keeps up, move to
//! the primary when its replay is paused and it falls behind, say so in
//! their headers, come back when it catches up, and keep being answered
//! when it is stopped.

use std::time::Duration;

use atlas_store::{DbRole, heartbeat};
use atlas_tests::{
    eventually, flush_all, post_temperature, routed_api, routed_read as read, serving_replica,
};
use http::StatusCode;

#[tokio::test]
async fn eventual_reads_follow_the_replica_only_while_it_keeps_up() {
    // A replica that keeps up serves eventual reads; strong ones never.
    let (db, standby, api) = serving_replica(16).await;
    let worker = db.pool(DbRole::Worker);
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
