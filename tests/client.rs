//! `atlas-client` against `atlas dev`, as an application uses it: batched
//! writes with refusals by the caller's index, reads with their freshness
//! and a lag budget, the API's errors by code, retries of a 503, and the
//! crate's runnable example.

use std::time::Duration;

use atlas_client::{Client, ClientError, ReadOptions, Reading, RetryPolicy};
use atlas_tests::TestDb;
use atlas_tests::dev::{Dev, temp_dir, token};
use atlas_webhooks::receiver::Receiver;

#[tokio::test]
async fn the_client_writes_reads_and_reports_freshness_against_atlas_dev() {
    let db = TestDb::new().await;
    let dir = temp_dir();
    let dev = Dev::start(&["--database-url", &db.url], &dir);
    let atlas = Client::new(&dev.url, token(1, &dir)).unwrap();

    // More readings than one request takes: two requests, and a refusal
    // in the second reported by its index among all of them.
    let mut readings: Vec<Reading> = (0..Client::BATCH as u64 + 5)
        .map(|i| Reading::new(1_000 + i, "temperature", 20.0))
        .collect();
    readings[Client::BATCH + 2] = Reading::new(7, "no_such_attribute", 1);
    readings.push(Reading::new(77, "temperature", 18.5));
    let sent = atlas.send_readings(&readings).await.unwrap();
    assert_eq!(sent.requests, 2);
    assert_eq!(sent.accepted, readings.len() - 1);
    assert_eq!(sent.rejected.len(), 1);
    assert_eq!(sent.rejected[0].index, Client::BATCH + 2);
    assert!(sent.rejected[0].reason.contains("no_such_attribute"));

    atlas_tests::eventually(
        async || atlas.entity(77, &ReadOptions::strong()).await.is_ok(),
        "entity 77 to be flushed",
    )
    .await;
    let entity = atlas.entity(77, &ReadOptions::strong()).await.unwrap();
    assert_eq!(entity.value["hot_attributes"]["temperature"], 18.5);
    assert!(entity.value.get("_metadata").is_none());
    assert_eq!(entity.freshness.source, "primary");
    assert_eq!(entity.freshness.lag_seconds, 0.0);
    assert_eq!(entity.freshness.consistency.as_str(), "strong");

    // A budget the answer meets (one it misses is the next test's).
    let eventual = atlas
        .entity(77, &ReadOptions::eventual().max_lag_seconds(60.0))
        .await
        .unwrap();
    assert!(eventual.freshness.lag_seconds <= 60.0);

    // The API's refusals keep their code.
    let err = atlas
        .entity(999_999, &ReadOptions::strong())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not_found"), "{err}");
    let err = atlas.delete_plugin("never-uploaded").await.unwrap_err();
    assert_eq!(err.code(), Some("not_found"), "{err}");
    let bad = Client::new(&dev.url, "not-a-jwt").unwrap();
    let err = bad.plugins().await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"), "{err}");

    // The crate's example, as its documentation runs it.
    let example = atlas_tests::atlas_bin()
        .parent()
        .unwrap()
        .join("examples/first_reading");
    assert!(
        example.exists(),
        "{} is missing: build it with `cargo build --workspace --examples`",
        example.display()
    );
    let out = std::process::Command::new(&example)
        .env("ATLAS_API_URL", &dev.url)
        .env("ATLAS_TOKEN", token(1, &dir))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepted 2"), "{stdout}");
    assert!(
        stdout.contains("from primary (strong consistency"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_lag_beyond_the_budget_is_an_error_not_a_stale_answer() {
    // A stand-in API whose every answer is an entity 30 s behind.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = server.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = r#"{"entity_id":1,"hot_attributes":{},"_metadata":{"source":"replica:1","lag_seconds":30.0,"data_as_of":"2026-12-02T00:00:00Z","consistency":"eventual","cache_status":"miss","query_ms":1.0}}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let atlas = Client::new(&url, "token").unwrap();
    let within = atlas
        .entity(1, &ReadOptions::eventual().max_lag_seconds(60.0))
        .await
        .unwrap();
    assert_eq!(within.freshness.source, "replica:1");
    let err = atlas
        .entity(1, &ReadOptions::eventual().max_lag_seconds(5.0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::LagExceeded { lag_seconds, max_lag_seconds }
            if lag_seconds == 30.0 && max_lag_seconds == 5.0),
        "{err}"
    );
}

#[tokio::test]
async fn a_503_is_retried_then_reported() {
    let rx = Receiver::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    rx.answer_with(503);
    let base = rx.url().trim_end_matches("/hook").to_owned();
    let atlas = Client::new(&base, "token")
        .unwrap()
        .with_retry(RetryPolicy {
            max_retries: 2,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        });
    let err = atlas.plugins().await.unwrap_err();
    assert_eq!(rx.received().len(), 3, "the first try and two retries");
    assert!(matches!(err, ClientError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
}
