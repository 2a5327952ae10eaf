-- The local warehouse: Redshift's tables (sql/redshift.sql) in PostgreSQL,
-- same names, columns and keys, so the loader's MERGE and the analytics
-- reads are the same statements on both. Applied on first use; every
-- statement is idempotent.

-- Dimensions, kept by the loader from the same change stream as the facts.
CREATE TABLE IF NOT EXISTS dim_tenants (
    tenant_id   bigint PRIMARY KEY,
    tenant_name varchar(255) NOT NULL,
    is_active   boolean NOT NULL,
    source_lsn  bigint NOT NULL DEFAULT 0,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dim_attributes (
    attribute_id       bigint PRIMARY KEY,
    tenant_id          bigint NOT NULL,
    attribute_name     varchar(63) NOT NULL,
    data_type          varchar(16) NOT NULL,
    -- The seed's attribute category: hot (projected into entity_jsonb)
    -- or cold (time series only).
    attribute_category varchar(8) NOT NULL,
    source_lsn         bigint NOT NULL DEFAULT 0,
    loaded_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dim_entities (
    tenant_id   bigint NOT NULL,
    entity_id   bigint NOT NULL,
    entity_type varchar(100) NOT NULL,
    is_deleted  boolean NOT NULL DEFAULT false,
    source_lsn  bigint NOT NULL DEFAULT 0,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_id)
);

-- Every reading, denormalized: entity_values_ts's columns, the enrichment
-- and the derived time columns. The natural key makes a redelivered change
-- add nothing.
CREATE TABLE IF NOT EXISTS fact_telemetry (
    tenant_id          bigint NOT NULL,
    entity_id          bigint NOT NULL,
    attribute_id       bigint NOT NULL,
    ingested_at        timestamptz NOT NULL,
    tenant_name        varchar(255),
    attribute_name     varchar(63),
    data_type          varchar(16),
    attribute_category varchar(8),
    entity_type        varchar(100),
    value              text,
    value_int          bigint,
    value_decimal      numeric(20, 5),
    value_bool         boolean,
    value_timestamp    timestamptz,
    ingested_date      date NOT NULL,
    ingested_hour      smallint NOT NULL,
    day_of_week        smallint NOT NULL,
    year_month         char(7) NOT NULL,
    source_lsn         bigint NOT NULL,
    source_commit_at   timestamptz,
    loaded_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_id, attribute_id, ingested_at)
);
CREATE INDEX IF NOT EXISTS fact_telemetry_attribute_day
    ON fact_telemetry (tenant_id, attribute_name, ingested_date);
-- Readings that came before their dimension: the load enriches them when
-- it arrives, and finds them here instead of among all the tenant's.
CREATE INDEX IF NOT EXISTS fact_telemetry_unenriched
    ON fact_telemetry (tenant_id)
    WHERE tenant_name IS NULL OR attribute_name IS NULL OR entity_type IS NULL;

-- The latest hot state of every entity, from entity_jsonb's changes.
CREATE TABLE IF NOT EXISTS fact_current_state (
    tenant_id    bigint NOT NULL,
    entity_id    bigint NOT NULL,
    hot_attrs    jsonb NOT NULL,
    hot_attrs_ts jsonb NOT NULL,
    updated_at   timestamptz NOT NULL,
    source_lsn   bigint NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_id)
);

-- Numeric readings per entity, attribute and day, kept current by the
-- loader from the rows each load adds (never from a redelivered one).
CREATE TABLE IF NOT EXISTS agg_daily_entity_stats (
    tenant_id      bigint NOT NULL,
    entity_id      bigint NOT NULL,
    attribute_id   bigint NOT NULL,
    ingested_date  date NOT NULL,
    attribute_name varchar(63),
    sample_count   bigint NOT NULL,
    value_sum      numeric(38, 5) NOT NULL,
    value_min      numeric(38, 5) NOT NULL,
    value_max      numeric(38, 5) NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, attribute_id, ingested_date)
);

-- How far each source has been loaded: the newest source commit time and
-- LSN, and when the load happened. Reads take data_as_of from here.
CREATE TABLE IF NOT EXISTS load_watermarks (
    source           varchar(128) PRIMARY KEY,
    source_lsn       bigint NOT NULL,
    source_commit_at timestamptz NOT NULL,
    loaded_at        timestamptz NOT NULL
);
