-- Atlas write path: the seed's Part A tables, with the fixes recorded in
-- README.md ("Where we differ from the seed").

-- Roles are cluster-wide, so several Atlas databases on one server share them.
-- atlas_app:    ingest and query-api; every statement runs in a tenant-scoped
--               transaction and Row-Level Security confines it to that tenant.
-- atlas_worker: flusher, heartbeat, CDC; pipelines that by nature span tenants.
--               It gets an explicit all-rows policy instead of BYPASSRLS,
--               which managed PostgreSQL does not let us grant.
DO $$
BEGIN
    BEGIN
        CREATE ROLE atlas_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE atlas_worker LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END $$;

-- The tenant of the current transaction. SET LOCAL leaves '' (not NULL)
-- behind once the transaction ends, hence the NULLIF.
CREATE FUNCTION atlas_current_tenant() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::bigint $$;

CREATE TABLE tenants (
    tenant_id           bigint PRIMARY KEY CHECK (tenant_id > 0),
    tenant_name         varchar(255) NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    is_active           boolean NOT NULL DEFAULT true,
    allow_auto_register boolean NOT NULL DEFAULT false
);

-- The catalog is per tenant (the seed's is global): two tenants may give the
-- same attribute name different types or hotness.
CREATE TABLE attributes (
    attribute_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants,
    attribute_name varchar(63) NOT NULL CHECK (attribute_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    data_type      varchar(16) NOT NULL
                   CHECK (data_type IN ('int', 'decimal', 'bool', 'string', 'timestamp')),
    is_hot         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, attribute_name)
);

CREATE TABLE entities (
    entity_id   bigint NOT NULL CHECK (entity_id >= 0),
    tenant_id   bigint NOT NULL,
    entity_type varchar(100) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    is_deleted  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (entity_id, tenant_id)
) PARTITION BY RANGE (entity_id);

-- Entity ids are chosen by tenants, so besides the seed's ranges a default
-- partition catches any id, and no registration can fail for lack of one.
DO $$
BEGIN
    FOR i IN 0..19 LOOP
        EXECUTE format('CREATE TABLE entities_p%s PARTITION OF entities FOR VALUES FROM (%s) TO (%s)',
                       i, i * 10000000::bigint, (i + 1) * 10000000::bigint);
    END LOOP;
END $$;
CREATE TABLE entities_default PARTITION OF entities DEFAULT;
CREATE INDEX idx_entities_tenant ON entities (tenant_id, entity_id);

-- ingested_at is the reading's own time (device time, or receive time when
-- the device sent none); it is part of the key, so a replay deduplicates.
CREATE TABLE entity_values_ts (
    entity_id       bigint NOT NULL,
    tenant_id       bigint NOT NULL,
    attribute_id    bigint NOT NULL,
    value           text,
    value_int       bigint,
    value_decimal   numeric(20, 5),
    value_bool      boolean,
    value_timestamp timestamptz,
    ingested_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entity_id, attribute_id, ingested_at),
    CHECK (num_nonnulls(value, value_int, value_decimal, value_bool, value_timestamp) = 1)
) PARTITION BY RANGE (ingested_at);
CREATE INDEX idx_entity_values_ts_brin ON entity_values_ts USING brin (ingested_at);
CREATE INDEX idx_entity_values_ts_attr_time ON entity_values_ts (tenant_id, attribute_id, ingested_at);

-- Monthly partitions, created ahead of the data by the flusher. SECURITY
-- DEFINER because attaching a partition needs ownership of the parent; the
-- advisory lock lets two flushers call it at once.
CREATE FUNCTION atlas_ensure_ts_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    m       date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    created integer := 0;
    part    text;
