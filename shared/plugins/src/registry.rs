use std::sync::Arc;
use std::time::Duration;

use atlas_core::TenantId;
use atlas_objects::{ObjectError, ObjectStore};
use atlas_plugin_host::{Host, Limits, PluginError};
use atlas_store::{Pool, StoreError, begin_tenant};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::{OnFailure, PluginName, PluginSettings, artifact_key, sha256_hex, wasm_key};

/// Uploads, versions and activation of tenants' plugins. Acts as the
/// application role, so Row-Level Security confines every statement to
/// the tenant it is given.
#[derive(Clone)]
pub struct Registry {
    pool: Pool,
    objects: Arc<dyn ObjectStore>,
    host: Arc<Host>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Rejected(PluginError),
    #[error("no plugin named {0}")]
    NoSuchPlugin(PluginName),
    #[error("plugin {name} has no version {version}")]
    NoSuchVersion { name: PluginName, version: i32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for RegistryError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Store(e.into())
    }
}

/// One version of a plugin, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub name: String,
    pub version: i32,
    pub sha256: String,
    pub size_bytes: i32,
    pub limits: LimitsView,
    pub on_failure: OnFailure,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the precompiled artifact made at upload; ingest runs the
    /// artifact only if its bytes still hash to this.
    #[serde(skip)]
    pub artifact_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitsView {
    pub fuel: u64,
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub output_bytes: u64,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    #[serde(flatten)]
    pub version: Version,
    /// False when the newest version already had these bytes and settings.
    pub created: bool,
    /// Fuel the dry run on the sample batch used.
    pub dry_run_fuel: u64,
}

pub(crate) const COLUMNS: &str = "name, version, sha256, size_bytes, fuel, timeout_ms, memory_bytes, \
                       output_bytes, on_failure, active, created_at, artifact_sha256";

impl Version {
    pub(crate) fn from_row(r: &Row) -> Result<Self, StoreError> {
        let on_failure: &str = r.get(8);
        Ok(Self {
            name: r.get(0),
            version: r.get(1),
            sha256: r.get(2),
            size_bytes: r.get(3),
            limits: LimitsView {
                fuel: r.get::<_, i64>(4) as u64,
                timeout_ms: r.get::<_, i32>(5) as u64,
                memory_bytes: r.get::<_, i64>(6) as u64,
                output_bytes: r.get::<_, i64>(7) as u64,
            },
            on_failure: OnFailure::parse(on_failure).map_err(StoreError::Corrupt)?,
            active: r.get(9),
            created_at: r.get(10),
            artifact_sha256: r.get(11),
        })
    }

    pub fn settings(&self) -> PluginSettings {
        PluginSettings {
            limits: Limits {
                fuel: self.limits.fuel,
                timeout: Duration::from_millis(self.limits.timeout_ms),
                memory_bytes: self.limits.memory_bytes as usize,
                output_bytes: self.limits.output_bytes as usize,
            },
            on_failure: self.on_failure,
        }
    }
}

/// A plugin and its versions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginEntry {
    pub name: String,
    pub active_version: Option<i32>,
    pub versions: Vec<Version>,
}

impl Registry {
    /// `pool` must act as the application role.
    pub fn new(pool: Pool, objects: Arc<dyn ObjectStore>, host: Arc<Host>) -> Self {
        Self {
            pool,
            objects,
            host,
        }
    }

