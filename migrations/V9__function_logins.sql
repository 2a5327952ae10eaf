-- Each function logs in as itself, a member of exactly one role, and can
-- become nothing else:
--   atlas_ingest, atlas_query       members of atlas_app (tenant-scoped, RLS)
--   atlas_flusher, atlas_heartbeat  members of atlas_worker (cross-tenant)
-- The migrations run as the owner. A login inherits its role's privileges
-- and policies without SET ROLE, and its settings live on the login itself
-- (ALTER ROLE ... SET), because RDS Proxy refuses startup options and a SET
-- in a session pins it to one backend. Passwords (or IAM authentication)
-- are the deployment's to give: `ALTER ROLE atlas_ingest PASSWORD ...` or
-- `GRANT rds_iam TO atlas_ingest`.
--
-- Timeouts: no statement may outlive its Lambda (ingest and the query API
-- run 30 s, the flusher and the heartbeat 70 s), and no transaction may sit
-- idle holding locks. The group roles get the same bounds for anyone who
-- logs in as them directly.
--
-- Roles are cluster-wide and several databases may migrate at once, which
-- can make ALTER ROLE fail with "tuple concurrently updated"; each step is
-- retried a few times.
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

SELECT atlas_role_step(format('CREATE ROLE %I LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE %I',
                              login, grp))
FROM (VALUES ('atlas_ingest', 'atlas_app'), ('atlas_query', 'atlas_app'),
             ('atlas_flusher', 'atlas_worker'), ('atlas_heartbeat', 'atlas_worker')) l(login, grp);

SELECT atlas_role_step(format('ALTER ROLE %I SET %I = %L', r, setting, value))
FROM (VALUES
    ('atlas_app', 'statement_timeout', '25s'),
    ('atlas_app', 'idle_in_transaction_session_timeout', '30s'),
    ('atlas_ingest', 'statement_timeout', '25s'),
    ('atlas_ingest', 'idle_in_transaction_session_timeout', '30s'),
    ('atlas_query', 'statement_timeout', '25s'),
    ('atlas_query', 'idle_in_transaction_session_timeout', '30s'),
    -- Planning a search cost ~4 ms, running it ~1 ms (README, "Reads").
    ('atlas_query', 'plan_cache_mode', 'force_generic_plan'),
    ('atlas_worker', 'statement_timeout', '60s'),
    ('atlas_worker', 'idle_in_transaction_session_timeout', '60s'),
    ('atlas_flusher', 'statement_timeout', '60s'),
    ('atlas_flusher', 'idle_in_transaction_session_timeout', '60s'),
    ('atlas_heartbeat', 'statement_timeout', '60s'),
    ('atlas_heartbeat', 'idle_in_transaction_session_timeout', '60s')
) s(r, setting, value);

DROP FUNCTION atlas_role_step(text);
