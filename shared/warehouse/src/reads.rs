//! Analytics reads: what `consistency=analytics` answers from the
//! warehouse. Every statement is filtered by the caller's tenant (the
//! warehouse has no tenant setting of its own to trust), and by the day
//! columns the tables are sorted on, so a six-month range reads six months.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

/// One group of a distribution (see the query API's stats route).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    pub group: Option<String>,
    pub count: i64,
    pub entities: i64,
    pub avg: Option<f64>,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

/// One day of one attribute (the seed's six-month question), from
/// `agg_daily_entity_stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    pub day: NaiveDate,
    pub count: i64,
    pub entities: i64,
    pub avg: Option<f64>,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
}

/// A distribution to read: readings of `attribute` in `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct StatsQuery<'a> {
    pub tenant_id: i64,
    pub attribute: &'a str,
    pub group_by: Option<&'a str>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Most groups returned.
    pub limit: i64,
}

/// Whether the tenant has the attribute, and its type.
pub const ATTRIBUTE: &str = "SELECT data_type FROM dim_attributes \
                             WHERE tenant_id = $1 AND attribute_name = $2";

/// `$1` tenant, `$2` attribute, `$3`/`$4` the range, `$5`/`$6` its days.
const VALUES: &str = "SELECT entity_id, COALESCE(value_decimal, CAST(value_int AS numeric)) AS x \
                      FROM fact_telemetry \
                      WHERE tenant_id = $1 AND attribute_name = $2 \
                      AND ingested_date BETWEEN $5 AND $6 \
                      AND ingested_at >= $3 AND ingested_at < $4";

const AGGREGATES: &str = "COUNT(*), COUNT(DISTINCT v.entity_id), CAST(AVG(x) AS double precision), \
                          MIN(x), MAX(x), \
                          CAST(PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x) AS double precision), \
                          CAST(PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY x) AS double precision)";

/// The whole distribution, one group.
pub fn stats_sql() -> String {
    format!(
        "SELECT CAST(NULL AS varchar), {AGGREGATES} FROM ({VALUES}) v WHERE x IS NOT NULL HAVING COUNT(*) > 0"
    )
}

/// Per group: each entity's latest value of `$7` in the range, as text;
/// `$8` groups at most.
pub fn grouped_stats_sql() -> String {
    format!(
        "WITH grp AS ( \
             SELECT entity_id, g FROM ( \
                 SELECT entity_id, \
                        COALESCE(value, CAST(value_int AS varchar), CAST(value_decimal AS varchar), \
                                 CASE WHEN value_bool THEN 'true' WHEN NOT value_bool THEN 'false' END, \
                                 TO_CHAR(value_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) AS g, \
                        ROW_NUMBER() OVER (PARTITION BY entity_id ORDER BY ingested_at DESC) AS latest \
                 FROM fact_telemetry \
                 WHERE tenant_id = $1 AND attribute_name = $7 \
                 AND ingested_date BETWEEN $5 AND $6 \
                 AND ingested_at >= $3 AND ingested_at < $4) r \
             WHERE latest = 1) \
         SELECT grp.g, {AGGREGATES} FROM ({VALUES}) v LEFT JOIN grp ON grp.entity_id = v.entity_id \
         WHERE x IS NOT NULL GROUP BY grp.g ORDER BY grp.g NULLS LAST LIMIT $8"
    )
}

/// `$1` tenant, `$2` attribute, `$3`/`$4` the first and last day.
pub const DAILY: &str = "SELECT ingested_date, CAST(SUM(sample_count) AS bigint), COUNT(DISTINCT entity_id), \
                         CAST(SUM(value_sum) / SUM(sample_count) AS double precision), \
                         MIN(value_min), MAX(value_max) \
                         FROM agg_daily_entity_stats \
                         WHERE tenant_id = $1 AND attribute_name = $2 \
                         AND ingested_date BETWEEN $3 AND $4 \
                         GROUP BY ingested_date ORDER BY ingested_date";

/// How fresh the warehouse is: the newest source commit loaded.
pub const DATA_AS_OF: &str = "SELECT MAX(source_commit_at) FROM load_watermarks";
