use atlas_core::{EntityId, TenantId};
use atlas_store::{Pool, StoreError, begin_tenant};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An entity as the hot projection holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    pub entity_id: i64,
    /// The latest value of each hot attribute.
    pub hot_attributes: serde_json::Value,
    /// When the projection last changed.
    pub updated_at: DateTime<Utc>,
}

impl Entity {
    /// One entity of `tenant`, in a tenant-scoped transaction: Row-Level
    /// Security would hide another tenant's row even if the filter did not.
    pub async fn get(
        pool: &Pool,
        tenant: TenantId,
        id: EntityId,
    ) -> Result<Option<Self>, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let stmt = tx
            .prepare_cached(
                "SELECT hot_attrs, updated_at FROM entity_jsonb WHERE tenant_id = $1 AND entity_id = $2",
            )
            .await?;
        let row = tx.query_opt(&stmt, &[&tenant.get(), &id.get()]).await?;
        tx.commit().await?;
        Ok(row.map(|r| Self {
            entity_id: id.get(),
            hot_attributes: r.get(0),
            updated_at: r.get(1),
        }))
    }
}
