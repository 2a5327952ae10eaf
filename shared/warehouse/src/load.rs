//! Sink: one batch into the warehouse, in one transaction, by the same
//! statements on Redshift and on PostgreSQL. Each adapter first fills the
//! stage tables below with the batch (PostgreSQL from arrays, Redshift by
//! `COPY` from S3); then these statements move the stage into the
//! warehouse:
//!
//! 1. dimensions: stage rows older than what the warehouse holds are
//!    dropped, the rest merged; readings loaded before their dimension
//!    arrived get their enrichment now;
//! 2. readings already in `fact_telemetry` (a redelivered batch, a retried
//!    invocation) are dropped from the stage, so the insert and the daily
//!    statistics see each reading once, ever;
//! 3. the rest are inserted, enriched from the dimensions, and added to
//!    `agg_daily_entity_stats`;
//! 4. hot states: older than the warehouse's are dropped, deletions
//!    applied, the rest merged;
//! 5. the load watermark moves forward, never back.
//!
//! Redshift's `MERGE` takes a table (not a query) as its source and needs
//! both `WHEN` clauses, so every merge reads a stage table and both dialects
//! run the same text; only the clock and the empty document differ.

/// A stage table: what the batch brings for one warehouse table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Tenants,
    Attributes,
    Entities,
    Telemetry,
    CurrentState,
    Watermarks,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Tenants,
        Stage::Attributes,
        Stage::Entities,
        Stage::Telemetry,
        Stage::CurrentState,
        Stage::Watermarks,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Stage::Tenants => "stage_tenants",
            Stage::Attributes => "stage_attributes",
            Stage::Entities => "stage_entities",
            Stage::Telemetry => "stage_telemetry",
            Stage::CurrentState => "stage_current_state",
            Stage::Watermarks => "stage_watermarks",
        }
    }

    /// The stage's columns and their types (the same names as the
    /// warehouse table's; the types as PostgreSQL and Redshift both spell
    /// them, documents aside).
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Stage::Tenants => &[
                ("tenant_id", "bigint"),
                ("tenant_name", "varchar(255)"),
                ("is_active", "boolean"),
                ("source_lsn", "bigint"),
            ],
            Stage::Attributes => &[
                ("attribute_id", "bigint"),
                ("tenant_id", "bigint"),
                ("attribute_name", "varchar(63)"),
                ("data_type", "varchar(16)"),
                ("attribute_category", "varchar(8)"),
                ("source_lsn", "bigint"),
            ],
            Stage::Entities => &[
                ("tenant_id", "bigint"),
                ("entity_id", "bigint"),
                ("entity_type", "varchar(100)"),
                ("is_deleted", "boolean"),
                ("source_lsn", "bigint"),
            ],
            Stage::Telemetry => &[
                ("tenant_id", "bigint"),
                ("entity_id", "bigint"),
                ("attribute_id", "bigint"),
                ("ingested_at", "timestamptz"),
                ("value", "text"),
                ("value_int", "bigint"),
                ("value_decimal", "numeric(20, 5)"),
                ("value_bool", "boolean"),
                ("value_timestamp", "timestamptz"),
                ("ingested_date", "date"),
                ("ingested_hour", "smallint"),
                ("day_of_week", "smallint"),
                ("year_month", "char(7)"),
                ("source_lsn", "bigint"),
                ("source_commit_at", "timestamptz"),
            ],
            Stage::CurrentState => &[
                ("tenant_id", "bigint"),
                ("entity_id", "bigint"),
                ("hot_attrs", "{document}"),
                ("hot_attrs_ts", "{document}"),
                ("updated_at", "timestamptz"),
                ("deleted", "boolean"),
                ("source_lsn", "bigint"),
            ],
            Stage::Watermarks => &[
                ("source", "varchar(128)"),
                ("source_lsn", "bigint"),
                ("source_commit_at", "timestamptz"),
            ],
        }
    }
}

/// Where the two warehouses' SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Redshift,
}

