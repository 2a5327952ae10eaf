use atlas_core::{AttributeName, DataType, TenantId};
use atlas_store::hot::{self, HotChange, Requested};
use atlas_store::{Pool, StoreError, begin_tenant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One attribute of a tenant's catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    pub name: String,
    pub data_type: String,
    pub is_hot: bool,
    pub created_at: DateTime<Utc>,
    /// The latest promotion or demotion and its progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_change: Option<HotChange>,
}

/// The body of `PATCH /v1/attributes/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributePatch {
    pub is_hot: bool,
}

/// What a PATCH did.
#[derive(Debug, Clone, PartialEq)]
pub enum Patched {
    Missing,
    /// Already so: nothing to do.
    Unchanged(Attribute),
    /// Flipped; the projection follows in the background.
    Queued(Attribute),
}

/// The body of `POST /v1/attributes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAttribute {
    pub name: String,
    pub data_type: String,
    #[serde(default)]
    pub is_hot: bool,
}

/// What creating an attribute did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(Attribute),
    /// It existed with the same definition: nothing to do.
    Same(Attribute),
    /// It exists with another type or hotness.
    Conflict(Attribute),
}

const SELECT: &str = "SELECT attribute_name, data_type, is_hot, created_at FROM attributes \
                      WHERE tenant_id = $1 AND attribute_name = $2";

fn attribute(r: &tokio_postgres::Row) -> Attribute {
    Attribute {
        name: r.get(0),
        data_type: r.get(1),
        is_hot: r.get(2),
        created_at: r.get(3),
        hot_change: None,
    }
}

/// The attribute with its latest promotion or demotion, in one round trip.
async fn with_change(
    tx: &atlas_store::Transaction<'_>,
    tenant: TenantId,
    name: &AttributeName,
) -> Result<Option<Attribute>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT a.attribute_name, a.data_type, a.is_hot, a.created_at, c.* \
             FROM attributes a {} WHERE a.tenant_id = $1 AND a.attribute_name = $2",
            hot::LATEST_CHANGE
        ))
        .await?;
    Ok(tx
        .query_opt(&stmt, &[&tenant.get(), &name.as_str()])
        .await?
        .map(|r| Attribute {
            hot_change: hot::latest_change(&r, 4),
            ..attribute(&r)
        }))
}

impl Attribute {
    pub async fn get(
        pool: &Pool,
        tenant: TenantId,
        name: &AttributeName,
    ) -> Result<Option<Self>, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let found = with_change(&tx, tenant, name).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Promotes (`hot`) or demotes the attribute. The catalog changes at
    /// once; the flusher rewrites the projection in the background.
    pub async fn set_hot(
        pool: &Pool,
        tenant: TenantId,
        name: &AttributeName,
        hot: bool,
    ) -> Result<Patched, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let requested = hot::request(&tx, tenant, name, hot).await?;
        if requested == Requested::Missing {
            return Ok(Patched::Missing);
        }
        let attribute = with_change(&tx, tenant, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} vanished mid-PATCH")))?;
        tx.commit().await?;
        Ok(match requested {
            Requested::Queued => Patched::Queued(attribute),
            _ => Patched::Unchanged(attribute),
        })
    }

    /// Adds an attribute to the catalog. Ingest sees it within
    /// `ATLAS_CATALOG_TTL_MS`, or at once for a reading that names it.
    pub async fn create(
        pool: &Pool,
        tenant: TenantId,
        name: &AttributeName,
        data_type: DataType,
        is_hot: bool,
    ) -> Result<Created, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let inserted = tx
            .execute(
                "INSERT INTO attributes (tenant_id, attribute_name, data_type, is_hot) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, attribute_name) DO NOTHING",
                &[&tenant.get(), &name.as_str(), &data_type.as_str(), &is_hot],
            )
            .await?;
        let row = tx
            .query_one(SELECT, &[&tenant.get(), &name.as_str()])
            .await?;
        tx.commit().await?;
        let a = attribute(&row);
        Ok(if inserted == 1 {
            Created::New(a)
        } else if a.data_type == data_type.as_str() && a.is_hot == is_hot {
            Created::Same(a)
        } else {
            Created::Conflict(a)
        })
    }
}
