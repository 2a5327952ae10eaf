//! `shared/query/openapi.json` and the implementation agree: every
//! documented operation answers, with its documented parameters, one of
//! its documented statuses; undocumented methods are refused; and every
//! error code the API gives is in the document. The same walk over the
//! document is the cross-tenant suite: tenant 2 with tenant 1's ids and
//! names gets 404s and never a byte of tenant 1's data.

use atlas_ingest::{IngestConfig, IngestService};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_tests::{
    TestDb, api_request, api_request_scoped, body_json, db_with_entity_123, example_plugin,
    query_api_with,
};
use http::StatusCode;
use serde_json::Value;

fn doc() -> Value {
    let path = format!(
        "{}/../shared/query/openapi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the document is JSON")
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |node, key| &node[key]),
        None => v,
    }
}

struct Op {
    method: String,
    template: String,
    /// The scope the operation's token must carry; `None`: any valid token.
    scope: Option<String>,
    params: Vec<Value>,
    statuses: Vec<u16>,
    /// The documented example of a JSON body, or `Wasm` for a module.
    body: Option<Body>,
}

enum Body {
    Json(Value),
    Wasm,
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push(Op {
                method: method.to_uppercase(),
                template: template.clone(),
                scope: op["security"][0]["bearer"]
                    .as_array()
                    .expect("every operation names its security")
                    .first()
                    .map(|s| s.as_str().expect("a scope is a string").to_owned()),
                params: op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| resolve(doc, p).clone()).collect())
                    .unwrap_or_default(),
                statuses: op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|s| s.parse().unwrap())
                    .collect(),
                body: op
                    .get("requestBody")
                    .map(|b| match b["content"].get("application/json") {
                        Some(json) => Body::Json(json["example"].clone()),
                        None => Body::Wasm,
                    }),
            });
        }
    }
    // Upload, then creations and activation, then reads and changes, then
    // deletion; otherwise by path.
    let rank = |o: &Op| match o.method.as_str() {
        "PUT" => 0,
        "POST" => 1,
        "DELETE" => 3,
        _ => 2,
    };
    ops.sort_by_key(rank);
    ops
}