impl Dialect {
    fn now(self) -> &'static str {
        match self {
            Dialect::Postgres => "now()",
            Dialect::Redshift => "GETDATE()",
        }
    }

    fn document(self) -> &'static str {
        match self {
            Dialect::Postgres => "jsonb",
            Dialect::Redshift => "super",
        }
    }

    fn empty_document(self) -> &'static str {
        match self {
            Dialect::Postgres => "'{}'::jsonb",
            Dialect::Redshift => "JSON_PARSE('{}')",
        }
    }

    /// `text` with this dialect's clock, document type and empty document.
    pub fn render(self, text: &str) -> String {
        text.replace("{now}", self.now())
            .replace("{document}", self.document())
            .replace("{empty_document}", self.empty_document())
    }

    /// The column list of `stage`, as its `CREATE TABLE` takes it.
    pub fn stage_columns(self, stage: Stage) -> String {
        let cols: Vec<String> = stage
            .columns()
            .iter()
            .map(|(name, ty)| format!("{name} {ty}"))
            .collect();
        self.render(&cols.join(", "))
    }
}

/// What a step's row count means for the load's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    Nothing,
    /// Readings the warehouse already held.
    Duplicates,
    /// Readings inserted.
    Loaded,
}

/// One statement of the load; it runs only when its stage holds rows.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub stage: Stage,
    pub counts: Counts,
    pub sql: &'static str,
}

const fn step(stage: Stage, sql: &'static str) -> Step {
    Step {
        stage,
        counts: Counts::Nothing,
        sql,
    }
}

