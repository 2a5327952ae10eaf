use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use atlas_core::{RawReading, TenantId};
use atlas_objects::{ObjectError, ObjectStore};
use atlas_plugin_host::{Decoded, Host, Plugin, PluginError};
use atlas_store::{Pool, StoreError, begin_tenant};
use serde::Serialize;

use crate::registry::Version;
use crate::{OnFailure, PluginSettings, artifact_key, sha256_hex, wasm_key};

/// Compiled modules kept per container; past this, those no tenant has
/// active any more are dropped.
const MAX_MODULES: usize = 256;

/// The transform step of ingest: each tenant's active plugin, looked up at
/// most once per `ttl`, loaded once per container by content hash (from
/// the precompiled artifact when this engine can use it), and run on a
/// batch in a fresh sandbox.
pub struct Transforms {
    pool: Pool,
    objects: Arc<dyn ObjectStore>,
    host: Arc<Host>,
    ttl: Duration,
    active: RwLock<HashMap<TenantId, Lookup>>,
    modules: Mutex<HashMap<String, Arc<Plugin>>>,
}

/// A tenant's active plugin (or none) and when that was read.
type Lookup = (Instant, Option<Arc<Active>>);

struct Active {
    name: String,
    version: i32,
    settings: PluginSettings,
    plugin: Arc<Plugin>,
}

/// Which plugin ran on a batch and what it made of it; part of ingest's
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRun {
    pub name: String,
    pub version: i32,
    pub readings_in: usize,
    pub readings_out: usize,
    /// Set when the plugin failed and its `pass_through` policy staged
    /// the readings untransformed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The result of running a tenant's plugin on a batch.
#[derive(Debug)]
pub enum Applied {
    Transformed {
        run: PluginRun,
        readings: Vec<RawReading>,
    },
    /// It failed and the tenant's policy is to stage the input as it is.
    PassedThrough { run: PluginRun },
    /// The plugin refused the batch, or failed under the `reject` policy.
    Rejected { run: PluginRun, message: String },
}

/// Atlas could not run the plugin at all; retrying later may help, and
/// nothing of the batch is staged.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("plugin module {0} is missing from the object store")]
    Missing(String),
    #[error("plugin module {sha256} in the object store hashes to {found}")]
    Corrupt { sha256: String, found: String },
    #[error("plugin module {sha256} no longer loads: {error}")]
    Load { sha256: String, error: PluginError },
}

impl TransformError {
    /// The tenant's own module is missing, corrupt or no longer loads:
    /// retrying cannot help until the tenant activates another version,
    /// and no other tenant is affected.
    pub fn is_tenants_own(&self) -> bool {
        matches!(
            self,
            TransformError::Missing(_)
                | TransformError::Corrupt { .. }
                | TransformError::Load { .. }
        )
    }
}

impl Transforms {
    /// `pool` must act as the application role.
    pub fn new(pool: Pool, objects: Arc<dyn ObjectStore>, host: Arc<Host>, ttl: Duration) -> Self {
        Self {
            pool,
            objects,
            host,
            ttl,
            active: RwLock::default(),
            modules: Mutex::default(),
        }
    }

