//! Schema invariants: partitions, indexes, Row-Level Security as the
//! application role, migrations that are idempotent.

use atlas_core::{AcceptWindow, AttributeName, DataType, TenantId};
use atlas_store::{DbConfig, DbRole, begin_tenant, ensure_attribute, ensure_tenant};
use atlas_tests::{TestDb, current_partition, db_message};

#[tokio::test]
async fn migrations_run_twice_without_change() {
    let db = TestDb::new().await;
    let applied = atlas_store::migrate(
        &DbConfig::new(&db.url, DbRole::AsLogin),
        &AcceptWindow::default(),
    )
    .await
    .unwrap();
    assert_eq!(applied, 0, "a second run applies nothing");
    let owner = db.owner().await;
    let n: i64 = owner
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n >= 1);
}

#[tokio::test]
async fn tables_are_partitioned_as_designed() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let strategy = |t: &'static str| {
        let owner = &owner;
        async move {
            let r = owner
                .query_one(
                    "SELECT p.partstrat::text, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid), \
                            pg_get_partkeydef(c.oid) \
                     FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = $1",
                    &[&t],
                )
                .await
                .unwrap();
            (
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
            )
        }
    };
    let (s, n, key) = strategy("entities").await;
    assert_eq!((s.as_str(), key.as_str()), ("r", "RANGE (entity_id)"));
    assert_eq!(n, 21, "20 ranges and a default");
    let (s, n, key) = strategy("entity_jsonb").await;
    assert_eq!((s.as_str(), n, key.as_str()), ("h", 64, "HASH (tenant_id)"));
    let (s, n, key) = strategy("entity_values_ts").await;
    assert_eq!((s.as_str(), key.as_str()), ("r", "RANGE (ingested_at)"));
    // Window: 30 days back through the month after next hour: 2 to 4 months.
    assert!(
        (2..=4).contains(&n),
        "monthly partitions ahead of the data, got {n}"
    );
    let this_month: bool = owner
        .query_one(
            "SELECT to_regclass(format('entity_values_ts_%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))) IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(this_month);
    let staging_logged: String = owner
        .query_one(
            "SELECT relpersistence::text FROM pg_class WHERE relname = 'entity_values_ingest'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        staging_logged, "p",
        "staging is durable (logged), unlike the seed's UNLOGGED table"
    );
}

#[tokio::test]
async fn indexes_exist() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let defs: Vec<String> = owner
        .query("SELECT indexdef FROM pg_indexes WHERE tablename IN ('entity_values_ts', 'entity_jsonb')", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has = |needle: &str| defs.iter().any(|d| d.contains(needle));
    assert!(has("USING brin (ingested_at)"), "{defs:?}");
    assert!(has("(tenant_id, attribute_id, ingested_at)"), "{defs:?}");
    assert!(has("USING gin (tenant_id, hot_attrs)"), "{defs:?}");
    assert!(has("(tenant_id, updated_at DESC)"), "{defs:?}");
    assert!(has("PRIMARY KEY") || has("pkey"), "{defs:?}");
}

