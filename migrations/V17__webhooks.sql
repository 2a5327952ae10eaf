-- Webhooks (seed B.4): a tenant registers an HTTPS endpoint for
-- entity.updated events, through the query API as atlas_app; the workers
-- that turn changes into deliveries read every tenant's as atlas_worker.
--
-- The secret keys the HMAC of every delivery, so it must be readable to
-- sign with; the API shows it once, at registration, and never selects it
-- for a listing. Row-level security keeps it to its tenant.
CREATE TABLE webhooks (
    tenant_id   bigint      NOT NULL REFERENCES tenants,
    webhook_id  text        NOT NULL CHECK (webhook_id ~ '^wh_[0-9a-f]{32}$'),
    url         text        NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    events      text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- NULL: changes of any hot attribute.
    attributes  text[]      CHECK (cardinality(attributes) BETWEEN 1 AND 100),
    secret      text        NOT NULL CHECK (secret ~ '^whsec_[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, webhook_id)
);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks TO atlas_app
    USING (tenant_id = atlas_current_tenant())
    WITH CHECK (tenant_id = atlas_current_tenant());
CREATE POLICY worker_all ON webhooks TO atlas_worker USING (true);

GRANT SELECT, INSERT, DELETE ON webhooks TO atlas_app;
GRANT SELECT ON webhooks TO atlas_worker;
