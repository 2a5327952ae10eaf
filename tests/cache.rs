//! The Redis cache in front of eventual point reads, against the machine's
//! real Redis (`ATLAS_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`):
//! a miss fills it, a hit says so, the flusher drops changed entities,
//! strong reads never use it, and with Redis unreachable every read is
//! still answered from PostgreSQL with `X-Cache-Status: bypass`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cache::{CacheConfig, HotCache, Lookup};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_store::flush::{FlushConfig, Flusher};
use atlas_tests::{
    TestDb, api_request, body_json, db_with_entity_123, post_temperature, query_api,
};
use http::StatusCode;
use serde_json::Value;

fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A cache on the real Redis, with keys of its own.
fn cache(db: &TestDb) -> Arc<HotCache> {
    let mut cfg = CacheConfig::new(redis_url());
    cfg.namespace = db.name.clone();
    Arc::new(HotCache::new(cfg).unwrap())
}

/// One short flusher run that tells `cache` what changed; rows moved.
async fn flush_telling(db: &TestDb, cache: Arc<HotCache>) -> i64 {
    let flusher = Flusher {
        pool: db.pool(DbRole::Worker),
        config: FlushConfig {
            max_run: Some(Duration::from_millis(300)),
            stop_margin: Duration::ZERO,
            ..FlushConfig::default()
        },
        metrics: atlas_cloud::metrics::from_env("Atlas"),
        listener: None,
    }
    .with_listener(cache);
    flusher
        .run_until(Instant::now() + Duration::from_secs(60))
        .await
        .unwrap()
        .moved
}

async fn read(api: &QueryApi, tenant: &str, path: &str) -> (StatusCode, String, String, Value) {
    let resp = atlas_query::http::handle(api, api_request(tenant, "GET", path, None)).await;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache, source) = (header("x-cache-status"), header("x-data-source"));
    (resp.status(), cache, source, body_json(&resp))
}

#[tokio::test]
async fn a_miss_fills_the_cache_and_the_flusher_empties_it() {
    let db = db_with_entity_123(20.5).await;
    let cache = cache(&db);
    let key = cache.entity_key(1, 123);
    assert_eq!(
        cache.get(&key).await,
        Lookup::Miss,
        "Redis at {} is required for this test",
        redis_url()
    );
    let api = query_api(&db).with_cache(cache.clone());

    let (status, status_cache, source, first) = read(&api, "1", "/v1/entities/123").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (status_cache.as_str(), source.as_str()),
        ("miss", "primary")
    );
    assert!(matches!(cache.get(&key).await, Lookup::Hit(_)));

    let (status, status_cache, source, hit) = read(&api, "1", "/v1/entities/123").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((status_cache.as_str(), source.as_str()), ("hit", "cache"));
    assert_eq!(hit["hot_attributes"], first["hot_attributes"]);
    assert_eq!(hit["_metadata"]["cache_status"], "hit");
    assert!(hit["_metadata"]["lag_seconds"].as_f64().unwrap() >= 0.0);

    // Strong reads never look at the cache; analytics ones neither.
    let (_, status_cache, source, _) = read(&api, "1", "/v1/entities/123?consistency=strong").await;
    assert_eq!(
        (status_cache.as_str(), source.as_str()),
        ("bypass", "primary")
    );
    let (_, status_cache, _, _) = read(&api, "1", "/v1/entities/123?consistency=analytics").await;
    assert_eq!(status_cache, "bypass");

    // An entry older than the caller allows is not served.
    let (_, status_cache, source, _) = read(&api, "1", "/v1/entities/123?max_lag_seconds=0").await;
    assert_eq!(
        (status_cache.as_str(), source.as_str()),
        ("miss", "primary")
    );

    // Entries expire after the TTL even if no flush ever drops them.
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= cache.ttl().as_secs() as i64, "{ttl}");

    // Another tenant reading the same id is not served tenant 1's entry.
    let (status, _, _, body) = read(&api, "2", "/v1/entities/123").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.get("hot_attributes").is_none());

    // A flush that changes the entity drops its key: the next read is fresh.
    post_temperature(&db, 30.5).await;
    assert_eq!(flush_telling(&db, cache.clone()).await, 1);
    assert_eq!(
        cache.get(&key).await,
        Lookup::Miss,
        "the flusher dropped the key"
    );
    let (_, status_cache, _, after) = read(&api, "1", "/v1/entities/123").await;
    assert_eq!(status_cache, "miss");
    assert_eq!(after["hot_attributes"]["temperature"], 30.5);
}

#[tokio::test]
async fn with_redis_unreachable_reads_are_answered_from_postgres() {
    let db = db_with_entity_123(20.5).await;
    // Nothing listens on port 1: every connection attempt is refused.
    let down = Arc::new(HotCache::new(CacheConfig::new("redis://127.0.0.1:1")).unwrap());
    let api = query_api(&db).with_cache(down.clone());
    for _ in 0..3 {
        let (status, status_cache, source, body) = read(&api, "1", "/v1/entities/123").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (status_cache.as_str(), source.as_str()),
            ("bypass", "primary")
        );
        assert_eq!(body["hot_attributes"]["temperature"], 20.5);
        assert_eq!(body["_metadata"]["cache_status"], "bypass");
    }
    // A Redis that accepts connections and never answers costs one
    // timeout, then is skipped.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("redis://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let hung = Arc::new(HotCache::new(CacheConfig::new(silent_url)).unwrap());
    let hung_api = query_api(&db).with_cache(hung);
    for _ in 0..3 {
        let (status, status_cache, _, body) = read(&hung_api, "1", "/v1/entities/123").await;
        assert_eq!(
            (status, status_cache.as_str()),
            (StatusCode::OK, "bypass"),
            "{body}"
        );
    }
    held.abort();

    // The flusher carries on too.
    post_temperature(&db, 30.5).await;
    assert_eq!(flush_telling(&db, down).await, 1);
    let (status, _, _, body) = read(&api, "1", "/v1/entities/123").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["hot_attributes"]["temperature"], 30.5);
}
