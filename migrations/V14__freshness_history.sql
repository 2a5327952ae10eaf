-- The status page draws each path's lag over the last 15 minutes, so the
-- lag checker keeps its recent measurements as well as the latest. It
-- prunes what is older than an hour as it writes, so the table stays a
-- few thousand rows; like freshness_status it holds no tenant's data.
CREATE TABLE freshness_history (
    path        text NOT NULL,
    measured_at timestamptz NOT NULL,
    lag_seconds double precision,
    PRIMARY KEY (path, measured_at)
);
CREATE INDEX freshness_history_measured_at ON freshness_history (measured_at);
GRANT SELECT ON freshness_history TO atlas_app;
GRANT SELECT, INSERT, DELETE ON freshness_history TO atlas_worker;

-- How much waits behind a path, in the path's own unit: readings in
-- staging, bytes of WAL the CDC slot retains. NULL elsewhere.
ALTER TABLE freshness_status ADD COLUMN backlog bigint;