    /// Runs the tenant's active plugin on `readings`; `None` when it has
    /// none. More than `max_readings` out counts as a plugin failure.
    pub async fn apply(
        &self,
        tenant: TenantId,
        readings: &[RawReading],
        max_readings: usize,
    ) -> Result<Option<Applied>, TransformError> {
        let Some(active) = self.active(tenant).await? else {
            return Ok(None);
        };
        let mut run = PluginRun {
            name: active.name.clone(),
            version: active.version,
            readings_in: readings.len(),
            readings_out: 0,
            failure: None,
        };
        let input = active.plugin.abi().encode(readings);
        let (plugin, host, limits) = (
            active.plugin.clone(),
            self.host.clone(),
            active.settings.limits,
        );
        let called = tokio::task::spawn_blocking(move || {
            let out = plugin.call(&host, &input, &limits)?;
            plugin.abi().decode(&out.bytes)
        })
        .await
        .unwrap_or_else(|e| Err(PluginError::Host(e.to_string())));
        let failure = match called {
            Ok(Decoded::Rejected(message)) => return Ok(Some(Applied::Rejected { run, message })),
            Ok(Decoded::Readings(out)) if out.len() > max_readings => format!(
                "the plugin returned {} readings; the limit is {max_readings}",
                out.len()
            ),
            Ok(Decoded::Readings(out)) => {
                run.readings_out = out.len();
                return Ok(Some(Applied::Transformed { run, readings: out }));
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(%tenant, plugin = %run.name, version = run.version, %failure, policy = active.settings.on_failure.as_str(), "plugin failed");
        Ok(Some(match active.settings.on_failure {
            OnFailure::Reject => Applied::Rejected {
                run,
                message: failure,
            },
            OnFailure::PassThrough => {
                run.readings_out = readings.len();
                run.failure = Some(failure);
                Applied::PassedThrough { run }
            }
        }))
    }

    async fn active(&self, tenant: TenantId) -> Result<Option<Arc<Active>>, TransformError> {
        if let Some((at, active)) = self.active.read().expect("lock").get(&tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(active.clone());
        }
        let version = self.active_version(tenant).await?;
        let active = match version {
            None => None,
            Some(v) => Some(Arc::new(Active {
                plugin: self.module(&v.sha256, v.artifact_sha256.as_deref()).await?,
                settings: v.settings(),
                name: v.name,
                version: v.version,
            })),
        };
        self.active
            .write()
            .expect("lock")
            .insert(tenant, (Instant::now(), active.clone()));
        Ok(active)
    }

    async fn active_version(&self, tenant: TenantId) -> Result<Option<Version>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {} FROM tenant_plugins WHERE tenant_id = $1 AND active",
                crate::registry::COLUMNS
            ))
            .await?;
        let row = tx.query_opt(&stmt, &[&tenant.get()]).await?;
        tx.commit().await?;
        row.as_ref().map(Version::from_row).transpose()
    }

    /// The compiled module for a content hash: from this container's cache,
    /// else the precompiled artifact the version recorded, provided its
    /// bytes still hash to the record, else the `.wasm` (whose hash is
    /// checked the same way). Ingest only reads the store: an artifact this
    /// engine cannot use is compiled around, not rewritten.
    async fn module(
        &self,
        sha256: &str,
        artifact_sha256: Option<&str>,
    ) -> Result<Arc<Plugin>, TransformError> {
        if let Some(p) = self.modules.lock().expect("lock").get(sha256) {
            return Ok(p.clone());
        }
        let started = Instant::now();
        let from_artifact = match artifact_sha256 {
            Some(expected) => match self.objects.get(&artifact_key(expected)).await? {
                Some(bytes) if sha256_hex(&bytes) == expected => self.host.from_artifact(&bytes),
                Some(_) => {
                    tracing::warn!(
                        sha256,
                        "precompiled plugin does not match its recorded hash; compiling the module"
                    );
                    None
                }
                None => None,
            },
            None => None,
        };
        let plugin = match from_artifact {
            Some(loaded) => loaded.map_err(|error| TransformError::Load {
                sha256: sha256.to_owned(),
                error,
            })?,
            None => self.compile(sha256).await?,
        };
        tracing::info!(
            sha256,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "plugin loaded"
        );
        let plugin = Arc::new(plugin);
        let mut modules = self.modules.lock().expect("lock");
        if modules.len() >= MAX_MODULES {
            modules.retain(|_, p| Arc::strong_count(p) > 1);
        }
        modules.insert(sha256.to_owned(), plugin.clone());
        Ok(plugin)
    }

    async fn compile(&self, sha256: &str) -> Result<Plugin, TransformError> {
        let wasm = self
            .objects
            .get(&wasm_key(sha256))
            .await?
            .ok_or_else(|| TransformError::Missing(sha256.to_owned()))?;
        let found = sha256_hex(&wasm);
        if found != sha256 {
            return Err(TransformError::Corrupt {
                sha256: sha256.to_owned(),
                found,
            });
        }
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.compile(&wasm))
            .await
            .unwrap_or_else(|e| Err(PluginError::Host(e.to_string())))
            .map_err(|error| TransformError::Load {
                sha256: sha256.to_owned(),
                error,
            })
    }
}
