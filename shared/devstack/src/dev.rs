//! `atlas dev`: the write path, the query API, the heartbeat, the lag
//! checker, and the change pipeline into a local warehouse (the change tap standing in for
//! Debezium and MSK, then the CDC-batch loader) on one machine.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_app::Settings;
use atlas_app::startup::{self, Heartbeat};
use atlas_cache::CacheConfig;
use atlas_core::TenantId;
use atlas_gateway::jwt::Signer;
use atlas_gateway::local::{LocalGateway, Routes, handler};
use atlas_objects::{Location, S3Store};
use atlas_query::QueryApi;
use atlas_store::DbRole;
use atlas_store::flush::Flusher;

use crate::cluster::Cluster;

#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Use this database instead of a private cluster.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub pg_port: u16,
    /// The warehouse (`ATLAS_WAREHOUSE_URL`); default: a database of its
    /// own beside the stack's, `<database>_warehouse`, created if missing.
    pub warehouse_url: Option<String>,
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
    let settings = local_settings(opts, url).await?;
    let applied =
        atlas_store::migrate(&settings.database(DbRole::AsLogin)?, &settings.window()).await?;
    tracing::info!(applied, "migrations up to date");
    let worker = settings.database(DbRole::Worker)?.pool()?;
    if crate::demo::seed_if_empty(&**worker.get().await?).await? {
        tracing::info!("created demo tenants 1, 2 and 3 with the demo attribute catalog");
    }

    // The functions exactly as their Lambda mains build them.
    let ingest = Arc::new(startup::ingest(&settings).await?);
    let query = Arc::new(startup::query_api(&settings).await?);
    let flusher = tokio::spawn(flush_forever(startup::flusher(&settings)?));
    let heartbeat = tokio::spawn(heartbeat_forever(startup::heartbeat(&settings)?));
    let lag_checker = tokio::spawn(check_forever(startup::lag_checker(&settings).await?));
    let changes = tokio::spawn(changes_forever(
        url.to_owned(),
        startup::cdc_loader(&settings).await?,
    ));

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
        .route(atlas_webhooks::http::PREFIX, query_handler(&query))
        .route(atlas_query::http::ENTITIES, query_handler(&query))
        .route(atlas_query::http::ATTRIBUTES, query_handler(&query))
        .route(atlas_query::http::ANALYTICS, query_handler(&query))
        .route(atlas_query::http::STATUS, query_handler(&query))
        .page(STATUS_PAGE, status_page(settings.lag_checker.interval));
    let gateway = LocalGateway {
        routes,
        signer: Arc::new(Signer::new(&secret)?),
        max_body_bytes: 10 * 1024 * 1024,
        page_policy: atlas_freshness::page::CONTENT_SECURITY_POLICY,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
    ready(listener.local_addr()?, url);
    let served = gateway.serve(listener, shutdown).await;
    flusher.abort();
    heartbeat.abort();
    lag_checker.abort();
    changes.abort();
    Ok(served?)
}

/// The environment's settings, with local defaults where a Lambda would be
/// told: this stack's database; plugin modules beside the stack's other
/// state unless `ATLAS_OBJECT_STORE` names a store (an S3 bucket, say
/// moto's, created if missing); and the machine's Redis, which reads bypass
/// while it is down, so the stack runs without one too.
async fn local_settings(opts: &DevOptions, url: &str) -> Result<Settings, DevError> {
    let mut settings = Settings::from_env()?;
    settings.database.url = Some(url.to_owned());
    let objects = settings
        .objects
        .get_or_insert_with(|| Location::Dir(opts.data_dir.join("objects")));
    tracing::info!(location = %objects, "plugin modules are kept in");
    if let Location::S3 { bucket, prefix } = objects {
        S3Store::connect(bucket, prefix)
            .await
            .create_bucket_if_missing()
            .await?;
    }
    settings
        .cache
        .get_or_insert_with(|| CacheConfig::new("redis://127.0.0.1:6379"));
    // A local stack's webhook receiver is on this machine, unless told
    // otherwise.
    if std::env::var_os("ATLAS_WEBHOOK_ALLOW_LOOPBACK").is_none() {
        settings.query.webhooks.allow_loopback = true;
        settings.webhooks.policy.allow_loopback = true;
    }
    let warehouse = match &opts.warehouse_url {
        Some(url) => url.clone(),
        None => local_warehouse(url).await?,
    };
    tracing::info!(warehouse = %atlas_store::redact_url(&warehouse), "changes are loaded into");
    settings.warehouse = Some(atlas_warehouse::Target::Postgres(warehouse));
    Ok(settings)
}

