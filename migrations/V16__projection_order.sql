-- Query 1 reads a tenant's candidates from entity_jsonb by a bitmap of
-- heap pages. Rows arrive interleaved across the ~16 tenants of a hash
-- partition, so at 10M entities a tenant's ~960 candidates sat on ~930
-- pages; grouped by tenant they sit on ~340, and Query 1's p99 fell from
-- 11.7 to 7.2 ms (README, "Reads"). Two things keep them grouped:
--
-- - free space on every page (fillfactor 80), so the new version of an
--   updated row (every hot reading makes one) fits on its own page;
-- - atlas_projection_recluster(), which the flusher calls when idle: it
--   rewrites the one partition whose physical order has drifted furthest
--   from (tenant_id, entity_id), by the planner's statistics.
DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format('ALTER TABLE entity_jsonb_p%s SET (fillfactor = 80)', i);
    END LOOP;
END $$;

-- Rewrites at most one partition of entity_jsonb in primary-key order:
-- the one with the lowest correlation of tenant_id with the physical order
-- below `below` (pg_stats, refreshed by autovacuum's ANALYZE) and at least
-- `min_rows` rows. Returns its name, or NULL when none needs it.
--
-- CLUSTER holds the partition exclusively while it works (0.6 to 0.9 s
-- per partition at 10M entities), so its ~16 tenants' reads and flushes
-- wait that long; lock_timeout keeps it from queueing behind a long reader
-- and holding everyone else up meanwhile. SECURITY DEFINER: CLUSTER needs
-- the owner.
CREATE FUNCTION atlas_projection_recluster(below double precision, min_rows bigint)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    part text;
BEGIN
    SELECT s.tablename INTO part
    FROM pg_stats s
    JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = 'public'::regnamespace
    JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'entity_jsonb'::regclass
    WHERE s.schemaname = 'public' AND s.attname = 'tenant_id'
      AND s.correlation < below AND c.reltuples >= min_rows
    ORDER BY s.correlation
    LIMIT 1;
    IF part IS NULL THEN
        RETURN NULL;
    END IF;
    SET LOCAL lock_timeout = '1s';
    EXECUTE format('CLUSTER %I USING %I', part, part || '_pkey');
    EXECUTE format('ANALYZE %I', part);
    RETURN part;
END $$;
REVOKE ALL ON FUNCTION atlas_projection_recluster(double precision, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION atlas_projection_recluster(double precision, bigint) TO atlas_worker;
