use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use atlas_core::{AttributeName, DataType, TenantId};
use deadpool_postgres::Transaction;

use crate::{Pool, StoreError, begin_tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeDef {
    pub id: i64,
    pub data_type: DataType,
    pub is_hot: bool,
}

/// One active tenant's settings and attribute catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCatalog {
    pub tenant: TenantId,
    pub auto_register: bool,
    pub attributes: HashMap<String, AttributeDef>,
}

impl TenantCatalog {
    /// Reads the catalog inside a tenant-scoped transaction. `None` when the
    /// tenant does not exist or is inactive: both mean "not a tenant".
    pub async fn load(tx: &Transaction<'_>, tenant: TenantId) -> Result<Option<Self>, StoreError> {
        let t = tx
            .prepare_cached(
                "SELECT allow_auto_register FROM tenants WHERE tenant_id = $1 AND is_active",
            )
            .await?;
        let Some(row) = tx.query_opt(&t, &[&tenant.get()]).await? else {
            return Ok(None);
        };
        let a = tx
            .prepare_cached(
                "SELECT attribute_id, attribute_name, data_type, is_hot FROM attributes WHERE tenant_id = $1",
            )
            .await?;
        let mut attributes = HashMap::new();
        for r in tx.query(&a, &[&tenant.get()]).await? {
            let name: String = r.get(1);
            let data_type: &str = r.get(2);
            let data_type = data_type
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
            attributes.insert(
                name,
                AttributeDef {
                    id: r.get(0),
                    data_type,
                    is_hot: r.get(3),
                },
            );
        }
        Ok(Some(Self {
            tenant,
            auto_register: row.get(0),
            attributes,
        }))
    }

    /// Registers a cold attribute for auto-registration, in `tenant`'s name
    /// whatever tenant the transaction was serving before. If another request
    /// registered it first, theirs stands, type included.
    pub async fn register(
        tx: &Transaction<'_>,
        tenant: TenantId,
        name: &AttributeName,
        data_type: DataType,
    ) -> Result<AttributeDef, StoreError> {
        crate::tenant::set_tenant(tx, tenant).await?;
        let ins = tx
            .prepare_cached(
                "INSERT INTO attributes (tenant_id, attribute_name, data_type) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, attribute_name) DO NOTHING",
            )
            .await?;
        tx.execute(&ins, &[&tenant.get(), &name.as_str(), &data_type.as_str()])
            .await?;
        let sel = tx
            .prepare_cached(
                "SELECT attribute_id, data_type, is_hot FROM attributes \
                 WHERE tenant_id = $1 AND attribute_name = $2",
            )
            .await?;
        let r = tx.query_one(&sel, &[&tenant.get(), &name.as_str()]).await?;
        let data_type: &str = r.get(1);
        Ok(AttributeDef {
            id: r.get(0),
            data_type: data_type
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
            is_hot: r.get(2),
        })
    }
}

type Entry = (Instant, Option<Arc<TenantCatalog>>);

/// How often a stream of unknown attribute names may reload a catalog.
const UNKNOWN_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// A per-container cache of tenant catalogs. Entries live for `ttl`; a
/// caller that meets an attribute it does not know calls
/// `reload_for_unknown`, so a freshly registered attribute is usable at once.
///
/// An expired entry is reloaded by the request that finds it. (Reloading
/// entries past half their life in the background instead, tried while
/// every query-API request read its tenant's catalog, kept a second
/// connection busy beside the requests and cost strong point reads a
/// third of their p99; that check now reads `TenantStatus`.)
pub struct Catalog {
    pool: Pool,
    ttl: Duration,
    entries: RwLock<HashMap<TenantId, Entry>>,
}

impl Catalog {
    pub fn new(pool: Pool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            entries: RwLock::default(),
        }
    }

    pub async fn get(&self, tenant: TenantId) -> Result<Option<Arc<TenantCatalog>>, StoreError> {
        let fresh = self
            .entries
            .read()
            .expect("catalog lock")
            .get(&tenant)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, cat)| cat.clone());
        match fresh {
            Some(cat) => Ok(cat),
            None => self.reload(tenant).await,
        }
    }

    /// Reloads for a caller that met a name its catalog lacks, unless the
    /// cached entry is younger than a second: a freshly created attribute
    /// is found at once, and a stream of unknown names costs at most one
    /// reload a second.
    pub async fn reload_for_unknown(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Arc<TenantCatalog>>, StoreError> {
        if let Some((at, cat)) = self.entries.read().expect("catalog lock").get(&tenant)
            && at.elapsed() < UNKNOWN_RELOAD_EVERY
        {
            return Ok(cat.clone());
        }
        self.reload(tenant).await
    }

    pub async fn reload(&self, tenant: TenantId) -> Result<Option<Arc<TenantCatalog>>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let cat = TenantCatalog::load(&tx, tenant).await?.map(Arc::new);
        tx.commit().await?;
        self.entries
            .write()
            .expect("catalog lock")
            .insert(tenant, (Instant::now(), cat.clone()));
        Ok(cat)
    }

    pub fn invalidate(&self, tenant: TenantId) {
        self.entries.write().expect("catalog lock").remove(&tenant);
    }
}
