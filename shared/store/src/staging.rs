use std::pin::pin;

use atlas_core::{TenantId, TypedReading, Value};
use deadpool_postgres::Transaction;
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::StoreError;
use crate::tenant::set_tenant;

const COPY_STAGING: &str = "COPY entity_values_ingest (entity_id, attribute_id, entity_type, value, value_int, \
     value_decimal, value_bool, value_timestamp, ingested_at) FROM STDIN (FORMAT binary)";

const COLUMNS: [Type; 9] = [
    Type::INT8,
    Type::INT8,
    Type::VARCHAR,
    Type::TEXT,
    Type::INT8,
    Type::NUMERIC,
    Type::BOOL,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// Writes readings to staging with one binary COPY per tenant, inside the
/// caller's transaction, so a batch commits whole or not at all. The
/// database fills `tenant_id` from each group's tenant setting.
pub async fn stage(
    tx: &Transaction<'_>,
    groups: &[(TenantId, &[TypedReading])],
) -> Result<u64, StoreError> {
    let mut rows = 0;
    for (tenant, readings) in groups {
        if readings.is_empty() {
            continue;
        }
        set_tenant(tx, *tenant).await?;
        let sink = tx.copy_in(COPY_STAGING).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &COLUMNS));
        for r in readings.iter() {
            let (mut s, mut i, mut d, mut b, mut t) = (None, None, None::<Decimal>, None, None);
            match &r.value {
                Value::String(v) => s = Some(v.as_str()),
                Value::Int(v) => i = Some(*v),
                Value::Decimal(v) => d = Some(*v),
                Value::Bool(v) => b = Some(*v),
                Value::Timestamp(v) => t = Some(*v),
            }
            let entity_type = r.entity_type.as_ref().map(|e| e.as_str());
            let row: [&(dyn ToSql + Sync); 9] = [
                &r.entity_id.get(),
                &r.attribute_id,
                &entity_type,
                &s,
                &i,
                &d,
                &b,
                &t,
                &r.ts,
            ];
            writer.as_mut().write(&row).await?;
        }
        rows += writer.finish().await?;
    }
    Ok(rows)
}
