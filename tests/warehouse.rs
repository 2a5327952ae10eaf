//! The local warehouse against the machine's PostgreSQL: a database of its
//! own, its schema applied on first use and again on every start.

use atlas_store::{DbConfig, DbRole};
use atlas_tests::TestDb;
use atlas_warehouse::postgres::PgWarehouse;
use atlas_warehouse::schema;

#[tokio::test]
async fn the_schema_applies_on_first_use_and_again_without_change() {
    // A fresh database, migrated like the OLTP one would be; the warehouse
    // only needs its own tables in it.
    let db = TestDb::new().await;
    let pool = DbConfig::new(&db.url, DbRole::AsLogin).pool().unwrap();
    let warehouse = PgWarehouse::new(pool.clone());
    // Before any load has made the tables, it holds nothing: not an error.
    assert_eq!(warehouse.data_as_of().await.unwrap(), None);
    // Two loaders starting at once, then a restart.
    let (a, b) = tokio::join!(warehouse.apply_schema(), warehouse.apply_schema());
    a.unwrap();
    b.unwrap();
    warehouse.apply_schema().await.unwrap();

    let client = pool.get().await.unwrap();
    for (table, columns) in schema::tables(schema::POSTGRES) {
        let found: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(found, columns, "{table}");
    }
    // The natural key is what makes a redelivered reading add nothing.
    let key: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = 'fact_telemetry'::regclass AND i.indisprimary ORDER BY a.attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        key,
        ["tenant_id", "entity_id", "attribute_id", "ingested_at"]
    );
}
