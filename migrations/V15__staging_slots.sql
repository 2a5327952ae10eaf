-- Staging in sixteen rotating slots, one per second of the time a staging
-- statement starts. A slot whose second is over is drained whole
-- by one flusher and emptied with TRUNCATE: no per-row DELETE, no dead rows
-- for autovacuum, and as many readings per batch as that second brought in,
-- so the hot projection is merged once per entity and slot. The slot being
-- written is still flushed row by row (SKIP LOCKED) when the flushers have
-- nothing older to do, so a reading never waits for its second to end.
--
-- The slot comes from statement_timestamp(): one value per COPY, taken as
-- it starts, where a volatile clock_timestamp() default cost ~0.45 µs per
-- staged row. A COPY that starts in one second and is still staging after
-- it stays in its own slot; the flusher's table lock waits for it to
-- commit, so nothing is lost, and it holds up nothing but that drain.
CREATE FUNCTION atlas_staging_slot() RETURNS smallint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT (floor(date_part('epoch', statement_timestamp()))::bigint & 15)::smallint $$;

ALTER TABLE entity_values_ingest RENAME TO entity_values_ingest_unslotted;

-- The same columns and defaults (the tenant from the transaction's setting).
CREATE TABLE entity_values_ingest (
    LIKE entity_values_ingest_unslotted INCLUDING DEFAULTS,
    slot smallint NOT NULL DEFAULT atlas_staging_slot()
) PARTITION BY LIST (slot);

DO $$
BEGIN
    FOR s IN 0..15 LOOP
        -- Autovacuum matters only for the row-by-row path of young slots.
        EXECUTE format(
            'CREATE TABLE entity_values_ingest_%s PARTITION OF entity_values_ingest FOR VALUES IN (%s) '
            'WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000, '
            'autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000)',
            s, s);
    END LOOP;
END $$;

-- Acknowledged readings move over; the unslotted table is gone in the same
-- transaction.
INSERT INTO entity_values_ingest SELECT u.*, atlas_staging_slot() FROM entity_values_ingest_unslotted u;
DROP TABLE entity_values_ingest_unslotted;

-- As before: the app may only append, naming neither its tenant nor the slot.
GRANT INSERT (entity_id, attribute_id, entity_type, value, value_int, value_decimal, value_bool,
              value_timestamp, ingested_at)
    ON entity_values_ingest TO atlas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON entity_values_ingest TO atlas_worker;

-- Picks the slots a flush batch may take, as the caller's transaction sees
-- them. The oldest slot of at least `drain_age` seconds (0: being written)
-- that holds anything and that no other flusher holds is claimed, short of
-- the one written again within the second (15 s old: a drain then would
-- hold up ingest). An advisory lock (namespace `lock_ns`, the slot as
-- second key) shares the old slots out, and a table lock waits for writers
-- still staging into the slot and holds off new ones until commit, so what
-- the flusher then reads is all the slot holds. It comes first, with
-- `claimed`; then come the young slots that hold anything (and the one
-- about to be written again), older first, for row-by-row work. A slot another flusher holds is passed over by its advisory lock
-- before its size is read, since reading the size waits behind the table
-- lock.
-- SECURITY DEFINER: workers get no rights on partitions.
CREATE FUNCTION atlas_staging_pick(drain_age smallint, lock_ns integer)
RETURNS TABLE (slot smallint, age smallint, bytes bigint, claimed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    cur  smallint := atlas_staging_slot();
    held integer[];
    s    smallint;
    size bigint;
BEGIN
    IF drain_age NOT BETWEEN 1 AND 14 THEN
        RAISE EXCEPTION 'drain_age must be 1 to 14, not %', drain_age;
    END IF;
    SELECT coalesce(array_agg(l.objid::integer), '{}') INTO held
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.classid::integer = lock_ns AND l.objsubid = 2 AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());
    FOR a IN REVERSE 14..drain_age LOOP
        s := ((cur - a + 16) % 16)::smallint;
        CONTINUE WHEN s = ANY (held);
        size := pg_relation_size(format('entity_values_ingest_%s', s)::regclass);
        CONTINUE WHEN size = 0 OR NOT pg_try_advisory_xact_lock(lock_ns, s);
        EXECUTE format('LOCK TABLE entity_values_ingest_%s IN ACCESS EXCLUSIVE MODE', s);
        slot := s; age := a; claimed := true;
        bytes := pg_relation_size(format('entity_values_ingest_%s', s)::regclass);
        RETURN NEXT;
        EXIT;
    END LOOP;
    FOR a IN REVERSE 15..0 LOOP
        CONTINUE WHEN a BETWEEN drain_age AND 14;
        s := ((cur - a + 16) % 16)::smallint;
        size := pg_relation_size(format('entity_values_ingest_%s', s)::regclass);
        CONTINUE WHEN size = 0;
        slot := s; age := a; bytes := size; claimed := false;
        RETURN NEXT;
    END LOOP;
END $$;

-- Empties a slot the caller's transaction has claimed and moved.
CREATE FUNCTION atlas_staging_clear(s smallint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF s NOT BETWEEN 0 AND 15 THEN
        RAISE EXCEPTION 'no staging slot %', s;
    END IF;
    EXECUTE format('TRUNCATE entity_values_ingest_%s', s);
END $$;

REVOKE ALL ON FUNCTION atlas_staging_pick(smallint, integer), atlas_staging_clear(smallint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION atlas_staging_pick(smallint, integer), atlas_staging_clear(smallint) TO atlas_worker;
