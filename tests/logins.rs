//! Each function logs in as itself (migration V9), a member of exactly one
//! role, and can become nothing else; its settings come from the login,
//! not from startup options, which RDS Proxy refuses.

use atlas_cloud::credentials::Credentials;
use atlas_store::{DbConfig, DbRole};
use atlas_tests::{TestDb, count, db_message, demo_tenants};

/// `db`'s URL with another login.
fn login_url(db: &TestDb, login: &str) -> String {
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{login}@{host}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(conn);
    client
}

async fn setting(client: &tokio_postgres::Client, name: &str) -> (String, String) {
    let row = client
        .query_one(
            "SELECT setting, source FROM pg_settings WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn each_function_login_can_become_nothing_else() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let owner = db.owner().await;
    let owner_name: String = owner
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert!(count(&owner, "SELECT count(*) FROM attributes").await > 0);
    // statement_timeout in milliseconds: under each Lambda's timeout.
    for (login, others, timeout_ms) in [
        ("atlas_ingest", ["atlas_worker", "atlas_query"], "25000"),
        ("atlas_query", ["atlas_worker", "atlas_ingest"], "25000"),
        ("atlas_flusher", ["atlas_app", "atlas_heartbeat"], "60000"),
        ("atlas_heartbeat", ["atlas_app", "atlas_flusher"], "60000"),
        (
            "atlas_lag_checker",
            ["atlas_app", "atlas_heartbeat"],
            "60000",
        ),
        ("atlas_cdc_loader", ["atlas_app", "atlas_flusher"], "60000"),
    ] {
        let client = connect(&login_url(&db, login)).await;
        for role in others
            .iter()
            .copied()
            .chain([owner_name.as_str(), "postgres"])
        {
            let err = client
                .batch_execute(&format!("SET ROLE {role}"))
                .await
                .expect_err(&format!("{login} must not become {role}"));
            assert!(
                db_message(&err).contains("permission denied"),
                "{login} -> {role}: {err}"
            );
        }
        assert_eq!(
            setting(&client, "statement_timeout").await,
            (timeout_ms.to_owned(), "user".to_owned()),
            "{login}: from ALTER ROLE"
        );
        assert_eq!(
            setting(&client, "idle_in_transaction_session_timeout")
                .await
                .1,
            "user",
            "{login}"
        );
    }
    // The app logins see no tenant's rows without the tenant setting.
    for login in ["atlas_ingest", "atlas_query"] {
        let client = connect(&login_url(&db, login)).await;
        for table in [
            "tenants",
            "attributes",
            "entities",
            "entity_jsonb",
            "entity_values_ts",
        ] {
            assert_eq!(
                count(&client, &format!("SELECT count(*) FROM {table}")).await,
                0,
                "{login} {table}"
            );
        }
        client
            .batch_execute("BEGIN; SELECT set_config('app.tenant_id', '1', true)")
            .await
            .unwrap();
        assert!(
            count(&client, "SELECT count(*) FROM attributes").await > 0,
            "{login} with its tenant"
        );
        assert_eq!(
            count(
                &client,
                "SELECT count(*) FROM attributes WHERE tenant_id <> 1"
            )
            .await,
            0
        );
        client.batch_execute("COMMIT").await.unwrap();
    }
}

#[tokio::test]
async fn a_pool_connects_as_rds_proxy_requires() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    // The query API's own pool, as the query API's own login: no startup
    // options and no SET, so the session's role is untouched and its
    // settings come from the login.
    let pool = DbConfig {
        generic_plans: true,
        ..DbConfig::new(login_url(&db, "atlas_query"), DbRole::App)
    }
    .pool()
    .unwrap();
    let client = pool.get().await.unwrap();
    let row = client
        .query_one("SELECT current_user::text, current_setting('role')", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("atlas_query".into(), "none".into())
    );
    for name in ["plan_cache_mode", "statement_timeout"] {
        let (value, source) = setting(&client, name).await;
        assert_eq!(
            source, "user",
            "{name}={value} comes from the login, not the client"
        );
    }
    assert_eq!(
        setting(&client, "plan_cache_mode").await.0,
        "force_generic_plan"
    );
    // The local path: a superuser login switches to the role itself.
    let local = DbConfig::new(&db.url, DbRole::App).pool().unwrap();
    let client = local.get().await.unwrap();
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "atlas_app");
}

async fn session_user(pool: &atlas_store::Pool) -> String {
    pool.get()
        .await
        .unwrap()
        .query_one("SELECT session_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// The pool reads its login from a Secrets Manager secret (moto here), and
/// reads it again when the database refuses it: a rotation needs no
/// redeploy. The rotation moves from one test login to another and drops
/// the first, as a rotated password stops working.
#[tokio::test]
async fn a_rotated_secret_is_read_again_when_the_database_refuses_the_old_login() {
    let db = TestDb::new().await;
    demo_tenants(&db).await;
    let owner = db.owner().await;
    let tag = format!("{}_{}", std::process::id(), fastrand::u32(..));
    let (first, second) = (format!("atlas_rot_{tag}_a"), format!("atlas_rot_{tag}_b"));
    owner
        .batch_execute(&format!(
            "CREATE ROLE {first} LOGIN IN ROLE atlas_app; CREATE ROLE {second} LOGIN IN ROLE atlas_app"
        ))
        .await
        .unwrap();
    let sdk = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let id = format!("atlas/test/{tag}");
    let value = |user: &str| {
        serde_json::json!({"username": user, "password": format!("pw-{user}"), "engine": "postgres"})
            .to_string()
    };
    secrets
        .create_secret()
        .name(&id)
        .secret_string(value(&first))
        .send()
        .await
        .expect("Secrets Manager (moto, see .ci/test) is required for this test");

    // The URL names the database only; the login comes from the secret.
    let url = login_url(&db, "nobody");
    let pool = DbConfig {
        credentials: std::sync::Arc::new(Credentials::secret(id.clone(), sdk.clone())),
        ..DbConfig::new(url, DbRole::App)
    }
    .pool()
    .unwrap();
    assert_eq!(session_user(&pool).await, first);

    // Rotate: the secret names the second login, the first one goes away.
    secrets
        .put_secret_value()
        .secret_id(&id)
        .secret_string(value(&second))
        .send()
        .await
        .unwrap();
    pool.retain(|_, _| false);
    owner
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{first}'; DROP ROLE {first}"
        ))
        .await
        .unwrap();
    assert_eq!(session_user(&pool).await, second);

    drop(pool);
    owner
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{second}'"
        ))
        .await
        .unwrap();
    let _ = owner.batch_execute(&format!("DROP ROLE {second}")).await;
    let _ = secrets
        .delete_secret()
        .secret_id(&id)
        .force_delete_without_recovery(true)
        .send()
        .await;
}

#[tokio::test]
async fn iam_authentication_refuses_a_connection_without_tls() {
    let db = TestDb::new().await;
    let sdk = aws_config::load_from_env().await;
    let err = DbConfig {
        credentials: std::sync::Arc::new(Credentials::iam(sdk)),
        ..DbConfig::new(&db.url, DbRole::App)
    }
    .pool()
    .expect_err("a token must not travel in clear text");
    assert!(err.to_string().contains("needs TLS"), "{err}");
}
