//! Acknowledged readings survive a PostgreSQL crash. The test runs its own
//! throwaway cluster (the one `atlas dev` uses), aborts every server
//! process after the 202s (`pg_ctl stop -m immediate`, no checkpoint),
//! restarts it through crash recovery, and finds every acknowledged reading
//! still staged and then flushed. With the seed's UNLOGGED staging table,
//! recovery would have emptied it.

use atlas_devstack::cluster::Cluster;
use atlas_ingest::{IngestConfig, IngestService};
use atlas_store::flush::{FlushConfig, flush_batch};
use atlas_store::{DbConfig, DbRole};
use atlas_tests::{apigw_request, body_json, count};
use serde_json::json;

#[tokio::test]
async fn acknowledged_readings_survive_a_database_crash() {
    let dir = std::env::temp_dir().join(format!(
        "atlas-crash-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cluster = Cluster::start(&dir, port).expect("a throwaway cluster");
    let url = cluster.url();
    atlas_store::migrate(&DbConfig::new(&url, DbRole::AsLogin), &Default::default())
        .await
        .unwrap();
    let worker = atlas_store::DbConfig::new(&url, DbRole::Worker)
        .pool()
        .unwrap();
    atlas_devstack::demo::seed(&**worker.get().await.unwrap(), &[1])
        .await
        .unwrap();
    drop(worker);

    let svc = IngestService::new(
        atlas_store::DbConfig::new(&url, DbRole::App)
            .pool()
            .unwrap(),
        IngestConfig::default(),
    );
    let mut acknowledged = 0;
    for batch in 0..20 {
        let readings: Vec<_> = (0..50)
            .map(
                |i| json!({"entity_id": batch * 50 + i, "attribute": "temperature", "value": 20.5}),
            )
            .collect();
        let resp = atlas_ingest::http::handle(
            &svc,
            apigw_request(Some("1"), &json!({ "readings": readings }).to_string()),
        )
        .await;
        assert_eq!(resp.status(), 202);
        acknowledged += body_json(&resp)["accepted"].as_i64().unwrap();
    }
    drop(svc);

    cluster.crash().unwrap();
    let cluster = Cluster::start(&dir, port).expect("restart after the crash");

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        count(&client, "SELECT count(*) FROM entity_values_ingest").await,
        acknowledged
    );
    let worker = atlas_store::DbConfig::new(&url, DbRole::Worker)
        .pool()
        .unwrap();
    while flush_batch(&worker, &FlushConfig::default())
        .await
        .unwrap()
        .moved
        > 0
    {}
    assert_eq!(
        count(&client, "SELECT count(*) FROM entity_values_ts").await,
        1_000
    );
    drop(client);
    drop(worker);
    cluster.destroy().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
