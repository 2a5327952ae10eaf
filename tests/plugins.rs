//! Tenant plugins end to end: upload through the query API's handler into
//! S3 (moto) and `tenant_plugins`, activation, and ingest running the
//! active plugin before the readings reach `entity_values_ts`.

use std::sync::Arc;
use std::time::Duration;

use atlas_ingest::{IngestConfig, IngestService};
use atlas_objects::ObjectStore;
use atlas_plugin_host::Host;
use atlas_plugins::{Registry, Transforms};
use atlas_store::DbRole;
use atlas_tests::{
    TestDb, api_request, apigw_request, body_json, count, dead_letter, dead_letters, demo_tenants,
    example_plugin, flush_all, msk_event, s3_store,
};
use http::StatusCode;
use serde_json::{Value, json};

struct Stack {
    db: TestDb,
    objects: Arc<dyn ObjectStore>,
    host: Arc<Host>,
    registry: Registry,
    ingest: IngestService,
}

impl Stack {
    async fn new() -> Self {
        let db = TestDb::new().await;
        demo_tenants(&db).await;
        let objects = s3_store().await;
        let host = Host::new().unwrap();
        let registry = Registry::new(db.pool(DbRole::App), objects.clone(), host.clone());
        let ingest = Self::container(&db, &objects, &host);
        Self {
            db,
            objects,
            host,
            registry,
            ingest,
        }
    }

    /// A fresh ingest "container": nothing cached. The active plugin is
    /// looked up on every batch, so activation shows at once.
    fn container(db: &TestDb, objects: &Arc<dyn ObjectStore>, host: &Arc<Host>) -> IngestService {
        let transforms = Transforms::new(
            db.pool(DbRole::App),
            objects.clone(),
            host.clone(),
            Duration::ZERO,
        );
        IngestService::new(db.pool(DbRole::App), IngestConfig::default())
            .with_transforms(transforms)
            .with_dead_letters(dead_letters(objects, "ingest"))
    }

    async fn api(
        &self,
        tenant: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        let resp =
            atlas_plugins::http::handle(&self.registry, api_request(tenant, method, path, body))
                .await;
        (resp.status(), body_json(&resp))
    }

    async fn upload(&self, tenant: &str, path: &str, wasm: &[u8]) -> Value {
        let (status, out) = self.api(tenant, "PUT", path, Some(wasm)).await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        out
    }

    async fn activate(&self, tenant: &str, name: &str, version: i64) {
        let path = format!("/v1/plugins/{name}/versions/{version}/activate");
        let (status, out) = self.api(tenant, "POST", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["active"], true, "{out}");
    }

    async fn post(&self, tenant: &str, body: &Value) -> (StatusCode, Value) {
        post_to(&self.ingest, tenant, body).await
    }

    async fn flush(&self) {
        flush_all(&self.db).await;
    }

    /// Uploads a module as the tenant's plugin `name`, version 1, and
    /// activates it; returns the upload's answer.
    async fn install(&self, tenant: &str, name: &str, wasm: &[u8]) -> Value {
        let up = self
            .upload(tenant, &format!("/v1/plugins/{name}"), wasm)
            .await;
        self.activate(tenant, name, 1).await;
        up
    }

    /// (attribute, value) of an entity's stored readings, by attribute.
    async fn stored(&self, tenant: i64, entity: i64) -> Vec<(String, String)> {
        let owner = self.db.owner().await;
        owner
            .query(
                "SELECT a.attribute_name, coalesce(v.value, v.value_int::text, \
                        trim_scale(v.value_decimal)::text, v.value_bool::text) \
                 FROM entity_values_ts v JOIN attributes a USING (tenant_id, attribute_id) \
                 WHERE v.tenant_id = $1 AND v.entity_id = $2 ORDER BY 1",
                &[&tenant, &entity],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

async fn post_to(svc: &IngestService, tenant: &str, body: &Value) -> (StatusCode, Value) {
    let resp =
        atlas_ingest::http::handle(svc, apigw_request(Some(tenant), &body.to_string())).await;
    (resp.status(), body_json(&resp))
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect()
}

/// Echoes its input (a valid identity transform) unless the input is over
/// 2,000 bytes, when it loops forever: it passes the upload's dry run and
/// then fails on a large batch.
fn loops_on_big_batches() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (memory (export "memory") 1)
          (func (export "atlas_abi_version") (result i32) i32.const 1)
          (func (export "atlas_alloc") (param i32) (result i32) i32.const 1024)
          (func (export "atlas_transform") (param $p i32) (param $len i32) (result i64)
            (if (i32.gt_u (local.get $len) (i32.const 2000)) (then (loop $l (br $l))))
            (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
                    (i64.extend_i32_u (local.get $len)))))"#,
    )
    .unwrap()
}

