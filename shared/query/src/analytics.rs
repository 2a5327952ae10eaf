//! `GET /v1/analytics/attributes/{name}/stats`: the seed's Query 2, the
//! distribution of one numeric attribute over a time range, per group.
//!
//! A group is the entity's latest value of the `group_by` attribute within
//! the same range (the seed's "category"); entities with no such value fall
//! in the `null` group. Without `group_by` there is one group. At analytics
//! consistency the warehouse answers when there is one (and is fresh enough
//! for the caller), else a replica or the primary.
//!
//! `GET /v1/analytics/attributes/{name}/daily`: the seed's six-month
//! question, one attribute per day, from the warehouse's daily aggregate.

use atlas_core::{AttributeName, DataType, TenantId};
use atlas_store::{Pool, StoreError, begin_tenant};
use atlas_warehouse::reads::StatsQuery;
use atlas_warehouse::{Warehouse, WarehouseError};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// Most groups one answer lists; more set `truncated`.
pub const MAX_GROUPS: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The group's value of `group_by`, as text; `null` for entities
    /// without one (and for the single group without `group_by`).
    pub group: Option<String>,
    /// Readings in the group.
    pub count: i64,
    /// Entities with readings in the group.
    pub entities: i64,
    pub avg: Option<f64>,
    pub min: Option<serde_json::Value>,
    pub max: Option<serde_json::Value>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub attribute: String,
    pub group_by: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub groups: Vec<Group>,
    pub truncated: bool,
}

/// What a stats read could not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The tenant has no such attribute (`group_by` names it too).
    Missing(String),
    /// Distributions need numbers.
    NotNumeric { name: String, data_type: String },
}

