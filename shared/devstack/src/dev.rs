//! `atlas dev`: the write path, the query API (so far entity reads and the
//! plugin registry) and the heartbeat on one machine.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cache::{CacheConfig, HotCache};
use atlas_http::jwt::Signer;
use atlas_http::local::{LocalGateway, Routes, handler};
use atlas_ingest::{IngestConfig, IngestService};
use atlas_objects::{Location, ObjectStore, S3Store};
use atlas_plugins::{Registry, Transforms};
use atlas_query::QueryApi;
use atlas_store::flush::{FlushConfig, Flusher};
use atlas_store::heartbeat::HeartbeatConfig;
use atlas_store::{DbConfig, DbRole};

use crate::cluster::Cluster;

#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Use this database instead of a private cluster.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub pg_port: u16,
}

pub type DevError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the stack until `shutdown` resolves. `ready` is called with the
/// bound address once requests are accepted.
pub async fn run(
    opts: DevOptions,
    shutdown: impl Future<Output = ()> + Send,
    ready: impl FnOnce(std::net::SocketAddr, &str),
) -> Result<(), DevError> {
    let (url, cluster) = match &opts.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = opts.data_dir.clone();
            let pg_port = opts.pg_port;
            let c = tokio::task::spawn_blocking(move || Cluster::start(&dir, pg_port)).await??;
            (c.url(), Some(c))
        }
    };
    let result = serve(&opts, &url, shutdown, ready).await;
    if let Some(c) = cluster {
        tracing::info!("stopping the private PostgreSQL cluster");
        tokio::task::spawn_blocking(move || c.stop()).await??;
    }
    result
}

async fn serve(
    opts: &DevOptions,
    url: &str,
    shutdown: impl Future<Output = ()> + Send,
    ready: impl FnOnce(std::net::SocketAddr, &str),
) -> Result<(), DevError> {
    let ingest_cfg = IngestConfig::from_env()?;
    let applied = atlas_store::migrate(url, &ingest_cfg.window).await?;
    tracing::info!(applied, "migrations up to date");

    let worker = DbConfig::new(url, DbRole::Worker).pool()?;
    if crate::demo::seed_if_empty(&**worker.get().await?).await? {
        tracing::info!("created demo tenants 1, 2 and 3 with the demo attribute catalog");
    }
    let objects = object_store(&opts.data_dir).await?;
    let app = DbConfig::new(url, DbRole::App).pool()?;
    let host = atlas_plugin_host::Host::new()?;
    let transforms = Transforms::new(
        app.clone(),
        objects.clone(),
        host.clone(),
        ingest_cfg.catalog_ttl,
    );
    let ingest = Arc::new(IngestService::new(app.clone(), ingest_cfg).with_transforms(transforms));
    // The machine's Redis unless told otherwise; reads bypass it while it
    // is down, so the stack runs without one too.
    let cache = Arc::new(HotCache::new(
        CacheConfig::from_env()?.unwrap_or_else(|| CacheConfig::new("redis://127.0.0.1:6379")),
    )?);
    let reads = DbConfig {
        generic_plans: true,
        ..DbConfig::new(url, DbRole::App)
    }
    .pool()?;
    let query = Arc::new(
        QueryApi::new(
            reads,
            Registry::new(app, objects, host),
            atlas_query::QueryConfig::from_env()?,
        )
        .with_cache(cache.clone()),
    );
    let secret = crate::secret::load_or_create(&opts.data_dir)?;
    let routes = Routes::default()
        .route(
            atlas_ingest::http::PATH,
            handler(move |req| {
                let svc = ingest.clone();
                async move { atlas_ingest::http::handle(&svc, req).await }
            }),
        )
        .route(atlas_plugins::http::PREFIX, query_handler(&query))
        .route(atlas_query::http::ENTITIES, query_handler(&query))
        .route(atlas_query::http::ATTRIBUTES, query_handler(&query))
        .route(atlas_query::http::ANALYTICS, query_handler(&query));
    let gateway = LocalGateway {
        routes,
        signer: Arc::new(Signer::new(&secret)?),
        max_body_bytes: 10 * 1024 * 1024,
    };

    let flusher = Flusher {
        pool: worker.clone(),
        config: FlushConfig::from_env()?,
        metrics: atlas_cloud::metrics::from_env("Atlas"),
        listener: None,
    }
    .with_listener(cache);
    let flusher = tokio::spawn(flush_forever(flusher));
    let heartbeat = tokio::spawn(heartbeat_forever(worker, HeartbeatConfig::from_env()?));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
    ready(listener.local_addr()?, url);
    let served = gateway.serve(listener, shutdown).await;
    flusher.abort();
    heartbeat.abort();
    Ok(served?)
}

/// The query API function, as API Gateway would invoke it.
fn query_handler(api: &Arc<QueryApi>) -> atlas_http::local::Handler {
    let api = api.clone();
    handler(move |req| {
        let api = api.clone();
        async move { atlas_query::http::handle(&api, req).await }
    })
}

/// `ATLAS_OBJECT_STORE` when set (an S3 bucket, say moto's, created if
/// missing), else a directory beside the stack's other state.
async fn object_store(data_dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>, DevError> {
    let location = match std::env::var("ATLAS_OBJECT_STORE") {
        Ok(v) if !v.is_empty() => Location::from_env()?,
        _ => Location::Dir(data_dir.join("objects")),
    };
    tracing::info!(%location, "plugin modules are kept in");
    if let Location::S3 { bucket, prefix } = &location {
        let s3 = S3Store::connect(bucket, prefix).await;
        s3.create_bucket_if_missing().await?;
        return Ok(Arc::new(s3));
    }
    Ok(location.open().await?)
}

/// A scheduled function as EventBridge runs it: one-minute invocations
/// back to back. A failed run is logged and retried a second later.
async fn every_minute<F, Fut>(name: &'static str, run: F)
where
    F: Fn(Instant) -> Fut,
    Fut: Future<Output = Result<(), atlas_store::StoreError>>,
{
    loop {
        if let Err(e) = run(Instant::now() + Duration::from_secs(60)).await {
            tracing::warn!(error = %e, "{name} run failed; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn flush_forever(flusher: Flusher) {
    every_minute("flush", |deadline| {
        let flusher = &flusher;
        async move {
            let t = flusher.run_until(deadline).await?;
            if t.moved > 0 {
                tracing::info!(rows = t.moved, new = t.inserted, "flushed");
            }
            Ok(())
        }
    })
    .await
}

async fn heartbeat_forever(pool: atlas_store::Pool, cfg: HeartbeatConfig) {
    every_minute("heartbeat", |deadline| {
        let (pool, cfg) = (&pool, &cfg);
        async move {
            let beats = atlas_store::heartbeat::beat_until(pool, cfg, deadline).await?;
            tracing::debug!(?beats, "heartbeat run");
            Ok(())
        }
    })
    .await
}
