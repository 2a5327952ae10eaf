//! Creating tenants and attributes. Used by the local stack's demo data,
//! the benchmark and the tests; runs as the worker role or the owner.

use atlas_core::{AttributeName, DataType, TenantId};
use tokio_postgres::GenericClient;

use crate::StoreError;

pub async fn ensure_tenant(
    client: &impl GenericClient,
    tenant: TenantId,
    name: &str,
    allow_auto_register: bool,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO tenants (tenant_id, tenant_name, allow_auto_register) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO NOTHING",
            &[&tenant.get(), &name, &allow_auto_register],
        )
        .await?;
    Ok(())
}

/// Returns the attribute's id, creating it if needed.
pub async fn ensure_attribute(
    client: &impl GenericClient,
    tenant: TenantId,
    name: &AttributeName,
    data_type: DataType,
    is_hot: bool,
) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "WITH ins AS (INSERT INTO attributes (tenant_id, attribute_name, data_type, is_hot) \
                          VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, attribute_name) DO NOTHING \
                          RETURNING attribute_id) \
             SELECT attribute_id FROM ins \
             UNION ALL SELECT attribute_id FROM attributes WHERE tenant_id = $1 AND attribute_name = $2 \
             LIMIT 1",
            &[&tenant.get(), &name.as_str(), &data_type.as_str(), &is_hot],
        )
        .await?;
    Ok(row.get(0))
}
