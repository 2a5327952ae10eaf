-- What the lag checker measured last: one row per read path (primary,
-- replica:<name>, cdc, warehouse) and per part of the pipeline that makes
-- data late (staging, heartbeat). It holds no tenant's data: every login
-- of the query API may read it, and only the workers write it.
CREATE TABLE freshness_status (
    path        text PRIMARY KEY,
    -- Seconds behind; NULL when it cannot be told (unreachable, unknown).
    lag_seconds double precision,
    state       text NOT NULL CHECK (state IN ('green', 'yellow', 'orange', 'red')),
    measured_at timestamptz NOT NULL,
    -- Why the state is not green, in a line; the figures otherwise.
    detail      text NOT NULL DEFAULT ''
);
GRANT SELECT ON freshness_status TO atlas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON freshness_status TO atlas_worker;

-- The lag checker logs in as itself, a worker like the flusher and the
-- heartbeat (see V9 for why a login, and why its settings live on it).
CREATE FUNCTION atlas_role_step(step text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR attempt IN 1..20 LOOP
        BEGIN
            EXECUTE step;
            RETURN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN RETURN;
            WHEN OTHERS THEN
                IF attempt = 20 THEN RAISE; END IF;
                PERFORM pg_sleep(0.02 * attempt);
        END;
    END LOOP;
END $$;

SELECT atlas_role_step('CREATE ROLE atlas_lag_checker LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE atlas_worker');
SELECT atlas_role_step(format('ALTER ROLE atlas_lag_checker SET %I = %L', setting, value))
FROM (VALUES ('statement_timeout', '60s'), ('idle_in_transaction_session_timeout', '60s')) s(setting, value);

DROP FUNCTION atlas_role_step(text);