#[tokio::test]
async fn partitions_are_created_on_demand_and_bounded() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let created: i32 = owner
        .query_one(
            "SELECT atlas_ensure_ts_partitions('2020-01-15', '2020-03-01')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 3);
    let again: i32 = owner
        .query_one(
            "SELECT atlas_ensure_ts_partitions('2020-01-15', '2020-03-01')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, 0);
    let err = owner
        .query_one(
            "SELECT atlas_ensure_ts_partitions('2000-01-01', '2030-01-01')",
            &[],
        )
        .await;
    assert!(err.is_err(), "a runaway range is refused");
}

async fn two_tenants(db: &TestDb) -> (TenantId, TenantId, i64, i64) {
    let worker = db.pool(DbRole::Worker).get().await.unwrap();
    let (a, b) = (TenantId::new(101).unwrap(), TenantId::new(202).unwrap());
    let temp = AttributeName::parse("temperature").unwrap();
    ensure_tenant(&**worker, a, "A", false).await.unwrap();
    ensure_tenant(&**worker, b, "B", false).await.unwrap();
    let attr_a = ensure_attribute(&**worker, a, &temp, DataType::Decimal, true)
        .await
        .unwrap();
    let attr_b = ensure_attribute(&**worker, b, &temp, DataType::Decimal, true)
        .await
        .unwrap();
    worker
        .batch_execute(
            "INSERT INTO entity_values_ts (entity_id, tenant_id, attribute_id, value_decimal, ingested_at) \
             SELECT 1, tenant_id, attribute_id, 1.5, now() FROM attributes; \
             INSERT INTO entities (entity_id, tenant_id, entity_type) VALUES (1, 101, 'd'), (1, 202, 'd'); \
             INSERT INTO entity_jsonb (entity_id, tenant_id, hot_attrs) VALUES (1, 101, '{\"temperature\": 1}'), (1, 202, '{\"temperature\": 2}');",
        )
        .await
        .unwrap();
    (a, b, attr_a, attr_b)
}

#[tokio::test]
async fn the_app_role_sees_only_its_tenant() {
    let db = TestDb::new().await;
    let (a, b, _, _) = two_tenants(&db).await;
    let pool = db.pool(DbRole::App);
    let mut client = pool.get().await.unwrap();
    let whoami: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(whoami, "atlas_app");
    for table in [
        "tenants",
        "attributes",
        "entities",
        "entity_values_ts",
        "entity_jsonb",
    ] {
        let tx = begin_tenant(&mut client, a).await.unwrap();
        // Hand-written SQL asking for everything, including the other tenant by name.
        let sql = format!("SELECT DISTINCT tenant_id FROM {table}");
        let seen: Vec<i64> = tx
            .query(&sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seen, vec![a.get()], "{table}");
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
        let n: i64 = tx.query_one(&sql, &[&b.get()]).await.unwrap().get(0);
        assert_eq!(n, 0, "{table}: tenant B is invisible");
        tx.rollback().await.unwrap();
    }
    // Without a tenant, nothing at all.
    let n: i64 = client
        .query_one("SELECT count(*) FROM entity_values_ts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_app_role_cannot_write_for_another_tenant() {
    let db = TestDb::new().await;
    let (a, b, _, attr_b) = two_tenants(&db).await;
    let pool = db.pool(DbRole::App);
    let mut client = pool.get().await.unwrap();

    let tx = begin_tenant(&mut client, a).await.unwrap();
    let err = tx
        .execute(
            "INSERT INTO attributes (tenant_id, attribute_name, data_type) VALUES ($1, 'sneaky', 'int')",
            &[&b.get()],
        )
        .await
        .unwrap_err();
    let err = db_message(&err);
    assert!(err.contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // Staging: the tenant column is filled by the database, never by the caller.
    let tx = begin_tenant(&mut client, a).await.unwrap();
    let err = tx
        .execute(
            "INSERT INTO entity_values_ingest (entity_id, tenant_id, attribute_id, value_int, ingested_at) \
             VALUES (1, $1, $2, 1, now())",
            &[&b.get(), &attr_b],
        )
        .await
        .unwrap_err();
    let err = db_message(&err);
    assert!(err.contains("permission denied"), "{err}");
    tx.rollback().await.unwrap();

    let tx = begin_tenant(&mut client, a).await.unwrap();
    let err = tx
        .query("SELECT * FROM entity_values_ingest", &[])
        .await
        .unwrap_err();
    let err = db_message(&err);
    assert!(
        err.contains("permission denied"),
        "staging is write-only for the app: {err}"
    );
    tx.rollback().await.unwrap();

    // Updates and deletes on other tenants' rows are refused or see nothing.
    for sql in [
        "UPDATE entity_jsonb SET hot_attrs = '{}' WHERE tenant_id = 202",
        "DELETE FROM entity_values_ts WHERE tenant_id = 202",
        "UPDATE tenants SET is_active = false",
    ] {
        let tx = begin_tenant(&mut client, a).await.unwrap();
        let err = tx.execute(sql, &[]).await.unwrap_err();
        assert!(
            db_message(&err).contains("permission denied"),
            "{sql}: {err}"
        );
        tx.rollback().await.unwrap();
    }
    let owner = db.owner().await;
    let n: i64 = owner
        .query_one(
            "SELECT count(*) FROM entity_values_ts WHERE tenant_id = 202",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "tenant B's data is untouched");
}

#[tokio::test]
async fn partitions_are_not_reachable_directly_by_the_app() {
    let db = TestDb::new().await;
    two_tenants(&db).await;
    let pool = db.pool(DbRole::App);
    let client = pool.get().await.unwrap();
    let part = current_partition(&client).await;
    for table in [
        part.as_str(),
        "entity_jsonb_p0",
        "entities_p0",
        "entities_default",
        "mv_entity_attribute_stats",
    ] {
        let err = client
            .query(&format!("SELECT * FROM {table}"), &[])
            .await
            .unwrap_err();
        let err = db_message(&err);
        assert!(err.contains("permission denied"), "{table}: {err}");
    }
}

#[tokio::test]
async fn no_role_of_the_app_may_create_temporary_objects() {
    let db = TestDb::new().await;
    for role in [DbRole::App, DbRole::Worker] {
        let client = db.pool(role).get().await.unwrap();
        let err = client
            .batch_execute("CREATE TEMP TABLE shadow (a int)")
            .await
            .unwrap_err();
        let err = db_message(&err);
        assert!(err.contains("permission denied"), "{role:?}: {err}");
    }
}

/// `entity_jsonb_search` is not a security barrier (that would keep the GIN
/// index out of every search), so a function of the caller's could see
/// other tenants' rows before the view's tenant filter. The app role can
/// create none: not in `public`, not in `pg_temp`.
#[tokio::test]
async fn the_app_role_cannot_create_a_function_to_peek_through_the_search_view() {
    let db = TestDb::new().await;
    let client = db.pool(DbRole::App).get().await.unwrap();
    for schema in ["public", "pg_temp"] {
        let err = client
            .batch_execute(&format!(
                "CREATE FUNCTION {schema}.peek(jsonb) RETURNS boolean \
                 LANGUAGE sql COST 0.0001 AS 'SELECT true'"
            ))
            .await
            .unwrap_err();
        let err = db_message(&err);
        assert!(err.contains("permission denied"), "{schema}: {err}");
    }
}

#[tokio::test]
async fn a_change_cannot_name_another_tenants_attribute() {
    let db = TestDb::new().await;
    let (a, b, attr_a, attr_b) = two_tenants(&db).await;
    // Even the owner, whom Row-Level Security does not stop, cannot tie
    // tenant B's change to tenant A's attribute: the key names the tenant.
    let owner = db.owner().await;
    let insert =
        "INSERT INTO hot_changes (tenant_id, attribute_id, kind) VALUES ($1, $2, 'promote')";
    let err = owner
        .execute(insert, &[&b.get(), &attr_a])
        .await
        .expect_err("another tenant's attribute");
    assert!(db_message(&err).contains("foreign key"), "{err}");
    owner.execute(insert, &[&a.get(), &attr_a]).await.unwrap();
    owner.execute(insert, &[&b.get(), &attr_b]).await.unwrap();
}

/// The query API's tenant check is one statement outside any transaction,
/// for many tenants at once: each is read under the caller's own
/// Row-Level Security, and the caller's tenant setting is left as it was.
#[tokio::test]
async fn the_tenant_check_answers_in_one_statement_and_changes_no_setting() {
    let db = TestDb::new().await;
    let (a, b, _, _) = two_tenants(&db).await;
    db.deactivate(b.get()).await;
    let mut client = db.pool(DbRole::App).get().await.unwrap();
    let asked = vec![a.get(), b.get(), 999, a.get()];
    let active: Vec<i64> = client
        .query_one("SELECT atlas_active_tenants($1)", &[&asked])
        .await
        .unwrap()
        .get(0);
    // Deactivated and unknown tenants are left out.
    assert_eq!(active, vec![a.get(), a.get()]);
    // Outside a transaction no tenant is left behind for the next statement.
    let n: i64 = client
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // Inside one, the transaction's own tenant stays.
    let tx = begin_tenant(&mut client, a).await.unwrap();
    let active: Vec<i64> = tx
        .query_one("SELECT atlas_active_tenants($1)", &[&vec![b.get()]])
        .await
        .unwrap()
        .get(0);
    assert!(active.is_empty());
    let seen: Vec<i64> = tx
        .query("SELECT tenant_id FROM tenants", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, vec![a.get()]);
}