pub const STEPS: &[Step] = &[
    // 1. Dimensions.
    step(
        Stage::Tenants,
        "DELETE FROM stage_tenants USING dim_tenants d \
         WHERE d.tenant_id = stage_tenants.tenant_id AND d.source_lsn > stage_tenants.source_lsn",
    ),
    step(
        Stage::Tenants,
        "MERGE INTO dim_tenants USING stage_tenants s ON dim_tenants.tenant_id = s.tenant_id \
         WHEN MATCHED THEN UPDATE SET tenant_name = s.tenant_name, is_active = s.is_active, \
         source_lsn = s.source_lsn, loaded_at = {now} \
         WHEN NOT MATCHED THEN INSERT (tenant_id, tenant_name, is_active, source_lsn, loaded_at) \
         VALUES (s.tenant_id, s.tenant_name, s.is_active, s.source_lsn, {now})",
    ),
    step(
        Stage::Tenants,
        "UPDATE fact_telemetry SET tenant_name = s.tenant_name FROM stage_tenants s \
         WHERE fact_telemetry.tenant_id = s.tenant_id AND fact_telemetry.tenant_name IS NULL",
    ),
    step(
        Stage::Attributes,
        "DELETE FROM stage_attributes USING dim_attributes d \
         WHERE d.attribute_id = stage_attributes.attribute_id \
         AND d.source_lsn > stage_attributes.source_lsn",
    ),
    step(
        Stage::Attributes,
        "MERGE INTO dim_attributes USING stage_attributes s \
         ON dim_attributes.attribute_id = s.attribute_id \
         WHEN MATCHED THEN UPDATE SET tenant_id = s.tenant_id, attribute_name = s.attribute_name, \
         data_type = s.data_type, attribute_category = s.attribute_category, \
         source_lsn = s.source_lsn, loaded_at = {now} \
         WHEN NOT MATCHED THEN INSERT (attribute_id, tenant_id, attribute_name, data_type, \
         attribute_category, source_lsn, loaded_at) \
         VALUES (s.attribute_id, s.tenant_id, s.attribute_name, s.data_type, \
         s.attribute_category, s.source_lsn, {now})",
    ),
    step(
        Stage::Attributes,
        "UPDATE fact_telemetry SET attribute_name = s.attribute_name, data_type = s.data_type, \
         attribute_category = s.attribute_category FROM stage_attributes s \
         WHERE fact_telemetry.tenant_id = s.tenant_id \
         AND fact_telemetry.attribute_id = s.attribute_id \
         AND fact_telemetry.attribute_name IS NULL",
    ),
    step(
        Stage::Attributes,
        "UPDATE agg_daily_entity_stats SET attribute_name = s.attribute_name \
         FROM stage_attributes s \
         WHERE agg_daily_entity_stats.tenant_id = s.tenant_id \
         AND agg_daily_entity_stats.attribute_id = s.attribute_id \
         AND agg_daily_entity_stats.attribute_name IS NULL",
    ),
    step(
        Stage::Entities,
        "DELETE FROM stage_entities USING dim_entities d \
         WHERE d.tenant_id = stage_entities.tenant_id AND d.entity_id = stage_entities.entity_id \
         AND d.source_lsn > stage_entities.source_lsn",
    ),
    step(
        Stage::Entities,
        "MERGE INTO dim_entities USING stage_entities s \
         ON dim_entities.tenant_id = s.tenant_id AND dim_entities.entity_id = s.entity_id \
         WHEN MATCHED THEN UPDATE SET \
         entity_type = COALESCE(s.entity_type, dim_entities.entity_type), \
         is_deleted = s.is_deleted, source_lsn = s.source_lsn, loaded_at = {now} \
         WHEN NOT MATCHED THEN INSERT (tenant_id, entity_id, entity_type, is_deleted, \
         source_lsn, loaded_at) \
         VALUES (s.tenant_id, s.entity_id, COALESCE(s.entity_type, ''), s.is_deleted, \
         s.source_lsn, {now})",
    ),
    step(
        Stage::Entities,
        "UPDATE fact_telemetry SET entity_type = s.entity_type FROM stage_entities s \
         WHERE fact_telemetry.tenant_id = s.tenant_id AND fact_telemetry.entity_id = s.entity_id \
         AND fact_telemetry.entity_type IS NULL AND s.entity_type IS NOT NULL",
    ),
    // 2. Readings the warehouse holds already.
    Step {
        stage: Stage::Telemetry,
        counts: Counts::Duplicates,
        sql: "DELETE FROM stage_telemetry USING fact_telemetry f \
              WHERE f.tenant_id = stage_telemetry.tenant_id \
              AND f.entity_id = stage_telemetry.entity_id \
              AND f.attribute_id = stage_telemetry.attribute_id \
              AND f.ingested_at = stage_telemetry.ingested_at",
    },
    // 3. New readings, enriched, and their daily statistics.
    Step {
        stage: Stage::Telemetry,
        counts: Counts::Loaded,
        sql: "INSERT INTO fact_telemetry (tenant_id, entity_id, attribute_id, ingested_at, \
              tenant_name, attribute_name, data_type, attribute_category, entity_type, \
              value, value_int, value_decimal, value_bool, value_timestamp, \
              ingested_date, ingested_hour, day_of_week, year_month, \
              source_lsn, source_commit_at, loaded_at) \
              SELECT s.tenant_id, s.entity_id, s.attribute_id, s.ingested_at, \
              t.tenant_name, a.attribute_name, a.data_type, a.attribute_category, e.entity_type, \
              s.value, s.value_int, s.value_decimal, s.value_bool, s.value_timestamp, \
              s.ingested_date, s.ingested_hour, s.day_of_week, s.year_month, \
              s.source_lsn, s.source_commit_at, {now} \
              FROM stage_telemetry s \
              LEFT JOIN dim_tenants t ON t.tenant_id = s.tenant_id \
              LEFT JOIN dim_attributes a ON a.attribute_id = s.attribute_id \
              AND a.tenant_id = s.tenant_id \
              LEFT JOIN dim_entities e ON e.tenant_id = s.tenant_id AND e.entity_id = s.entity_id",
    },
    step(
        Stage::Telemetry,
        "INSERT INTO stage_daily (tenant_id, entity_id, attribute_id, ingested_date, \
         attribute_name, sample_count, value_sum, value_min, value_max) \
         SELECT s.tenant_id, s.entity_id, s.attribute_id, s.ingested_date, \
         MAX(a.attribute_name), COUNT(*), SUM(s.n), MIN(s.n), MAX(s.n) \
         FROM (SELECT tenant_id, entity_id, attribute_id, ingested_date, \
         COALESCE(value_decimal, CAST(value_int AS numeric(38, 5))) AS n \
         FROM stage_telemetry) s \
         LEFT JOIN dim_attributes a ON a.attribute_id = s.attribute_id \
         AND a.tenant_id = s.tenant_id \
         WHERE s.n IS NOT NULL \
         GROUP BY s.tenant_id, s.entity_id, s.attribute_id, s.ingested_date",
    ),
    step(
        Stage::Telemetry,
        "MERGE INTO agg_daily_entity_stats USING stage_daily s \
         ON agg_daily_entity_stats.tenant_id = s.tenant_id \
         AND agg_daily_entity_stats.entity_id = s.entity_id \
         AND agg_daily_entity_stats.attribute_id = s.attribute_id \
         AND agg_daily_entity_stats.ingested_date = s.ingested_date \
         WHEN MATCHED THEN UPDATE SET \
         attribute_name = COALESCE(agg_daily_entity_stats.attribute_name, s.attribute_name), \
         sample_count = agg_daily_entity_stats.sample_count + s.sample_count, \
         value_sum = agg_daily_entity_stats.value_sum + s.value_sum, \
         value_min = LEAST(agg_daily_entity_stats.value_min, s.value_min), \
         value_max = GREATEST(agg_daily_entity_stats.value_max, s.value_max) \
         WHEN NOT MATCHED THEN INSERT (tenant_id, entity_id, attribute_id, ingested_date, \
         attribute_name, sample_count, value_sum, value_min, value_max) \
         VALUES (s.tenant_id, s.entity_id, s.attribute_id, s.ingested_date, \
         s.attribute_name, s.sample_count, s.value_sum, s.value_min, s.value_max)",
    ),
    // 4. Hot state.
    step(
        Stage::CurrentState,
        "DELETE FROM stage_current_state USING fact_current_state c \
         WHERE c.tenant_id = stage_current_state.tenant_id \
         AND c.entity_id = stage_current_state.entity_id \
         AND c.source_lsn > stage_current_state.source_lsn",
    ),
    step(
        Stage::CurrentState,
        "DELETE FROM fact_current_state USING stage_current_state s \
         WHERE fact_current_state.tenant_id = s.tenant_id \
         AND fact_current_state.entity_id = s.entity_id AND s.deleted",
    ),
    step(
        Stage::CurrentState,
        "DELETE FROM stage_current_state WHERE deleted",
    ),
    step(
        Stage::CurrentState,
        "MERGE INTO fact_current_state USING stage_current_state s \
         ON fact_current_state.tenant_id = s.tenant_id \
         AND fact_current_state.entity_id = s.entity_id \
         WHEN MATCHED THEN UPDATE SET \
         hot_attrs = COALESCE(s.hot_attrs, fact_current_state.hot_attrs), \
         hot_attrs_ts = COALESCE(s.hot_attrs_ts, fact_current_state.hot_attrs_ts), \
         updated_at = s.updated_at, source_lsn = s.source_lsn, loaded_at = {now} \
         WHEN NOT MATCHED THEN INSERT (tenant_id, entity_id, hot_attrs, hot_attrs_ts, \
         updated_at, source_lsn, loaded_at) \
         VALUES (s.tenant_id, s.entity_id, COALESCE(s.hot_attrs, {empty_document}), \
         COALESCE(s.hot_attrs_ts, {empty_document}), s.updated_at, s.source_lsn, {now})",
    ),
    // 5. How far the warehouse has come.
    step(
        Stage::Watermarks,
        "MERGE INTO load_watermarks USING stage_watermarks s ON load_watermarks.source = s.source \
         WHEN MATCHED THEN UPDATE SET \
         source_lsn = GREATEST(load_watermarks.source_lsn, s.source_lsn), \
         source_commit_at = GREATEST(load_watermarks.source_commit_at, s.source_commit_at), \
         loaded_at = {now} \
         WHEN NOT MATCHED THEN INSERT (source, source_lsn, source_commit_at, loaded_at) \
         VALUES (s.source, s.source_lsn, s.source_commit_at, {now})",
    ),
];

