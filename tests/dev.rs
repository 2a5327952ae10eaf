//! Black-box: the `atlas` binary as a user runs it. `atlas dev` is started
//! as a child process and spoken to over HTTP with a token from
//! `atlas token`, exactly as the README shows.

use std::process::Command;
use std::time::{Duration, Instant};

use atlas_tests::dev::{Dev, free_port, temp_dir, token};
use atlas_tests::{TestDb, atlas_bin, count};
use serde_json::{Value, json};

async fn post(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/telemetry"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn atlas_dev_serves_the_write_path_on_a_given_database() {
    let db = TestDb::new().await;
    let dir = temp_dir();
    let dev = Dev::start(&["--database-url", &db.url], &dir);
    let owner = db.owner().await;
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM tenants WHERE tenant_id IN (1, 2, 3)"
        )
        .await,
        3,
        "demo tenants"
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM attributes WHERE tenant_id = 1"
        )
        .await,
        9,
        "demo catalog"
    );

    let body = json!({"readings": [
        {"entity_id": 42, "attribute": "temperature", "value": 21.5},
        {"entity_id": 42, "attribute": "region", "value": "eu-west-1"},
        {"entity_id": 42, "attribute": "nope", "value": 1},
    ]});
    let (status, out) = post(&dev.url, None, &body).await;
    assert_eq!(
        (status, out["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{out}"
    );
    let (status, _) = post(&dev.url, Some("not-a-jwt"), &body).await;
    assert_eq!(status, 401);

    let t = token(2, &dir);
    let (status, out) = post(&dev.url, Some(&t), &body).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["accepted"], 2);
    assert_eq!(out["rejected"][0]["index"], 2);

    // The flusher runs on its own timer.
    wait_for(
        async || {
            count(
                &owner,
                "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 2",
            )
            .await
                == 2
        },
        "the flusher",
    )
    .await;
    let hot: Value = owner
        .query_one(
            "SELECT hot_attrs FROM entity_jsonb WHERE tenant_id = 2 AND entity_id = 42",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot, json!({"temperature": 21.5, "region": "eu-west-1"}));
    // The query API reads it back, saying where from.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/entities/42?consistency=strong", dev.url))
        .bearer_auth(&t)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-data-source"], "primary");
    let entity: Value = resp.json().await.unwrap();
    assert_eq!(entity["hot_attributes"], hot);
    // And finds it by a hot attribute.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/entities/search", dev.url))
        .bearer_auth(&t)
        .json(&json!({"filter": [{"attribute": "region", "op": "eq", "value": "eu-west-1"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let found: Value = resp.json().await.unwrap();
    assert_eq!(found["entities"][0]["entity_id"], 42, "{found}");
    // Eventual point reads go through the machine's Redis.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/entities/42", dev.url))
            .bearer_auth(&t)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
        statuses.push(
            resp.headers()["x-cache-status"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(statuses, ["miss", "hit"]);
    // The rest of the query API's routes answer through the local gateway.
    let day =
        |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).format("%Y-%m-%dT00:00:00Z");
    let client = reqwest::Client::new();
    for (method, path, body, want) in [
        (
            "GET",
            format!(
                "/v1/entities/42/attributes/temperature/history?from={}&to={}",
                day(-1),
                day(1)
            ),
            None,
            200,
        ),
        (
            "GET",
            format!(
                "/v1/analytics/attributes/temperature/stats?from={}&to={}&group_by=region",
                day(-1),
                day(1)
            ),
            None,
            200,
        ),
        (
            "POST",
            "/v1/attributes".into(),
            Some(json!({"name": "pressure", "data_type": "decimal"})),
            201,
        ),
        (
            "PATCH",
            "/v1/attributes/pressure".into(),
            Some(json!({"is_hot": true})),
            202,
        ),
        ("GET", "/v1/attributes/pressure".into(), None, 200),
    ] {
        let mut req = client
            .request(method.parse().unwrap(), format!("{}{path}", dev.url))
            .bearer_auth(&t);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
    }

    // The heartbeat runs on its own timer too.
    wait_for(
        async || count(&owner, "SELECT count(*) FROM replication_heartbeat").await >= 1,
        "a heartbeat",
    )
    .await;
    assert!(dev.interrupt().success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn atlas_dev_without_a_database_runs_its_own_cluster() {
    let dir = temp_dir();
    let pg_port = free_port();
    let dev = Dev::start(&["--pg-port", &pg_port.to_string()], &dir);
    let t = token(1, &dir);
    let (status, out) = post(
        &dev.url,
        Some(&t),
        &json!({"readings": [
            {"entity_id": 1, "attribute": "status", "value": "online"}
        ]}),
    )
    .await;
    assert_eq!((status, out["accepted"].as_u64()), (202, Some(1)), "{out}");

    let url = format!("postgres://postgres@127.0.0.1:{pg_port}/atlas");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("the private cluster");
    tokio::spawn(conn);
    wait_for(
        async || count(&client, "SELECT count(*) FROM entity_values_ts").await == 1,
        "the flusher",
    )
    .await;
    drop(client);
    assert!(dev.interrupt().success());
    assert!(
        tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .is_err(),
        "the private cluster stops with atlas dev"
    );
    std::fs::remove_dir_all(atlas_devstack::cluster::Cluster::data_dir(&dir).unwrap()).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `atlas` with `args`; returns (success, stdout, stderr).
fn atlas(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(atlas_bin())
        .args(args)
        .output()
        .expect("run atlas");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_atlas_plugin_commands_take_a_plugin_from_a_file_to_ingest() {
    let db = TestDb::new().await;
    let dir = temp_dir();
    let wasm = format!(
        "{}/../plugins/target/wasm32-unknown-unknown/release/fahrenheit_to_celsius.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, out, err) = atlas(&["plugin", "validate", &wasm]);
    assert!(ok && out.contains("valid (ABI v2"), "{out}{err}");

    let input = dir.join("batch.json");
    std::fs::write(
        &input,
        r#"{"readings":[{"entity_id":1,"attribute":"temperature","value":212}]}"#,
    )
    .unwrap();
    let (ok, out, err) = atlas(&["plugin", "test", &wasm, "--input", input.to_str().unwrap()]);
    assert!(ok, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("the output is the plugin's JSON");
    assert_eq!(answer["readings"][0]["value"], 100.0);
    assert!(err.contains("fuel used: "), "{err}");
    let (ok, _, err) = atlas(&[
        "plugin",
        "test",
        &wasm,
        "--input",
        input.to_str().unwrap(),
        "--fuel",
        "100",
    ]);
    assert!(!ok && err.contains("fuel limit"), "{err}");

    let not_wasm = dir.join("not.wasm");
    std::fs::write(&not_wasm, b"(module)").unwrap();
    let (ok, _, err) = atlas(&["plugin", "validate", not_wasm.to_str().unwrap()]);
    assert!(!ok && err.contains("not valid WebAssembly"), "{err}");

    let dev = Dev::start(&["--database-url", &db.url], &dir);
    let t = token(3, &dir);
    let api = ["--api-url", dev.url.as_str(), "--token", t.as_str()];
    let upload: Vec<&str> = ["plugin", "upload", &wasm, "--name", "f2c", "--activate"]
        .into_iter()
        .chain(api)
        .collect();
    let (ok, out, err) = atlas(&upload);
    assert!(ok, "{err}");
    assert!(err.contains("version 1 is now active"), "{err}");
    let active: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (active["name"].as_str(), active["active"].as_bool()),
        (Some("f2c"), Some(true))
    );

    let (status, out) = post(
        &dev.url,
        Some(&t),
        &json!({"readings": [{"entity_id": 9, "attribute": "temperature", "value": 212}]}),
    )
    .await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["plugin"]["name"], "f2c", "{out}");

    let list: Vec<&str> = ["plugin", "list"].into_iter().chain(api).collect();
    let (ok, out, err) = atlas(&list);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["plugins"][0]["active_version"], 1, "{list}");
    let missing: Vec<&str> = ["plugin", "activate", "--name", "f2c", "--version", "9"]
        .into_iter()
        .chain(api)
        .collect();
    let (ok, _, err) = atlas(&missing);
    assert!(
        !ok && err.contains("404") && err.contains("has no version 9"),
        "{err}"
    );

    let owner = db.owner().await;
    wait_for(
        async || {
            count(
                &owner,
                "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 3 AND value_decimal = 100",
            )
            .await
                == 1
        },
        "the converted reading",
    )
    .await;
    assert!(dev.interrupt().success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Rows of `sql` as text, for comparing two databases.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
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

#[tokio::test]
async fn a_reading_posted_to_atlas_dev_reaches_the_warehouse_enriched() {
    let db = TestDb::new().await;
    let warehouse = TestDb::new().await;
    let dir = temp_dir();
    let dev = Dev::start(
        &["--database-url", &db.url, "--warehouse-url", &warehouse.url],
        &dir,
    );
    let t = token(1, &dir);
    for temperature in [20.5, 22.25] {
        let body = json!({"readings": [
            {"entity_id": 7, "attribute": "temperature", "value": temperature},
            {"entity_id": 7, "attribute": "status", "value": "online"},
        ]});
        let (status, out) = post(&dev.url, Some(&t), &body).await;
        assert_eq!(status, 202, "{out}");
    }
    let (oltp, wh) = (db.owner().await, warehouse.owner().await);
    let state = "SELECT tenant_id::text, entity_id::text, hot_attrs::text FROM {} ORDER BY 1, 2";
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
    // Flusher, tap and loader each run on their own timers.
    wait_for(
        async || {
            count(&oltp, "SELECT count(*) FROM entity_values_ts").await == 4
                && count(
                    &wh,
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'fact_telemetry'",
                )
                .await
                    == 1
                && count(&wh, "SELECT count(*) FROM fact_telemetry").await == 4
                && text_rows(&wh, &state.replace("{}", "fact_current_state")).await
                    == text_rows(&oltp, &state.replace("{}", "entity_jsonb")).await
        },
        "the readings in the warehouse",
    )
    .await;
    let enriched = text_rows(
        &wh,
        "SELECT tenant_name, attribute_name, data_type, attribute_category, entity_type, \
         value_decimal::text FROM fact_telemetry WHERE attribute_name = 'temperature' \
         ORDER BY ingested_at",
    )
    .await;
    let expected = text_rows(
        &oltp,
        "SELECT t.tenant_name, a.attribute_name, a.data_type, \
         CASE WHEN a.is_hot THEN 'hot' ELSE 'cold' END, e.entity_type, v.value_decimal::text \
         FROM entity_values_ts v JOIN tenants t USING (tenant_id) \
         JOIN attributes a ON a.tenant_id = v.tenant_id AND a.attribute_id = v.attribute_id \
         JOIN entities e ON e.tenant_id = v.tenant_id AND e.entity_id = v.entity_id \
         WHERE a.attribute_name = 'temperature' ORDER BY v.ingested_at",
    )
    .await;
    assert_eq!(enriched.len(), 2);
    assert_eq!(enriched, expected);
    assert_eq!(
        text_rows(&wh, stats).await,
        text_rows(&oltp, from_oltp).await
    );
    drop(dev);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn atlas_cdc_load_loads_the_sample_event_once() {
    let warehouse = TestDb::new().await;
    let event = format!("{}/../events/msk-cdc.json", env!("CARGO_MANIFEST_DIR"));
    let letters = temp_dir();
    let load = || {
        let out = Command::new(atlas_bin())
            .args(["cdc", "load", "--event", &event, "--dead-letters"])
            .arg(&letters)
            .env("ATLAS_WAREHOUSE_URL", &warehouse.url)
            .env_remove("ATLAS_OBJECT_STORE")
            .output()
            .expect("run atlas cdc load");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().expect("a report line").to_owned();
        serde_json::from_str::<Value>(&last).expect("the last line is JSON")
    };
    // The sample: tenant 1, its catalog, two entities, three readings.
    assert_eq!(
        load(),
        json!({"records": 17, "changes": 17, "loaded": 3, "duplicates": 0, "dead_lettered": 0})
    );
    assert_eq!(
        load(),
        json!({"records": 17, "changes": 17, "loaded": 0, "duplicates": 3, "dead_lettered": 0}),
        "the same event again adds nothing"
    );
    let c = warehouse.owner().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM fact_telemetry WHERE tenant_name IS NOT NULL \
             AND attribute_name IS NOT NULL AND entity_type = 'device'"
        )
        .await,
        3
    );
    let _ = std::fs::remove_dir_all(letters);
}

/// The whole webhook path as `atlas dev` runs it: a reading posted over
/// HTTP is flushed, tapped, turned into an event by the CDC loader's sink
/// and posted, signed, by the heartbeat's sender to a receiver registered
/// through the API.
#[tokio::test]
async fn a_reading_posted_to_atlas_dev_reaches_a_registered_webhook() {
    let db = TestDb::new().await;
    let dir = temp_dir();
    let dev = Dev::start(&["--database-url", &db.url], &dir);
    let t = token(1, &dir);
    let rx = atlas_webhooks::receiver::Receiver::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/webhooks", dev.url))
        .bearer_auth(&t)
        .json(
            &json!({"url": rx.url(), "events": ["entity.updated"], "attributes": ["temperature"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    rx.verify_with(created["secret"].as_str().unwrap());

    let body = json!({"readings": [
        {"entity_id": 77, "attribute": "temperature", "value": 19.25},
        {"entity_id": 77, "attribute": "status", "value": "online"},
    ]});
    let (status, out) = post(&dev.url, Some(&t), &body).await;
    assert_eq!(status, 202, "{out}");
    atlas_tests::eventually(
        async || rx.received().iter().any(|e| e.body["entity_id"] == 77),
        "the webhook delivery",
    )
    .await;
    let got = rx.received();
    let event = got.iter().find(|e| e.body["entity_id"] == 77).unwrap();
    assert!(event.signature_ok);
    assert_eq!(event.body["event_type"], "entity.updated");
    // Only the attribute the webhook asked for.
    assert_eq!(
        event.body["changes"],
        json!({"temperature": {"old": null, "new": 19.25}})
    );
    assert!(event.lag_seconds.unwrap() >= 0.0);
    drop(dev);
}
