-- Which of the given tenants exist and are active, in one statement
-- outside any transaction. The query API asks for every tenant it serves,
-- every half of the catalog's TTL, in one batch per container: a
-- tenant-scoped transaction per tenant cost point reads a third of their
-- p99. SECURITY INVOKER: each tenant is read under the caller's own
-- Row-Level Security, as the caller's own tenant-scoped query would read
-- it, and the tenant setting found is put back, so inside a transaction
-- the function changes nothing either.
CREATE FUNCTION atlas_active_tenants(ids bigint[]) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp
AS $$
DECLARE
    prev   text := current_setting('app.tenant_id', true);
    t      bigint;
    active bigint[] := '{}';
BEGIN
    FOREACH t IN ARRAY coalesce(ids, '{}') LOOP
        PERFORM set_config('app.tenant_id', t::text, true);
        IF EXISTS (SELECT 1 FROM tenants WHERE tenant_id = t AND is_active) THEN
            active := active || t;
        END IF;
    END LOOP;
    PERFORM set_config('app.tenant_id', coalesce(prev, ''), true);
    RETURN active;
END $$;
REVOKE ALL ON FUNCTION atlas_active_tenants(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION atlas_active_tenants(bigint[]) TO atlas_app, atlas_worker;
