//! One composition root per function: what it is built from, given the
//! settings. Building never connects to a database (Lambda init stays fast,
//! and a database outage shows per request rather than as a crash loop), so
//! only a setting, or RDS replica discovery when it is configured, can fail
//! here.

use std::sync::Arc;
use std::time::Instant;

use atlas_cache::HotCache;
use atlas_freshness::LagChecker;
use atlas_ingest::IngestService;
use atlas_msk::DeadLetters;
use atlas_objects::ObjectStore;
use atlas_plugins::{Registry, Transforms};
use atlas_query::QueryApi;
use atlas_query::routing::Replica;
use atlas_store::flush::Flusher;
use atlas_store::heartbeat::{Beats, HeartbeatConfig, beat_until};
use atlas_store::{DbConfig, DbRole, Pool, StoreError};
use atlas_warehouse::redshift::{Endpoint, Staging};
use atlas_warehouse::{Loader, PgWarehouse, RedshiftWarehouse, Target, Warehouse};

use crate::{ConfigError, Settings};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] atlas_objects::ObjectError),
    #[error(transparent)]
    Cache(#[from] atlas_cache::CacheError),
    #[error(transparent)]
    Discovery(#[from] atlas_cloud::rds::DiscoveryError),
    #[error("plugin host: {0}")]
    Plugins(#[from] atlas_plugin_host::PluginError),
    #[error("webhook sender: {0}")]
    Webhooks(#[from] atlas_webhooks::DeliveryError),
}

/// The ingest function (HTTP and MSK): acts as `atlas_app`, runs tenants'
/// plugins from the object store and writes MSK dead letters there.
pub async fn ingest(settings: &Settings) -> Result<IngestService, StartupError> {
    let pool = settings.database(DbRole::App)?.pool()?;
    let objects = settings.objects()?.open().await?;
    let transforms = Transforms::new(
        pool.clone(),
        objects.clone(),
        atlas_plugin_host::Host::new()?,
        settings.ingest.catalog_ttl,
    );
    let letters = DeadLetters::new(objects, atlas_cloud::metrics::from_env("Atlas"), "ingest");
    Ok(IngestService::new(pool, settings.ingest.clone())
        .with_transforms(transforms)
        .with_dead_letters(letters))
}

/// The query API: reads on the primary and the replicas with generic plans,
/// the plugin registry, the hot cache when Redis is configured, and the
/// warehouse for analytics reads when one is.
pub async fn query_api(settings: &Settings) -> Result<QueryApi, StartupError> {
    let app = settings.database(DbRole::App)?;
    let primary = DbConfig {
        generic_plans: true,
        ..app.clone()
    };
    let replicas = replica_pools(settings, &primary)
        .await?
        .into_iter()
        .map(|(name, pool)| Replica::new(name, pool))
        .collect();
    let registry = Registry::new(
        app.pool()?,
        settings.objects()?.open().await?,
        atlas_plugin_host::Host::new()?,
    );
    let mut api =
        QueryApi::new(primary.pool()?, registry, settings.query.clone()).with_replicas(replicas);
    if let Some(cache) = hot_cache(settings)? {
        api = api.with_cache(cache);
    }
    if let Some(target) = &settings.warehouse {
        api = api.with_warehouse(warehouse(settings, target, Use::Reads).await?);
    }
    Ok(api)
}

/// The flusher: acts as `atlas_worker`; changed projections are dropped
/// from the query API's cache when Redis is configured.
pub fn flusher(settings: &Settings) -> Result<Flusher, StartupError> {
    let mut flusher = Flusher {
        pool: settings.database(DbRole::Worker)?.pool()?,
        config: settings.flush.clone(),
        metrics: atlas_cloud::metrics::from_env("Atlas"),
        listener: None,
    };
    if let Some(cache) = hot_cache(settings)? {
        flusher = flusher.with_listener(cache);
    }
    Ok(flusher)
}

/// The heartbeat writer, acting as `atlas_worker`, and beside it the
/// webhook sender: both run every few seconds all the time, and the
/// sender's posts are bounded, so a dead endpoint never delays a beat.
pub struct Heartbeat {
    pub pool: Pool,
    pub config: HeartbeatConfig,
    pub webhooks: atlas_webhooks::Deliverer,
}

/// What one run of the heartbeat function did.
#[derive(Debug, serde::Serialize)]
pub struct HeartbeatRun {
    pub beats: Beats,
    pub webhooks: atlas_webhooks::Sent,
}

impl Heartbeat {
    /// Beats and delivers until `deadline`; a failed delivery pass is
    /// logged, never a reason to stop beating.
    pub async fn run_until(&self, deadline: Instant) -> Result<HeartbeatRun, StoreError> {
        let (beats, sent) = tokio::join!(
            beat_until(&self.pool, &self.config, deadline),
            self.webhooks.run_until(deadline)
        );
        let webhooks = sent.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook deliveries stopped for this run");
            atlas_webhooks::Sent::default()
        });
        Ok(HeartbeatRun {
            beats: beats?,
            webhooks,
        })
    }
}

pub fn heartbeat(settings: &Settings) -> Result<Heartbeat, StartupError> {
    let pool = settings.database(DbRole::Worker)?.pool()?;
    Ok(Heartbeat {
        webhooks: atlas_webhooks::Deliverer::new(pool.clone(), settings.webhooks.clone())?,
        pool,
        config: settings.heartbeat.clone(),
    })
}

/// The lag checker: the primary as `atlas_worker`, each replica as the
/// query API names them, the warehouse's watermark and the query API's
/// cache when they are configured.
pub async fn lag_checker(settings: &Settings) -> Result<LagChecker, StartupError> {
    let primary = settings.database(DbRole::Worker)?;
    let replicas = replica_pools(settings, &primary).await?;
    let mut checker = LagChecker::new(
        primary.pool()?,
        settings.lag_checker.clone(),
        atlas_cloud::metrics::from_env("Atlas"),
    )
    .with_replicas(replicas);
    if let Some(target) = &settings.warehouse {
        checker = checker.with_warehouse(warehouse(settings, target, Use::Reads).await?);
    }
    if let Some(cache) = hot_cache(settings)? {
        checker = checker.with_cache(cache);
    }
    Ok(checker)
}

/// The CDC-batch loader: Debezium records from MSK into the warehouse,
/// dead letters to the object store. The warehouse's schema is applied on
/// the first use.
pub async fn cdc_loader(settings: &Settings) -> Result<Loader, StartupError> {
    let objects = settings.objects()?.open().await?;
    let warehouse = warehouse(settings, settings.warehouse()?, Use::Loads(objects.clone())).await?;
    let letters = DeadLetters::new(
        objects,
        atlas_cloud::metrics::from_env("Atlas"),
        atlas_warehouse::loader::PIPELINE,
    );
    let loader = Loader::new(warehouse, letters, atlas_cdc::Options::default());
    // The second sink, webhooks, writes to the primary: without one, the
    // loader loads the warehouse alone.
    Ok(match settings.database.url {
        Some(_) => {
            let pool = settings.database(DbRole::Worker)?.pool()?;
            loader.with_sink(Arc::new(atlas_webhooks::Sink::new(pool)))
        }
        None => {
            tracing::info!("no DATABASE_URL: webhook deliveries are not enqueued");
            loader
        }
    })
}

enum Use {
    Reads,
    /// Loads stage their batches in this store.
    Loads(Arc<dyn ObjectStore>),
}

/// The warehouse `target` names: PostgreSQL logged in as the URL's user,
/// or Redshift through the Data API as the function's own IAM role. A
/// Redshift loader stages its batches in the object store, which must then
/// be S3, for a role Redshift assumes to read them.
async fn warehouse(
    settings: &Settings,
    target: &Target,
    usage: Use,
) -> Result<Arc<dyn Warehouse>, StartupError> {
    let (cluster, database) = match target {
        Target::Postgres(url) => {
            return Ok(Arc::new(PgWarehouse::new(
                DbConfig::new(url.clone(), DbRole::AsLogin).pool()?,
            )));
        }
        Target::Redshift { cluster, database } => (cluster, database),
    };
    let mut redshift = RedshiftWarehouse::connect(Endpoint::parse(cluster), database).await;
    if let Use::Loads(store) = usage {
        let location = settings.objects()?;
        let uri = location.s3_root().ok_or_else(|| ConfigError::Invalid {
            name: "ATLAS_OBJECT_STORE",
            value: location.to_string(),
            reason:
                "a Redshift warehouse COPYs the loader's batches from S3: use s3://bucket[/prefix]"
                    .into(),
        })?;
        let copy_role = settings
            .warehouse_copy_role
            .clone()
            .ok_or(ConfigError::Missing {
                name: "ATLAS_WAREHOUSE_COPY_ROLE",
            })?;
        redshift = redshift.with_staging(Staging {
            store,
            uri,
            copy_role,
        });
    }
    Ok(Arc::new(redshift))
}

/// The replicas, each with `primary`'s other settings: the primary's read
/// replicas as RDS lists them, named by their identifiers, when
/// `ATLAS_RDS_PRIMARY_ID` is set (one `DescribeDBInstances` per replica,
/// at start); else each of `ATLAS_REPLICA_URLS`, named 1, 2, ... in order.
/// The query API and the lag checker name them alike.
async fn replica_pools(
    settings: &Settings,
    primary: &DbConfig,
) -> Result<Vec<(String, Pool)>, StartupError> {
    let replica = |name: String, url: String| -> Result<(String, Pool), StoreError> {
        let cfg = DbConfig {
            url,
            ..primary.clone()
        };
        Ok((name, cfg.pool()?))
    };
    Ok(match &settings.rds_primary_id {
        Some(id) => {
            let sdk = aws_config::load_from_env().await;
            let rds = aws_sdk_rds::Client::new(&sdk);
            atlas_cloud::rds::read_replicas(&rds, id)
                .await?
                .into_iter()
                .map(|r| replica(r.id, atlas_store::with_host(&primary.url, &r.host, r.port)))
                .collect::<Result<_, _>>()?
        }
        None => settings
            .replica_urls
            .iter()
            .enumerate()
            .map(|(i, url)| replica((i + 1).to_string(), url.clone()))
            .collect::<Result<_, _>>()?,
    })
}

fn hot_cache(settings: &Settings) -> Result<Option<Arc<HotCache>>, StartupError> {
    Ok(match &settings.cache {
        Some(cfg) => Some(Arc::new(HotCache::new(cfg.clone())?)),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader_settings(objects: &str, role: Option<&str>) -> Settings {
        let vars = [
            ("ATLAS_WAREHOUSE_URL", Some("redshift://analytics/atlas")),
            ("ATLAS_OBJECT_STORE", Some(objects)),
            ("ATLAS_WAREHOUSE_COPY_ROLE", role),
        ];
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.map(str::to_owned))
        })
        .unwrap()
    }

    async fn refusal(settings: &Settings) -> String {
        match cdc_loader(settings).await {
            Err(StartupError::Config(e)) => e.to_string(),
            Err(other) => panic!("expected a setting to be refused, got {other}"),
            Ok(_) => panic!("expected a setting to be refused"),
        }
    }

    #[tokio::test]
    async fn a_redshift_loader_needs_an_s3_store_and_a_copy_role() {
        let dir = std::env::temp_dir().join("atlas-startup-test");
        let e = refusal(&loader_settings(
            dir.to_str().unwrap(),
            Some("arn:aws:iam::123456789012:role/atlas-copy"),
        ))
        .await;
        assert!(e.contains("ATLAS_OBJECT_STORE") && e.contains("S3"), "{e}");

        let e = refusal(&loader_settings("s3://atlas-bucket/atlas", None)).await;
        assert!(e.contains("ATLAS_WAREHOUSE_COPY_ROLE"), "{e}");

        let loads = loader_settings(
            "s3://atlas-bucket/atlas",
            Some("arn:aws:iam::123456789012:role/atlas-copy"),
        );
        assert!(cdc_loader(&loads).await.is_ok());
    }
}