/// The attribute's id and type, in the same transaction.
async fn lookup(
    tx: &atlas_store::Transaction<'_>,
    tenant: TenantId,
    name: &AttributeName,
) -> Result<Option<(i64, String)>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT attribute_id, data_type FROM attributes WHERE tenant_id = $1 AND attribute_name = $2",
        )
        .await?;
    Ok(tx
        .query_opt(&stmt, &[&tenant.get(), &name.as_str()])
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

const VALUES: &str = "SELECT entity_id, coalesce(value_decimal, value_int::numeric) AS x \
                      FROM entity_values_ts \
                      WHERE tenant_id = $1 AND attribute_id = $2 AND ingested_at >= $3 AND ingested_at < $4";

const AGGREGATES: &str = "count(*), count(DISTINCT v.entity_id), avg(x)::float8, \
                          to_jsonb(min(x)), to_jsonb(max(x)), \
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY x), \
                          percentile_cont(0.95) WITHIN GROUP (ORDER BY x)";

impl Stats {
    /// The answer from at most `MAX_GROUPS + 1` groups: one more than fits
    /// says there were more.
    fn of(
        attribute: &AttributeName,
        group_by: Option<&AttributeName>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut groups: Vec<Group>,
    ) -> Self {
        let truncated = groups.len() as i64 > MAX_GROUPS;
        groups.truncate(MAX_GROUPS as usize);
        Self {
            attribute: attribute.to_string(),
            group_by: group_by.map(ToString::to_string),
            from,
            to,
            groups,
            truncated,
        }
    }

    /// Reads the time series with a bounded range in a tenant-scoped
    /// transaction; the caller bounds the range.
    pub async fn get(
        pool: &Pool,
        tenant: TenantId,
        attribute: &AttributeName,
        group_by: Option<&AttributeName>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Result<Self, Refused>, StoreError> {
        let mut client = pool.get().await?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let Some((attribute_id, data_type)) = lookup(&tx, tenant, attribute).await? else {
            return Ok(Err(Refused::Missing(attribute.to_string())));
        };
        let numeric = [DataType::Int.as_str(), DataType::Decimal.as_str()];
        if !numeric.contains(&data_type.as_str()) {
            return Ok(Err(Refused::NotNumeric {
                name: attribute.to_string(),
                data_type,
            }));
        }
        let rows = match group_by {
            None => {
                let sql = format!(
                    "SELECT NULL::text, {AGGREGATES} FROM ({VALUES}) v HAVING count(*) > 0"
                );
                let stmt = tx.prepare_cached(&sql).await?;
                tx.query(&stmt, &[&tenant.get(), &attribute_id, &from, &to])
                    .await?
            }
            Some(g) => {
                let Some((group_id, _)) = lookup(&tx, tenant, g).await? else {
                    return Ok(Err(Refused::Missing(g.to_string())));
                };
                let sql = format!(
                    "WITH grp AS ( \
                         SELECT DISTINCT ON (entity_id) entity_id, \
                                coalesce(value, value_int::text, value_decimal::text, value_bool::text, \
                                         to_char(value_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) AS g \
                         FROM entity_values_ts \
                         WHERE tenant_id = $1 AND attribute_id = $5 AND ingested_at >= $3 AND ingested_at < $4 \
                         ORDER BY entity_id, ingested_at DESC) \
                     SELECT grp.g, {AGGREGATES} FROM ({VALUES}) v LEFT JOIN grp USING (entity_id) \
                     GROUP BY grp.g ORDER BY grp.g NULLS LAST LIMIT $6"
                );
                let stmt = tx.prepare_cached(&sql).await?;
                tx.query(
                    &stmt,
                    &[
                        &tenant.get(),
                        &attribute_id,
                        &from,
                        &to,
                        &group_id,
                        &(MAX_GROUPS + 1),
                    ],
                )
                .await?
            }
        };
        tx.commit().await?;
        let groups: Vec<Group> = rows
            .iter()
            .map(|r| Group {
                group: r.get(0),
                count: r.get(1),
                entities: r.get(2),
                avg: r.get(3),
                min: r.get(4),
                max: r.get(5),
                p50: r.get(6),
                p95: r.get(7),
            })
            .collect();
        Ok(Ok(Self::of(attribute, group_by, from, to, groups)))
    }
}

/// A warehouse number as JSON, as PostgreSQL's `to_jsonb` would write it.
fn number(d: Option<Decimal>) -> Option<serde_json::Value> {
    d.and_then(|d| serde_json::from_str(&d.to_string()).ok())
}

/// Why `attribute` cannot have statistics, by the warehouse's catalog.
async fn numeric_in(
    wh: &dyn Warehouse,
    tenant: TenantId,
    attribute: &AttributeName,
) -> Result<Result<(), Refused>, WarehouseError> {
    let Some(data_type) = wh.attribute_type(tenant.get(), attribute.as_str()).await? else {
        return Ok(Err(Refused::Missing(attribute.to_string())));
    };
    let numeric = [DataType::Int.as_str(), DataType::Decimal.as_str()];
    Ok(if numeric.contains(&data_type.as_str()) {
        Ok(())
    } else {
        Err(Refused::NotNumeric {
            name: attribute.to_string(),
            data_type,
        })
    })
}

impl Stats {
    /// The same answer as [`Stats::get`], from the warehouse: every query
    /// there is filtered by `tenant`.
    pub async fn from_warehouse(
        wh: &dyn Warehouse,
        tenant: TenantId,
        attribute: &AttributeName,
        group_by: Option<&AttributeName>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Result<Self, Refused>, WarehouseError> {
        if let Err(refused) = numeric_in(wh, tenant, attribute).await? {
            return Ok(Err(refused));
        }
        if let Some(g) = group_by
            && wh.attribute_type(tenant.get(), g.as_str()).await?.is_none()
        {
            return Ok(Err(Refused::Missing(g.to_string())));
        }
        let rows = wh
            .stats(&StatsQuery {
                tenant_id: tenant.get(),
                attribute: attribute.as_str(),
                group_by: group_by.map(AttributeName::as_str),
                from,
                to,
                limit: MAX_GROUPS + 1,
            })
            .await?;
        let groups: Vec<Group> = rows
            .into_iter()
            .map(|r| Group {
                group: r.group,
                count: r.count,
                entities: r.entities,
                avg: r.avg,
                min: number(r.min),
                max: number(r.max),
                p50: r.p50,
                p95: r.p95,
            })
            .collect();
        Ok(Ok(Self::of(attribute, group_by, from, to, groups)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub day: NaiveDate,
    /// Readings that day.
    pub count: i64,
    /// Entities with readings that day.
    pub entities: i64,
    pub avg: Option<f64>,
    pub min: Option<serde_json::Value>,
    pub max: Option<serde_json::Value>,
}

/// One numeric attribute per UTC day, days without readings left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Daily {
    pub attribute: String,
    /// The first and last day asked for, both included.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<Day>,
}

impl Daily {
    pub async fn get(
        wh: &dyn Warehouse,
        tenant: TenantId,
        attribute: &AttributeName,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Result<Self, Refused>, WarehouseError> {
        if let Err(refused) = numeric_in(wh, tenant, attribute).await? {
            return Ok(Err(refused));
        }
        let days = wh
            .daily(tenant.get(), attribute.as_str(), from, to)
            .await?
            .into_iter()
            .map(|r| Day {
                day: r.day,
                count: r.count,
                entities: r.entities,
                avg: r.avg,
                min: number(r.min),
                max: number(r.max),
            })
            .collect();
        Ok(Ok(Self {
            attribute: attribute.to_string(),
            from,
            to,
            days,
        }))
    }
}