/// `<database>_warehouse` on the stack's server, created if missing.
async fn local_warehouse(url: &str) -> Result<String, DevError> {
    let cfg: tokio_postgres::Config = url.parse()?;
    let name = format!("{}_warehouse", cfg.get_dbname().unwrap_or("atlas"));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // A name cannot be a parameter; this one is ours, quoted anyway.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await?;
    }
    Ok(atlas_store::with_database(url, &name))
}

/// The change tap feeding the CDC-batch loader, as MSK would: each event
/// loaded before the slot moves on. The slot is named after the database
/// (slot names are the server's, databases share it). A failure (the
/// database restarting, say) is logged and the tap starts again.
async fn changes_forever(url: String, loader: atlas_warehouse::Loader) {
    let loader = &loader;
    loop {
        let tap = async {
            let cfg: tokio_postgres::Config = url.parse()?;
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let db = cfg.get_dbname().unwrap_or("atlas");
            let slot: String = format!("atlas_cdc_{db}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .take(63)
                .collect();
            let tap = atlas_tap::Tap::new(
                client,
                atlas_tap::TapConfig {
                    slot,
                    ..atlas_tap::TapConfig::default()
                },
            )
            .await?;
            let sunk = atlas_tap::run(
                &tap,
                |event| async move {
                    let report = loader.handle(&event).await?;
                    tracing::info!(?report, "changes loaded into the warehouse");
                    Ok::<_, atlas_warehouse::loader::LoadError>(())
                },
                std::future::pending(),
            )
            .await?;
            Ok::<u64, DevError>(sunk)
        };
        if let Err(e) = tap.await {
            tracing::warn!(error = %e, "the change tap stopped; restarting in 5 s");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// Where `atlas dev` serves the status page.
pub const STATUS_PAGE: &str = "/status";

/// The status page with a token of its own: tenant 1's, with no scope, so
/// it can read `/v1/status` (open to any valid token) and nothing else. It
/// polls as often as the lag checker publishes, but at least every 5 s.
fn status_page(check_interval: Duration) -> atlas_gateway::local::Page {
    let refresh = check_interval.clamp(Duration::from_secs(1), Duration::from_secs(5));
    let tenant = TenantId::new(1).expect("1 is a tenant id");
    Arc::new(move |signer: &Signer| {
        let token = signer.issue(tenant, &[], chrono::Duration::hours(12))?;
        Ok(atlas_freshness::page::html(&token, refresh))
    })
}

/// The query API function, as API Gateway would invoke it.
fn query_handler(api: &Arc<QueryApi>) -> atlas_gateway::local::Handler {
    let api = api.clone();
    handler(move |req| {
        let api = api.clone();
        async move { atlas_query::http::handle(&api, req).await }
    })
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

async fn check_forever(checker: atlas_freshness::LagChecker) {
    every_minute("lag check", |deadline| {
        let checker = &checker;
        async move {
            let runs = checker.run_until(deadline).await?;
            tracing::debug!(?runs, "lag checker run");
            Ok(())
        }
    })
    .await
}

async fn heartbeat_forever(heartbeat: Heartbeat) {
    every_minute("heartbeat", |deadline| {
        let heartbeat = &heartbeat;
        async move {
            let run = heartbeat.run_until(deadline).await?;
            tracing::debug!(?run, "heartbeat run");
            Ok(())
        }
    })
    .await
}
