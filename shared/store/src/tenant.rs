use atlas_core::TenantId;
use deadpool_postgres::{Object, Transaction};

use crate::StoreError;

/// Opens a transaction whose tenant is `tenant`: Row-Level Security and the
/// staging table's tenant default both read it, and it ends with the
/// transaction so a pooled connection never carries it to the next caller.
pub async fn begin_tenant(
    client: &mut Object,
    tenant: TenantId,
) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await?;
    set_tenant(&tx, tenant).await?;
    Ok(tx)
}

/// Switches the current transaction to another tenant (an MSK batch may
/// hold several).
pub(crate) async fn set_tenant(tx: &Transaction<'_>, tenant: TenantId) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT set_config('app.tenant_id', $1, true)")
        .await?;
    tx.execute(&stmt, &[&tenant.get().to_string()]).await?;
    Ok(())
}