fn error_codes(doc: &Value) -> Vec<String> {
    doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

struct Api {
    _db: TestDb,
    _warehouse: TestDb,
    query: QueryApi,
    ingest: IngestService,
}

impl Api {
    async fn new() -> Self {
        // Entity 123 exists, so reading it can succeed; the warehouse
        // holds what the database holds, so the routes it serves can too.
        let db = db_with_entity_123(21.5).await;
        // The documents' example attribute, which only tenant 1 has.
        let worker = db.pool(DbRole::Worker);
        atlas_store::ensure_attribute(
            &**worker.get().await.unwrap(),
            atlas_core::TenantId::new(1).unwrap(),
            &atlas_core::AttributeName::parse("pressure").unwrap(),
            atlas_core::DataType::Decimal,
            false,
        )
        .await
        .unwrap();
        let warehouse = TestDb::new().await;
        let loader = atlas_warehouse::Loader::new(
            warehouse_of(&warehouse),
            atlas_tests::dead_letters(&atlas_tests::local_store("openapi"), "cdc-loader"),
            atlas_cdc::Options::default(),
        );
        let tap = atlas_tests::tap(&db).await;
        for event in tap.snapshot().await.unwrap().events {
            loader.handle(&event).await.unwrap();
        }
        // The documents' example webhook, tenant 1's; a receiver on this
        // machine may be registered, as under `atlas dev`.
        let example = doc()["components"]["parameters"]["WebhookId"]["example"].clone();
        db.owner()
            .await
            .execute(
                "INSERT INTO webhooks (tenant_id, webhook_id, url, events, secret) \
                 VALUES (1, $1, 'http://localhost:8787/atlas-hook', '{entity.updated}', $2)",
                &[
                    &example.as_str().unwrap(),
                    &format!("whsec_{}", "0".repeat(64)),
                ],
            )
            .await
            .unwrap();
        let config = atlas_query::QueryConfig {
            webhooks: atlas_webhooks::AddressPolicy {
                allow_loopback: true,
            },
            ..Default::default()
        };
        let query = query_api_with(&db, config).with_warehouse(warehouse_of(&warehouse));
        let ingest = IngestService::new(db.pool(DbRole::App), IngestConfig::default());
        Self {
            _db: db,
            _warehouse: warehouse,
            query,
            ingest,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (StatusCode, Value) {
        self.call_as("1", method, path, body).await
    }

    async fn call_as(
        &self,
        tenant: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        self.call_with(api_request(tenant, method, path, body))
            .await
    }

    async fn call_with(&self, req: lambda_http::Request) -> (StatusCode, Value) {
        let path = req.uri().path().to_owned();
        let resp = if path.starts_with("/v1/telemetry") {
            atlas_ingest::http::handle(&self.ingest, req).await
        } else {
            atlas_query::http::handle(&self.query, req).await
        };
        (resp.status(), body_json(&resp))
    }
}

fn warehouse_of(db: &TestDb) -> std::sync::Arc<dyn atlas_warehouse::Warehouse> {
    std::sync::Arc::new(atlas_warehouse::PgWarehouse::new(
        atlas_store::DbConfig::new(&db.url, DbRole::AsLogin)
            .pool()
            .unwrap(),
    ))
}

/// The operation's path and query string, every parameter set to its example.
fn concrete(op: &Op, skip: Option<&str>) -> String {
    let mut path = op.template.clone();
    let mut query = Vec::new();
    for p in &op.params {
        let name = p["name"].as_str().unwrap();
        let example = match &p["example"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match p["in"].as_str().unwrap() {
            "path" => path = path.replace(&format!("{{{name}}}"), &example),
            _ if Some(name) == skip => {}
            _ => query.push(format!("{name}={example}")),
        }
    }
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn body_for(op: &Op) -> Option<Vec<u8>> {
    match &op.body {
        None => None,
        Some(Body::Json(example)) => Some(example.to_string().into_bytes()),
        Some(Body::Wasm) => Some(example_plugin("fahrenheit_to_celsius")),
    }
}

#[tokio::test]
async fn every_documented_operation_answers_with_its_documented_parameters() {
    let doc = doc();
    let codes = error_codes(&doc);
    let api = Api::new().await;
    for op in operations(&doc) {
        let path = concrete(&op, None);
        let (status, body) = api.call(&op.method, &path, body_for(&op).as_deref()).await;
        assert!(
            status.is_success(),
            "{} {path} with every documented parameter answered {status}: {body}",
            op.method
        );
        assert!(
            op.statuses.contains(&status.as_u16()),
            "{} {path} answered {status}, which the document does not list",
            op.method
        );
        // Each required query parameter, left out, is a documented 4xx.
        for p in op
            .params
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
        {
            let name = p["name"].as_str().unwrap();
            let path = concrete(&op, Some(name));
            let (status, body) = api.call(&op.method, &path, body_for(&op).as_deref()).await;
            assert!(
                status.is_client_error() && op.statuses.contains(&status.as_u16()),
                "{} {path} without {name}: {status}",
                op.method
            );
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                codes.iter().any(|c| c == code),
                "undocumented error code {code:?}"
            );
        }
    }
}

#[tokio::test]
async fn undocumented_methods_and_parameters_are_refused_with_documented_codes() {
    let doc = doc();
    let codes = error_codes(&doc);
    let api = Api::new().await;
    let ops = operations(&doc);
    for template in doc["paths"].as_object().unwrap().keys() {
        let documented: Vec<&str> = ops
            .iter()
            .filter(|o| &o.template == template)
            .map(|o| o.method.as_str())
            .collect();
        let op = ops.iter().find(|o| &o.template == template).unwrap();
        let path = concrete(op, None);
        let path = path.split('?').next().unwrap();
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if documented.contains(&method) {
                continue;
            }
            let (status, body) = api.call(method, path, None).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                codes.iter().any(|c| c == code),
                "undocumented error code {code:?}"
            );
        }
    }
    // Parameters the document does not list are refused, not ignored.
    for op in ops
        .iter()
        .filter(|o| o.method == "GET" && o.template.starts_with("/v1/entities"))
    {
        let path = concrete(op, None);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, body) = api
            .call("GET", &format!("{path}{sep}undocumented=1"), None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unknown_parameter")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn another_tenants_ids_and_names_are_404s_on_every_route() {
    let doc = doc();
    let api = Api::new().await;
    let wasm = example_plugin("fahrenheit_to_celsius");
    let (status, upload) = api.call("PUT", "/v1/plugins/f2c", Some(&wasm)).await;
    assert_eq!(status, StatusCode::CREATED);
    let sha = upload["sha256"].as_str().unwrap().to_owned();
    api.call("POST", "/v1/plugins/f2c/versions/1/activate", None)
        .await;
    // An attribute only tenant 1 has (the documents' example name, made
    // with the test's API; the same definition again is a 200).
    let (status, _) = api
        .call(
            "POST",
            "/v1/attributes",
            Some(br#"{"name":"pressure","data_type":"decimal"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut probed = 0;
    for op in operations(&doc) {
        let names_something = op.params.iter().any(|p| p["in"] == "path");
        if !names_something || op.method == "PUT" {
            continue;
        }
        let path = concrete(&op, None);
        let (status, body) = api
            .call_as("2", &op.method, &path, body_for(&op).as_deref())
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "tenant 2: {} {path}: {body}",
            op.method
        );
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(1),
            "only the error: {body}"
        );
        probed += 1;
    }
    assert!(probed >= 4, "every route that names a resource was probed");

    // Listing shows tenant 2 nothing of tenant 1's, and the same name is
    // tenant 2's own: its first version, not tenant 1's second.
    let (_, list) = api.call_as("2", "GET", "/v1/plugins", None).await;
    assert_eq!(list, serde_json::json!({"plugins": []}));
    let (status, own) = api
        .call_as("2", "PUT", "/v1/plugins/f2c", Some(&wasm))
        .await;
    assert_eq!(
        (status, own["version"].as_i64()),
        (StatusCode::CREATED, Some(1))
    );
    // Tenant 1's plugin survived tenant 2's delete attempt.
    let (_, list) = api.call("GET", "/v1/plugins", None).await;
    assert_eq!(list["plugins"][0]["active_version"], 1);
    assert_eq!(list["plugins"][0]["versions"][0]["sha256"], sha.as_str());
}

#[tokio::test]
async fn every_operation_needs_its_documented_scope_and_no_other() {
    let doc = doc();
    let api = Api::new().await;
    let all = ["telemetry:write", "read", "admin"];
    for op in operations(&doc) {
        let path = concrete(&op, None);
        let body = body_for(&op);
        let with = async |scopes: &[&str]| {
            api.call_with(api_request_scoped(
                "1",
                scopes,
                &op.method,
                &path,
                body.as_deref(),
            ))
            .await
        };
        let Some(scope) = &op.scope else {
            // Open to any valid token: one without a single scope is served.
            let (status, out) = with(&[]).await;
            assert!(
                status.is_success(),
                "{} {path} with a token of no scope answered {status}: {out}",
                op.method
            );
            assert!(
                !op.statuses.contains(&403),
                "{} {path} needs no scope yet documents 403",
                op.method
            );
            continue;
        };
        let others: Vec<&str> = all.iter().copied().filter(|s| s != scope).collect();
        let (status, out) = with(&others).await;
        assert_eq!(
            (status, out["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("insufficient_scope")),
            "{} {path} without {scope}: {out}",
            op.method,
        );
        assert!(
            op.statuses.contains(&403),
            "{} {path} does not document 403",
            op.method
        );
        let (status, out) = with(&[scope]).await;
        assert!(
            status.is_success(),
            "{} {path} with only {scope} answered {status}: {out}",
            op.method,
        );
    }
}