    /// Checks a module (size, ABI, imports, a dry run within `settings`),
    /// stores it and its precompiled artifact under its SHA-256, and
    /// records it as the plugin's next version, inactive.
    pub async fn upload(
        &self,
        tenant: TenantId,
        name: &PluginName,
        wasm: Vec<u8>,
        settings: PluginSettings,
    ) -> Result<Upload, RegistryError> {
        let host = self.host.clone();
        let limits = settings.limits;
        let (wasm, checked) = tokio::task::spawn_blocking(move || {
            let checked = atlas_plugin_host::check_upload(&host, &wasm, &limits)
                .and_then(|(plugin, fuel)| Ok((plugin.precompiled()?, fuel)));
            (wasm, checked)
        })
        .await
        .map_err(|e| RegistryError::Rejected(PluginError::Host(e.to_string())))?;
        let (artifact, dry_run_fuel) = checked.map_err(RegistryError::Rejected)?;
        let sha = sha256_hex(&wasm);
        let artifact_sha = sha256_hex(&artifact);
        let size = wasm.len() as i32;

        // Objects first: a row must never name a module that is not there.
        self.objects.put(&wasm_key(&sha), wasm).await?;
        self.objects
            .put(&artifact_key(&artifact_sha), artifact)
            .await?;

        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        // Versions are numbered per plugin; serialize a tenant's uploads.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&tenant.get()])
            .await?;
        let newest = tx
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, deleted FROM tenant_plugins \
                     WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
                ),
                &[&tenant.get(), &name.as_str()],
            )
            .await?;
        if let Some(row) = &newest {
            let v = Version::from_row(row)?;
            let deleted: bool = row.get(12);
            if !deleted && v.sha256 == sha && v.settings() == settings {
                tx.commit().await?;
                return Ok(Upload {
                    version: v,
                    created: false,
                    dry_run_fuel,
                });
            }
        }
        let next = newest.map_or(1, |r| r.get::<_, i32>(1) + 1);
        let l = settings.limits;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO tenant_plugins (tenant_id, name, version, sha256, size_bytes, fuel, \
                     timeout_ms, memory_bytes, output_bytes, on_failure, artifact_sha256) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
                ),
                &[
                    &tenant.get(),
                    &name.as_str(),
                    &next,
                    &sha,
                    &size,
                    &(l.fuel as i64),
                    &(l.timeout.as_millis() as i32),
                    &(l.memory_bytes as i64),
                    &(l.output_bytes as i64),
                    &settings.on_failure.as_str(),
                    &artifact_sha,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(Upload {
            version: Version::from_row(&row)?,
            created: true,
            dry_run_fuel,
        })
    }

    /// Makes `version` the tenant's one active plugin; rolling back is
    /// activating an older version.
    pub async fn activate(
        &self,
        tenant: TenantId,
        name: &PluginName,
        version: i32,
    ) -> Result<Version, RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM tenant_plugins \
                 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND NOT deleted FOR UPDATE",
                &[&tenant.get(), &name.as_str(), &version],
            )
            .await?;
        if exists.is_none() {
            return Err(RegistryError::NoSuchVersion {
                name: name.clone(),
                version,
            });
        }
        tx.execute(
            "UPDATE tenant_plugins SET active = false WHERE tenant_id = $1 AND active",
            &[&tenant.get()],
        )
        .await?;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE tenant_plugins SET active = true \
                     WHERE tenant_id = $1 AND name = $2 AND version = $3 RETURNING {COLUMNS}"
                ),
                &[&tenant.get(), &name.as_str(), &version],
            )
            .await?;
        tx.commit().await?;
        Ok(Version::from_row(&row)?)
    }

    /// The tenant's plugins and their versions, by name.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<PluginEntry>, RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM tenant_plugins WHERE tenant_id = $1 AND NOT deleted \
                     ORDER BY name, version DESC"
                ),
                &[&tenant.get()],
            )
            .await?;
        tx.commit().await?;
        let mut out: Vec<PluginEntry> = Vec::new();
        for row in &rows {
            let v = Version::from_row(row)?;
            match out.last_mut() {
                Some(e) if e.name == v.name => {}
                _ => out.push(PluginEntry {
                    name: v.name.clone(),
                    active_version: None,
                    versions: Vec::new(),
                }),
            }
            let entry = out.last_mut().expect("pushed above");
            if v.active {
                entry.active_version = Some(v.version);
            }
            entry.versions.push(v);
        }
        Ok(out)
    }

    /// Deactivates the plugin and hides it; its version numbers are not
    /// reused. Returns whether it was active.
    pub async fn delete(&self, tenant: TenantId, name: &PluginName) -> Result<bool, RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let rows = tx
            .query(
                "UPDATE tenant_plugins t SET active = false, deleted = true \
                 FROM (SELECT version, active FROM tenant_plugins \
                       WHERE tenant_id = $1 AND name = $2 AND NOT deleted FOR UPDATE) old \
                 WHERE t.tenant_id = $1 AND t.name = $2 AND t.version = old.version \
                 RETURNING old.active",
                &[&tenant.get(), &name.as_str()],
            )
            .await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Err(RegistryError::NoSuchPlugin(name.clone()));
        }
        Ok(rows.iter().any(|r| r.get::<_, bool>(0)))
    }
}
