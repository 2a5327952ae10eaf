-- How far a deferred MSK batch got. Ingest gives plugin work a budget per
-- invocation; records past it are left for Lambda's retry of the same
-- batch. So that the retry makes progress instead of redoing the same
-- work, the invocation that deferred records commits, with the readings it
-- staged, the next offset of each partition it finished part of. The retry
-- skips records below that offset, but only while the record just below it
-- still has the timestamp recorded here: a recreated topic starts its
-- offsets over, and its records must never be skipped. A partition whose
-- records are all done has no row.
CREATE TABLE ingest_progress (
    topic          text NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint NOT NULL,
    last_timestamp timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
-- Offsets are not tenant data: every tenant's records share a partition.
GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_progress TO atlas_app;