fn big_batch(entity: i64) -> Value {
    let readings: Vec<Value> = (0..60)
        .map(|i| json!({"entity_id": entity + i, "attribute": "humidity", "value": 40 + i % 50}))
        .collect();
    json!({ "readings": readings })
}

#[tokio::test]
async fn an_uploaded_plugin_transforms_ingest_end_to_end() {
    let s = Stack::new().await;
    let wasm = example_plugin("rename_attributes");
    let up = s.upload("1", "/v1/plugins/renamer", &wasm).await;
    assert_eq!(up["version"], 1);
    assert_eq!(up["active"], false);
    assert!(up["dry_run_fuel"].as_u64().unwrap() > 0, "{up}");
    let sha = up["sha256"].as_str().unwrap().to_owned();
    // The module and its precompiled artifact are in S3 under the hash.
    assert_eq!(
        s.objects
            .get(&format!("plugins/{sha}.wasm"))
            .await
            .unwrap()
            .as_deref(),
        Some(&wasm[..])
    );
    let artifact = artifact_key(&s, 1, "renamer").await;
    assert!(s.objects.get(&artifact).await.unwrap().is_some());

    // Not active yet: "hum" is not in the catalog and is refused.
    let batch = json!({"readings": [
        {"entity_id": 500, "attribute": "hum", "value": 55},
        {"entity_id": 500, "attribute": "temp", "value": 21.5},
        {"entity_id": 500, "attribute": "status", "value": "ok"},
    ]});
    let (status, out) = s.post("1", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(out["accepted"], 1, "{out}");
    assert!(out.get("plugin").is_none(), "{out}");

    s.activate("1", "renamer", 1).await;
    let (status, out) = s.post("1", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(
        out,
        json!({"accepted": 3, "rejected": [], "plugin": {
            "name": "renamer", "version": 1, "readings_in": 3, "readings_out": 3}})
    );
    s.flush().await;
    assert_eq!(
        s.stored(1, 500).await,
        pairs(&[
            ("humidity", "55"),
            ("status", "ok"),
            ("status", "ok"),
            ("temperature", "21.5")
        ])
    );
}

#[tokio::test]
async fn derived_and_dropped_readings_follow_the_plugin() {
    let s = Stack::new().await;
    s.install("1", "pii", &example_plugin("drop_pii")).await;
    let (status, out) = s
        .post(
            "1",
            &json!({"readings": [
                {"entity_id": 600, "attribute": "email", "value": "ann@example.com"},
                {"entity_id": 600, "attribute": "humidity", "value": 41},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["plugin"]["readings_out"], 1, "{out}");

    // A plugin's output is checked like any request: what it derives must
    // be in the catalog, and a refusal points into its output.
    s.install("1", "power", &example_plugin("derived_power"))
        .await;
    let (status, out) = s
        .post(
            "1",
            &json!({"readings": [
                {"entity_id": 600, "attribute": "priority", "value": 3},
                {"entity_id": 600, "attribute": "voltage", "value": 12},
                {"entity_id": 600, "attribute": "current", "value": 2},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["plugin"]["readings_out"], 4, "{out}");
    assert_eq!(out["accepted"], 1, "{out}");
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{out}");
    assert_eq!(rejected[2]["index"], 3, "{out}");
    assert_eq!(rejected[2]["of"], "plugin_output", "{out}");
    assert!(
        rejected[2]["reason"].as_str().unwrap().contains("power"),
        "{out}"
    );

    s.flush().await;
    assert_eq!(
        s.stored(1, 600).await,
        pairs(&[("humidity", "41"), ("priority", "3")])
    );
}

#[tokio::test]
async fn a_validator_refuses_the_batch_with_422_and_nothing_is_staged() {
    let s = Stack::new().await;
    s.install("1", "ranges", &example_plugin("range_validator"))
        .await;
    let (status, out) = s
        .post(
            "1",
            &json!({"readings": [
                {"entity_id": 700, "attribute": "humidity", "value": 50},
                {"entity_id": 700, "attribute": "humidity", "value": 140},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"]["code"], "plugin_rejected");
    assert_eq!(
        out["error"]["message"],
        "plugin ranges v1 rejected the batch: reading 1 (entity 700): humidity 140 is outside 0..=100"
    );
    let owner = s.db.owner().await;
    assert_eq!(
        count(&owner, "SELECT count(*) FROM entity_values_ingest").await,
        0
    );
}

#[tokio::test]
async fn the_failure_policy_rejects_or_passes_through_and_other_tenants_go_on() {
    let s = Stack::new().await;
    let wasm = loops_on_big_batches();
    // Version 1 passes failures through; a small fuel budget keeps it quick.
    s.upload(
        "1",
        "/v1/plugins/fragile?on_failure=pass_through&fuel=2000000",
        &wasm,
    )
    .await;
    s.activate("1", "fragile", 1).await;
    let (status, out) = s.post("1", &big_batch(800)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["accepted"], 60, "{out}");
    assert_eq!(out["plugin"]["readings_out"], 60, "{out}");
    assert!(
        out["plugin"]["failure"]
            .as_str()
            .unwrap()
            .starts_with("fuel limit"),
        "{out}"
    );

    // Version 2: the same module under the default policy, reject.
    let v2 = s
        .upload("1", "/v1/plugins/fragile?fuel=2000000", &wasm)
        .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["on_failure"], "reject");
    s.activate("1", "fragile", 2).await;
    let (status, out) = s.post("1", &big_batch(900)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fuel limit: the plugin used its whole budget of 2000000 fuel"),
        "{out}"
    );
    // Small batches still pass through the identity transform.
    let (status, out) = s
        .post(
            "1",
            &json!({"readings": [{"entity_id": 1, "attribute": "humidity", "value": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["plugin"]["version"], 2, "{out}");

    // Another tenant, same container, right after: unaffected.
    let (status, out) = s.post("2", &big_batch(900)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["accepted"], 60, "{out}");
    assert!(out.get("plugin").is_none(), "{out}");

    s.flush().await;
    let owner = s.db.owner().await;
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 1 AND entity_id >= 900"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 1 AND entity_id BETWEEN 800 AND 899"
        )
        .await,
        60
    );
}

#[tokio::test]
async fn uploads_are_checked_and_every_error_is_typed() {
    let s = Stack::new().await;
    let forbidden = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1))"#,
    )
    .unwrap();
    // (method, path, body, status, error code)
    type Case = (
        &'static str,
        &'static str,
        Option<Vec<u8>>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/v1/plugins/x",
            Some(forbidden),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
        ),
        (
            "PUT",
            "/v1/plugins/x",
            Some(b"not wasm".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
        ),
        (
            "PUT",
            "/v1/plugins/x",
            Some(vec![0; atlas_plugin_host::MAX_MODULE_BYTES + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "module_too_large",
        ),
        (
            "PUT",
            "/v1/plugins/x",
            None,
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "PUT",
            "/v1/plugins/Bad%20Name",
            Some(b"\0asm".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "PUT",
            "/v1/plugins/x?memory_mb=4096",
            Some(b"\0asm".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_settings",
        ),
        (
            "PUT",
            "/v1/plugins/x?on_failure=ignore",
            Some(b"\0asm".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_settings",
        ),
        (
            "PUT",
            "/v1/plugins/x?fuel=1",
            Some(example_plugin("fahrenheit_to_celsius")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fuel_limit",
        ),
        (
            "POST",
            "/v1/plugins/x/versions/1/activate",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/plugins/x/versions/zero/activate",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_version",
        ),
        (
            "DELETE",
            "/v1/plugins/x",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/plugins",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v1/plugins/x",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v1/plugins/x/y",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, out) = s.api("1", method, path, body.as_deref()).await;
        assert_eq!(
            (got, out["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {out}"
        );
        assert!(!out["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, out) = s.api("1", "GET", "/v1/plugins", None).await;
    assert_eq!((status, out), (StatusCode::OK, json!({"plugins": []})));
}

#[tokio::test]
async fn versions_roll_back_deletes_deactivate_and_tenants_are_isolated() {
    let s = Stack::new().await;
    let wasm = example_plugin("rename_attributes");
    s.upload("1", "/v1/plugins/names", &wasm).await;
    // The same bytes and settings again: the same version, 200.
    let (status, again) = s.api("1", "PUT", "/v1/plugins/names", Some(&wasm)).await;
    assert_eq!(
        (status, &again["version"], &again["created"]),
        (StatusCode::OK, &json!(1), &json!(false))
    );
    s.upload("1", "/v1/plugins/names?timeout_ms=100", &wasm)
        .await;
    s.activate("1", "names", 2).await;
    s.activate("1", "names", 1).await;
    let (_, list) = s.api("1", "GET", "/v1/plugins", None).await;
    assert_eq!(list["plugins"][0]["name"], "names");
    assert_eq!(list["plugins"][0]["active_version"], 1);
    let versions: Vec<_> = list["plugins"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(2, false), (1, true)]);
    let one = json!({"readings": [{"entity_id": 1, "attribute": "hum", "value": 1}]});
    let (_, out) = s.post("1", &one).await;
    assert_eq!(out["plugin"]["version"], 1, "{out}");

    // Tenant 2 sees none of it, cannot activate it, and is not transformed.
    let (_, list2) = s.api("2", "GET", "/v1/plugins", None).await;
    assert_eq!(list2, json!({"plugins": []}));
    let (status, _) = s
        .api("2", "POST", "/v1/plugins/names/versions/1/activate", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, out) = s.post("2", &one).await;
    assert!(out.get("plugin").is_none(), "{out}");
    assert_eq!(out["accepted"], 0, "{out}");
    // Row-Level Security says the same without our code's checks.
    let app = s.db.pool(DbRole::App);
    let mut client = app.get().await.unwrap();
    let tx = atlas_store::begin_tenant(&mut client, atlas_core::TenantId::new(2).unwrap())
        .await
        .unwrap();
    let seen: i64 = tx
        .query_one("SELECT count(*) FROM tenant_plugins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    drop(tx);

    let (status, out) = s.api("1", "DELETE", "/v1/plugins/names", None).await;
    assert_eq!(
        (status, out),
        (
            StatusCode::OK,
            json!({"name": "names", "deleted": true, "was_active": true})
        )
    );
    let (_, out) = s.post("1", &one).await;
    assert!(out.get("plugin").is_none(), "{out}");
    let (_, list) = s.api("1", "GET", "/v1/plugins", None).await;
    assert_eq!(list, json!({"plugins": []}));
    // Version numbers are not reused after a delete.
    let up = s.upload("1", "/v1/plugins/names", &wasm).await;
    assert_eq!(up["version"], 3);
}

/// The object store as ingest's IAM policy lets it see it: reads only.
#[derive(Debug)]
struct ReadOnly(Arc<dyn ObjectStore>);

#[async_trait::async_trait]
impl ObjectStore for ReadOnly {
    async fn put(&self, key: &str, _: Vec<u8>) -> Result<(), atlas_objects::ObjectError> {
        panic!("ingest wrote {key}: it must only read the plugin store")
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, atlas_objects::ObjectError> {
        self.0.get(key).await
    }
}

/// The object key of the artifact the newest version of a tenant's plugin
/// recorded.
async fn artifact_key(s: &Stack, tenant: i64, name: &str) -> String {
    let row =
        s.db.owner()
            .await
            .query_one(
                "SELECT artifact_sha256 FROM tenant_plugins WHERE tenant_id = $1 AND name = $2 \
             ORDER BY version DESC LIMIT 1",
                &[&tenant, &name],
            )
            .await
            .unwrap();
    format!("plugins/{}.cwasm", row.get::<_, String>(0))
}

#[tokio::test]
async fn a_cold_container_loads_only_the_artifact_the_registry_recorded() {
    let s = Stack::new().await;
    s.install("1", "f2c", &example_plugin("fahrenheit_to_celsius"))
        .await;
    let key = artifact_key(&s, 1, "f2c").await;
    let made = s
        .objects
        .get(&key)
        .await
        .unwrap()
        .expect("the artifact is stored");
    let batch = json!({"readings": [{"entity_id": 42, "attribute": "temperature", "value": 212}]});
    let read_only: Arc<dyn ObjectStore> = Arc::new(ReadOnly(s.objects.clone()));

    // A new container loads the precompiled artifact, writing nothing.
    let cold = Stack::container(&s.db, &read_only, &s.host);
    let (status, out) = post_to(&cold, "1", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");

    // A forged artifact: real, loadable native code, but another plugin's
    // (a renamer, which would store 212 unconverted). Checked against the
    // recorded hash, it is passed over and the module, whose own hash is
    // checked, is compiled instead.
    let forged = s
        .host
        .compile(&example_plugin("rename_attributes"))
        .unwrap()
        .precompiled()
        .unwrap();
    s.objects.put(&key, forged).await.unwrap();
    let cold = Stack::container(&s.db, &read_only, &s.host);
    let (status, out) = post_to(&cold, "1", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["plugin"]["name"], "f2c", "{out}");

    // An artifact that is not one at all: compiled around as well.
    s.objects
        .put(&key, b"not a wasmtime artifact".to_vec())
        .await
        .unwrap();
    let cold = Stack::container(&s.db, &read_only, &s.host);
    let (status, out) = post_to(&cold, "1", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    s.objects.put(&key, made).await.unwrap();

    s.flush().await;
    assert_eq!(
        s.stored(1, 42).await,
        pairs(&[
            ("temperature", "100"),
            ("temperature", "100"),
            ("temperature", "100")
        ])
    );
}

/// ABI version 2 (binary) is the SDK's default; a version-1 (JSON) module
/// of the same transform keeps working beside it, and both store the same.
#[tokio::test]
async fn version_1_and_version_2_plugins_store_the_same_readings() {
    let s = Stack::new().await;
    s.install("1", "f2c", &example_plugin("fahrenheit_to_celsius_v1"))
        .await;
    s.install("2", "f2c", &example_plugin("fahrenheit_to_celsius"))
        .await;
    let batch = json!({"readings": [
        {"entity_id": 9, "attribute": "temperature", "value": 98.6, "ts": "2026-11-24T10:00:00Z"},
        {"entity_id": 9, "attribute": "status", "value": "ok", "ts": "2026-11-24T10:00:00Z"},
        {"entity_id": 9, "attribute": "temperature", "value": "warm"},
    ]});
    for tenant in ["1", "2"] {
        let (status, out) = s.post(tenant, &batch).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        assert!(
            out.to_string()
                .contains("temperature of entity 9 is not a number"),
            "{out}"
        );
        let good = json!({"readings": &batch["readings"].as_array().unwrap()[..2]});
        let (status, out) = s.post(tenant, &good).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{out}");
        assert_eq!(out["plugin"]["readings_out"], 2, "{out}");
    }
    s.flush().await;
    let expected = pairs(&[("status", "ok"), ("temperature", "37")]);
    assert_eq!(s.stored(1, 9).await, expected);
    assert_eq!(s.stored(2, 9).await, expected);
}

#[tokio::test]
async fn on_msk_a_batch_the_plugin_refuses_is_skipped_and_the_others_staged() {
    let s = Stack::new().await;
    s.install("1", "ranges", &example_plugin("range_validator"))
        .await;
    let bad = json!({"readings": [{"entity_id": 1, "attribute": "humidity", "value": 140}]});
    let good = json!({"readings": [{"entity_id": 2, "attribute": "humidity", "value": 50}]});
    let event = msk_event(vec![
        (1, "1", bad, None),
        (2, "1", good.clone(), None),
        (3, "2", good, None),
    ]);
    let report = atlas_ingest::msk::handle(&s.ingest, serde_json::from_value(event).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        (report.records, report.accepted, report.rejected_records),
        (3, 2, 1),
        "{report:?}"
    );
    let letter = dead_letter(&s.objects, 1).await.expect("dead-lettered");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("plugin ranges v1 rejected the batch"),
        "{letter}"
    );
    s.flush().await;
    let owner = s.db.owner().await;
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE entity_id = 1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM entity_values_ts WHERE entity_id = 2"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_tenants_broken_module_is_that_tenants_problem_only() {
    let s = Stack::new().await;
    let up = s
        .install("1", "f2c", &example_plugin("fahrenheit_to_celsius"))
        .await;
    let sha = up["sha256"].as_str().unwrap();
    // Both the module and its artifact are damaged in the store.
    for key in [
        format!("plugins/{sha}.wasm"),
        artifact_key(&s, 1, "f2c").await,
    ] {
        s.objects.put(&key, b"garbage".to_vec()).await.unwrap();
    }
    let ingest = Stack::container(&s.db, &s.objects, &s.host);
    let reading = json!({"readings": [{"entity_id": 5, "attribute": "humidity", "value": 50}]});
    let (status, out) = post_to(&ingest, "1", &reading).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{out}");
    assert_eq!(out["error"]["code"], "plugin_unavailable");
    assert!(
        out["error"]["message"].as_str().unwrap().contains(sha),
        "{out}"
    );
    let (status, out) = post_to(&ingest, "2", &reading).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");

    let event = msk_event(vec![
        (1, "1", reading.clone(), None),
        (2, "2", reading, None),
    ]);
    let report = atlas_ingest::msk::handle(&ingest, serde_json::from_value(event).unwrap(), None)
        .await
        .expect("another tenant's module never fails the invocation");
    assert_eq!(
        (report.accepted, report.rejected_records),
        (1, 1),
        "{report:?}"
    );
    let letter = dead_letter(&s.objects, 1).await.expect("dead-lettered");
    assert!(
        letter["reason"].as_str().unwrap().contains("cannot run"),
        "{letter}"
    );
}
