-- The publication the Debezium connector (pgoutput) and the local change
-- tap read: the five tables the warehouse is built from, and nothing else
-- (staging's churn and the plugin registry stay out of the stream).
-- publish_via_partition_root: a change to entity_values_ts_2026_11 or
-- entity_jsonb_p3 is published as a change to its parent, so each table
-- is one topic however it is partitioned. Without logical WAL
-- (wal_level = logical, on RDS rds.logical_replication = 1) the
-- publication exists but nothing can read it yet.
CREATE PUBLICATION atlas_cdc
    FOR TABLE tenants, attributes, entities, entity_values_ts, entity_jsonb
    WITH (publish_via_partition_root = true);
