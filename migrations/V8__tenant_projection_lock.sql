-- Promotions and demotions used to take one advisory lock for all tenants,
-- exclusively, and every flush batch held it shared: a tenant looping PATCH
-- queued every tenant's flushes. The lock is now per tenant, in the
-- two-key form (namespace, tenant), a key space of its own that no
-- one-key lock can meet. Tenant ids are bigint and the form takes two
-- integers: ids beyond the integer range are hashed, and two tenants that
-- share a key merely wait on each other.
CREATE FUNCTION atlas_projection_lock_key(tenant bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN tenant BETWEEN -2147483648 AND 2147483647 THEN tenant::integer
                ELSE hashint8(tenant) END;
