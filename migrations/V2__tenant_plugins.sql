-- Tenant transform plugins: every uploaded version of every plugin, by
-- content hash. The module itself lives in the object store under its
-- SHA-256; this table says which one a tenant runs and within what limits.
CREATE TABLE tenant_plugins (
    tenant_id     bigint      NOT NULL REFERENCES tenants,
    name          text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    version       int         NOT NULL CHECK (version > 0),
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes    int         NOT NULL CHECK (size_bytes > 0),
    fuel          bigint      NOT NULL CHECK (fuel > 0),
    timeout_ms    int         NOT NULL CHECK (timeout_ms > 0),
    memory_bytes  bigint      NOT NULL CHECK (memory_bytes > 0),
    output_bytes  bigint      NOT NULL CHECK (output_bytes > 0),
    -- What ingest does when the plugin fails (a limit, a trap, output that
    -- is not a batch): refuse the batch with 422, or stage it untransformed.
    on_failure    text        NOT NULL DEFAULT 'reject' CHECK (on_failure IN ('reject', 'pass_through')),
    active        boolean     NOT NULL DEFAULT false,
    -- Deleting a plugin hides it and deactivates it; the rows stay so that
    -- version numbers are never reused.
    deleted       boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version),
    CHECK (NOT (active AND deleted))
);

-- A tenant runs at most one plugin: ingest finds it with this index.
CREATE UNIQUE INDEX tenant_plugins_one_active ON tenant_plugins (tenant_id) WHERE active;

ALTER TABLE tenant_plugins ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_plugins FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_plugins TO atlas_app
    USING (tenant_id = atlas_current_tenant())
    WITH CHECK (tenant_id = atlas_current_tenant());
CREATE POLICY worker_all ON tenant_plugins TO atlas_worker USING (true) WITH CHECK (true);

-- Tenants manage their own plugins through the query API (as atlas_app).
GRANT SELECT, INSERT ON tenant_plugins TO atlas_app;
GRANT UPDATE (active, deleted) ON tenant_plugins TO atlas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_plugins TO atlas_worker;
