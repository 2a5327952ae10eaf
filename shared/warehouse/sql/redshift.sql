-- The warehouse in Redshift: the same tables, columns and keys as
-- sql/postgres.sql (a test keeps them in step). Redshift has no indexes;
-- distribution and sort keys do their work:
--
-- - Facts are distributed by entity_id (EVEN would scatter an entity's
--   readings; tenant_id would put a big tenant on one slice), so readings
--   spread evenly and a join to dim_entities on the entity stays local.
-- - Facts sort by (tenant_id, attribute_name, ingested_date): every read is
--   one tenant's attribute over a time range (the seed's six-month daily
--   average), which the zone maps then narrow to a few blocks.
-- - Dimensions are small and joined from every slice: DISTSTYLE ALL.
-- Primary keys are declared for the planner; Redshift does not enforce
-- them, so the loader's MERGE is what keeps a key unique.

CREATE TABLE IF NOT EXISTS dim_tenants (
    tenant_id   bigint PRIMARY KEY,
    tenant_name varchar(255) NOT NULL,
    is_active   boolean NOT NULL,
    source_lsn  bigint NOT NULL DEFAULT 0,
    loaded_at   timestamptz NOT NULL DEFAULT getdate()
) DISTSTYLE ALL SORTKEY (tenant_id);

CREATE TABLE IF NOT EXISTS dim_attributes (
    attribute_id       bigint PRIMARY KEY,
    tenant_id          bigint NOT NULL,
    attribute_name     varchar(63) NOT NULL,
    data_type          varchar(16) NOT NULL,
    attribute_category varchar(8) NOT NULL,
    source_lsn         bigint NOT NULL DEFAULT 0,
    loaded_at          timestamptz NOT NULL DEFAULT getdate()
) DISTSTYLE ALL SORTKEY (tenant_id, attribute_id);

CREATE TABLE IF NOT EXISTS dim_entities (
    tenant_id   bigint NOT NULL,
    entity_id   bigint NOT NULL,
    entity_type varchar(100) NOT NULL,
    is_deleted  boolean NOT NULL DEFAULT false,
    source_lsn  bigint NOT NULL DEFAULT 0,
    loaded_at   timestamptz NOT NULL DEFAULT getdate(),
    PRIMARY KEY (tenant_id, entity_id)
) DISTKEY (entity_id) SORTKEY (tenant_id, entity_id);

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
    value              varchar(65535),
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
    loaded_at          timestamptz NOT NULL DEFAULT getdate(),
    PRIMARY KEY (tenant_id, entity_id, attribute_id, ingested_at)
) DISTKEY (entity_id) COMPOUND SORTKEY (tenant_id, attribute_name, ingested_date);

CREATE TABLE IF NOT EXISTS fact_current_state (
    tenant_id    bigint NOT NULL,
    entity_id    bigint NOT NULL,
    hot_attrs    super NOT NULL,
    hot_attrs_ts super NOT NULL,
    updated_at   timestamptz NOT NULL,
    source_lsn   bigint NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT getdate(),
    PRIMARY KEY (tenant_id, entity_id)
) DISTKEY (entity_id) SORTKEY (tenant_id, entity_id);

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
) DISTKEY (entity_id) COMPOUND SORTKEY (tenant_id, attribute_name, ingested_date);

CREATE TABLE IF NOT EXISTS load_watermarks (
    source           varchar(128) PRIMARY KEY,
    source_lsn       bigint NOT NULL,
    source_commit_at timestamptz NOT NULL,
    loaded_at        timestamptz NOT NULL
) DISTSTYLE ALL;
