//! The status page as a person sees it: `atlas dev` with a real streaming
//! replica, the page open in headless Chromium, and the replica's replay
//! paused under it. Screenshots land in the test artifacts directory.

use std::time::{Duration, Instant};

use atlas_tests::browser::Browser;
use atlas_tests::dev::{Dev, temp_dir, token};
use atlas_tests::{Standby, TestDb};
use serde_json::{Value, json};

/// What the page shows, read from its DOM as a person would read it.
const READ_PAGE: &str = r##"
const badge = e => e && { state: e.dataset.state, label: e.textContent };
const spark = document.querySelector('section[data-path^="replica:"] svg.spark');
return {
  overall: badge(document.querySelector("#overall")),
  paths: [...document.querySelectorAll(".badge[data-path]")]
    .map(e => ({ path: e.dataset.path, ...badge(e) })),
  banner: document.querySelector("#analytics").textContent,
  staging_depth: document.querySelector("#staging-depth").textContent,
  flush_lag: document.querySelector("#flush-lag").textContent,
  spark_points: spark ? Number(spark.dataset.points) : null,
  spark_dots: spark ? spark.querySelectorAll("circle").length : null,
  error: document.querySelector("#error").textContent,
  updated: document.querySelector("#updated").textContent,
};
"##;

const LABELS: [(&str, &str); 4] = [
    ("green", "Real-time"),
    ("yellow", "Near real-time"),
    ("orange", "Delayed"),
    ("red", "Stale"),
];

fn replica(page: &Value) -> Option<&Value> {
    page["paths"].as_array()?.iter().find(|p| {
        p["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("replica:"))
    })
}

/// Reads the page until `wanted` holds of it (up to 60 s); the last read.
async fn until(browser: &Browser, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = browser.eval(READ_PAGE).await;
        if wanted(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn replica_state(page: &Value) -> Option<&str> {
    replica(page)?["state"].as_str()
}

#[tokio::test]
async fn the_status_page_turns_a_paused_replica_from_green() {
    let db = TestDb::new().await;
    let standby = Standby::start();
    let dir = temp_dir();
    let replica_url = standby.url(&db.name);
    let dev = Dev::start_with(
        &["--database-url", &db.url],
        &dir,
        &[
            ("ATLAS_REPLICA_URLS", &replica_url),
            ("ATLAS_LAG_CHECK_INTERVAL_MS", "1000"),
            ("ATLAS_HEARTBEAT_INTERVAL_MS", "500"),
        ],
    );

    // The page is served without a token, whole, and under a policy that
    // lets it load nothing from elsewhere.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/status", dev.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/html; charset=utf-8",
        "{:?}",
        resp.headers()
    );
    let policy = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let refused = http
        .post(format!("{}/status", dev.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);

    // A reading, so the warehouse has loaded something to date the
    // analytics banner by.
    let sent = http
        .post(format!("{}/v1/telemetry", dev.url))
        .bearer_auth(token(1, &dir))
        .json(&json!({"readings": [{"entity_id": 7, "attribute": "temperature", "value": 19.5}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{}", sent.text().await.unwrap());

    let browser = Browser::start().await;
    browser.goto(&format!("{}/status", dev.url)).await;
    let healthy = until(&browser, "a green replica and a dated banner", |p| {
        replica_state(p) == Some("green")
            && p["banner"]
                .as_str()
                .is_some_and(|b| b.contains("Data as of"))
            && p["spark_points"].as_u64().is_some_and(|n| n >= 2)
    })
    .await;
    assert_eq!(healthy["error"], "", "{healthy:#}");
    for path in healthy["paths"].as_array().unwrap() {
        let state = path["state"].as_str().unwrap();
        let label = LABELS.iter().find(|(s, _)| *s == state).map(|(_, l)| *l);
        assert_eq!(
            path["label"].as_str(),
            label,
            "each badge in the seed's wording: {path}"
        );
    }
    let shown: Vec<&str> = healthy["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for expected in [
        "primary",
        "replica:1",
        "heartbeat",
        "staging",
        "warehouse",
        "cache",
    ] {
        assert!(shown.contains(&expected), "{expected} not shown: {shown:?}");
    }
    assert!(
        healthy["staging_depth"]
            .as_str()
            .is_some_and(|d| d.parse::<u64>().is_ok()),
        "staging depth as a number: {healthy:#}"
    );
    assert!(
        healthy["flush_lag"]
            .as_str()
            .is_some_and(|l| l.ends_with(" s")),
        "{healthy:#}"
    );
    assert!(healthy["spark_dots"].as_u64().unwrap() >= 1, "{healthy:#}");
    let healthy_shot = browser.screenshot("status-page-healthy").await;

    // The page's own token reads the status and nothing else.
    let page_token = browser
        .eval(r#"return document.querySelector('meta[name="atlas-token"]').content"#)
        .await;
    let page_token = page_token.as_str().unwrap();
    let get = async |path: &str| {
        http.get(format!("{}{path}", dev.url))
            .bearer_auth(page_token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get("/v1/status").await, 200);
    assert_eq!(get("/v1/entities/7").await, 403);

    standby.pause_replay(&db.name, true).await;
    let paused = until(&browser, "the paused replica leave green", |p| {
        matches!(replica_state(p), Some("yellow" | "orange" | "red"))
    })
    .await;
    let replica_badge = replica(&paused).unwrap();
    assert_ne!(replica_badge["label"], "Real-time", "{paused:#}");
    assert_ne!(paused["overall"]["state"], "green", "{paused:#}");
    let paused_shot = browser.screenshot("status-page-replica-paused").await;

    standby.pause_replay(&db.name, false).await;
    until(&browser, "the resumed replica turn green again", |p| {
        replica_state(p) == Some("green")
    })
    .await;
    eprintln!(
        "screenshots: {} and {}",
        healthy_shot.display(),
        paused_shot.display()
    );
    assert!(dev.interrupt().success());
}