BEGIN
    IF to_ts - from_ts > interval '10 years' THEN
        RAISE EXCEPTION 'refusing to create partitions for more than 10 years at once';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('atlas_ensure_ts_partitions'));
    WHILE m <= (to_ts AT TIME ZONE 'UTC')::date LOOP
        part := format('entity_values_ts_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF entity_values_ts FOR VALUES FROM (%L) TO (%L)',
                part, m::timestamp AT TIME ZONE 'UTC', (m + 1 * interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION atlas_ensure_ts_partitions(timestamptz, timestamptz) FROM PUBLIC;

-- Staging. Logged, unlike the seed's UNLOGGED table: a 202 promises the
-- readings are durable, and with COPY the WAL costs no measurable speed.
-- No indexes: the flusher drains it with SKIP LOCKED batches.
-- COPY FROM is refused on tables with Row-Level Security, so the tenant
-- isolation here is done differently: tenant_id is filled from the
-- transaction's tenant by its DEFAULT, and atlas_app may neither name that
-- column nor read the table.
CREATE TABLE entity_values_ingest (
    entity_id       bigint NOT NULL,
    tenant_id       bigint NOT NULL DEFAULT atlas_current_tenant(),
    attribute_id    bigint NOT NULL,
    entity_type     varchar(100),
    value           text,
    value_int       bigint,
    value_decimal   numeric(20, 5),
    value_bool      boolean,
    value_timestamp timestamptz,
    ingested_at     timestamptz NOT NULL,
    staged_at       timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000);

-- Partitioned by tenant, not by entity as in the seed: every query is
-- tenant-scoped, and hashing the entity makes each touch all partitions.
-- hot_attrs_ts holds each key's reading time (microseconds since the epoch)
-- so an older reading never overwrites a newer one.
CREATE TABLE entity_jsonb (
    entity_id    bigint NOT NULL,
    tenant_id    bigint NOT NULL,
    hot_attrs    jsonb NOT NULL DEFAULT '{}',
    hot_attrs_ts jsonb NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_id)
) PARTITION BY HASH (tenant_id);
DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format('CREATE TABLE entity_jsonb_p%s PARTITION OF entity_jsonb FOR VALUES WITH (MODULUS 64, REMAINDER %s)', i, i);
    END LOOP;
END $$;
CREATE INDEX idx_entity_jsonb_hot_attrs ON entity_jsonb USING gin (hot_attrs);
CREATE INDEX idx_entity_jsonb_tenant_updated ON entity_jsonb (tenant_id, updated_at DESC);

-- Merges incoming hot values into current ones, keeping for each key the
-- value with the newer reading time. Called twice per row by the flusher:
-- once for the values, once (with the timestamps as values) for the times.
CREATE FUNCTION atlas_hot_merge(cur jsonb, cur_ts jsonb, incoming jsonb, incoming_ts jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT cur || COALESCE(jsonb_object_agg(n.key, n.value), '{}'::jsonb)
    FROM jsonb_each(incoming) AS n
    WHERE (cur_ts -> n.key) IS NULL
       OR (incoming_ts -> n.key)::numeric > (cur_ts -> n.key)::numeric
$$;

CREATE TABLE replication_heartbeat (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "timestamp" timestamptz NOT NULL DEFAULT clock_timestamp(),
    source      varchar(50) NOT NULL
);
CREATE INDEX idx_replication_heartbeat_source ON replication_heartbeat (source, "timestamp" DESC);

-- Materialized views ignore Row-Level Security, so tenants read this one
-- only through the filtering view below.
CREATE MATERIALIZED VIEW mv_entity_attribute_stats AS
SELECT ev.tenant_id, ev.attribute_id, a.attribute_name,
       count(DISTINCT ev.entity_id) AS distinct_entities,
       count(*) AS total_values
FROM entity_values_ts ev
JOIN attributes a ON a.attribute_id = ev.attribute_id
GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX idx_mv_entity_attribute_stats ON mv_entity_attribute_stats (tenant_id, attribute_id);

CREATE VIEW entity_attribute_stats WITH (security_barrier) AS
SELECT * FROM mv_entity_attribute_stats WHERE tenant_id = atlas_current_tenant();

-- Row-Level Security on every tenant-owned table, forced even for the owner.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'attributes', 'entities', 'entity_values_ts', 'entity_jsonb'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I TO atlas_app '
                       'USING (tenant_id = atlas_current_tenant()) '
                       'WITH CHECK (tenant_id = atlas_current_tenant())', t);
        EXECUTE format('CREATE POLICY worker_all ON %I TO atlas_worker USING (true) WITH CHECK (true)', t);
    END LOOP;
END $$;

-- Privileges go on the parents only: a partition reached directly would
-- skip the parent's policies, so atlas_app has no rights on any partition.
GRANT USAGE ON SCHEMA public TO atlas_app, atlas_worker;
GRANT SELECT ON tenants, attributes, entities, entity_values_ts, entity_jsonb, replication_heartbeat
    TO atlas_app;
GRANT INSERT (tenant_id, attribute_name, data_type, is_hot) ON attributes TO atlas_app;
GRANT INSERT (entity_id, attribute_id, entity_type, value, value_int, value_decimal, value_bool,
              value_timestamp, ingested_at)
    ON entity_values_ingest TO atlas_app;
GRANT SELECT ON entity_attribute_stats TO atlas_app;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON tenants, attributes, entities, entity_values_ts, entity_values_ingest, entity_jsonb,
       replication_heartbeat
    TO atlas_worker;
GRANT SELECT ON mv_entity_attribute_stats, entity_attribute_stats TO atlas_worker;
GRANT EXECUTE ON FUNCTION atlas_ensure_ts_partitions(timestamptz, timestamptz) TO atlas_worker;
