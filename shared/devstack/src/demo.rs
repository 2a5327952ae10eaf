//! Demo tenants and catalog, so a new user can post readings at once.

use atlas_core::{AttributeName, DataType, TenantId};
use atlas_store::{GenericClient, StoreError, ensure_attribute, ensure_tenant};

/// The demo catalog: (name, type, hot).
pub const CATALOG: [(&str, DataType, bool); 9] = [
    ("temperature", DataType::Decimal, true),
    ("humidity", DataType::Decimal, false),
    ("status", DataType::String, true),
    ("priority", DataType::Int, true),
    ("environment", DataType::String, true),
    ("region", DataType::String, true),
    ("firmware", DataType::String, false),
    ("online", DataType::Bool, false),
    ("last_seen", DataType::Timestamp, true),
];

pub const TENANTS: [i64; 3] = [1, 2, 3];

/// Creates the given tenants with the demo catalog; existing rows are kept.
pub async fn seed(client: &impl GenericClient, tenants: &[i64]) -> Result<(), StoreError> {
    for &t in tenants {
        let tenant = TenantId::new(t).expect("demo tenant ids are positive");
        ensure_tenant(client, tenant, &format!("Demo tenant {t}"), false).await?;
        for (name, data_type, hot) in CATALOG {
            let name = AttributeName::parse(name).expect("demo attribute names are valid");
            ensure_attribute(client, tenant, &name, data_type, hot).await?;
        }
    }
    Ok(())
}

/// Seeds the demo only when the database has no tenant at all.
pub async fn seed_if_empty(client: &impl GenericClient) -> Result<bool, StoreError> {
    let tenants: i64 = client
        .query_one("SELECT count(*) FROM tenants", &[])
        .await?
        .get(0);
    if tenants > 0 {
        return Ok(false);
    }
    seed(client, &TENANTS).await?;
    Ok(true)
}
