use atlas_core::{AttributeName, EntityId, TenantId};
use atlas_store::{Pool, StoreError, begin_tenant};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A bounded slice of one attribute's time series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub ts: DateTime<Utc>,
    pub value: serde_json::Value,
}

/// An entity's readings of one attribute, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub entity_id: i64,
    pub attribute: String,
    pub data_type: String,
    pub points: Vec<Point>,
    /// Set when `limit` cut the range short: ask again from here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from: Option<DateTime<Utc>>,
}

/// What a history read could not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Entity,
    Attribute,
}

impl History {
    /// Reads the primary key `(tenant_id, entity_id, attribute_id,
    /// ingested_at)` as a range, in a tenant-scoped transaction. An entity
    /// or attribute the tenant does not have is `Missing`, whoever else
    /// may have one.
    pub async fn get(
        pool: &Pool,
        tenant: TenantId,
        entity: EntityId,
        attribute: &AttributeName,
        range: &Range,
    ) -> Result<Result<Self, Missing>, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        // The entity and the attribute are looked up in one round trip.
        let lookup = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM entities WHERE entity_id = $1 AND tenant_id = $2), \
                        a.attribute_id, a.data_type \
                 FROM (SELECT 1) one \
                 LEFT JOIN attributes a ON a.tenant_id = $2 AND a.attribute_name = $3",
            )
            .await?;
        let def = tx
            .query_one(
                &lookup,
                &[&entity.get(), &tenant.get(), &attribute.as_str()],
            )
            .await?;
        if !def.get::<_, bool>(0) {
            return Ok(Err(Missing::Entity));
        }
        let Some(attribute_id) = def.get::<_, Option<i64>>(1) else {
            return Ok(Err(Missing::Attribute));
        };
        let data_type: String = def.get(2);
        // The typed columns become JSON in the database, numerics exactly.
        let points = tx
            .prepare_cached(
                "SELECT ingested_at, coalesce(to_jsonb(value), to_jsonb(value_int), to_jsonb(value_decimal), \
                                              to_jsonb(value_bool), to_jsonb(value_timestamp)) \
                 FROM entity_values_ts \
                 WHERE tenant_id = $1 AND entity_id = $2 AND attribute_id = $3 \
                   AND ingested_at >= $4 AND ingested_at < $5 \
                 ORDER BY ingested_at LIMIT $6",
            )
            .await?;
        let rows = tx
            .query(
                &points,
                &[
                    &tenant.get(),
                    &entity.get(),
                    &attribute_id,
                    &range.from,
                    &range.to,
                    &(range.limit + 1),
                ],
            )
            .await?;
        tx.commit().await?;
        let mut points: Vec<Point> = rows
            .iter()
            .map(|r| Point {
                ts: r.get(0),
                value: r.get(1),
            })
            .collect();
        let next_from = if points.len() as i64 > range.limit {
            points.pop().map(|p| p.ts)
        } else {
            None
        };
        Ok(Ok(Self {
            entity_id: entity.get(),
            attribute: attribute.to_string(),
            data_type,
            points,
            next_from,
        }))
    }
}