/// The aggregate stage: filled from the telemetry stage by a step, never
/// by an adapter.
pub const DAILY_STAGE: (&str, &str) = (
    "stage_daily",
    "tenant_id bigint, entity_id bigint, attribute_id bigint, ingested_date date, \
     attribute_name varchar(63), sample_count bigint, value_sum numeric(38, 5), \
     value_min numeric(38, 5), value_max numeric(38, 5)",
);

/// What one load did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Loaded {
    /// Readings inserted into `fact_telemetry`.
    pub loaded: u64,
    /// Readings the warehouse or the batch held already.
    pub duplicates: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_a_stage_and_renders_in_both_dialects() {
        for s in STEPS {
            // The daily statistics come from the telemetry stage, by way
            // of their own.
            let reads = s.sql.contains(s.stage.table())
                || (s.stage == Stage::Telemetry && s.sql.contains(DAILY_STAGE.0));
            assert!(reads, "{} does not read {}", s.sql, s.stage.table());
            for d in [Dialect::Postgres, Dialect::Redshift] {
                let sql = d.render(s.sql);
                for placeholder in ["{now}", "{document}", "{empty_document}"] {
                    assert!(!sql.contains(placeholder), "{sql}");
                }
            }
        }
        assert!(
            Dialect::Redshift
                .stage_columns(Stage::CurrentState)
                .contains("hot_attrs super")
        );
    }
}
