-- Promotions and demotions of attributes, worked off in the background.
--
-- PATCH /v1/attributes/{name} flips attributes.is_hot at once (so the
-- flusher projects, or stops projecting, new readings from that moment)
-- and records a change here. A worker then walks the tenant's entities in
-- entity_id order, in batches: a promotion merges each entity's latest
-- reading into entity_jsonb (older than what the flusher wrote since, it
-- loses: atlas_hot_merge compares reading times), a demotion removes the
-- key. Each batch commits its cursor with its writes, so a killed worker
-- resumes where the last batch ended.
CREATE TABLE hot_changes (
    change_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants,
    attribute_id bigint NOT NULL REFERENCES attributes,
    kind         varchar(8) NOT NULL CHECK (kind IN ('promote', 'demote')),
    state        varchar(10) NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'superseded')),
    -- entity_id of the last entity handled; NULL before the first batch.
    cursor_entity bigint,
    entities_done  bigint NOT NULL DEFAULT 0,
    entities_total bigint,
    rows_changed   bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
-- At most one unfinished change per attribute: a newer one supersedes it.
CREATE UNIQUE INDEX idx_hot_changes_open ON hot_changes (tenant_id, attribute_id)
    WHERE state IN ('pending', 'running');
CREATE INDEX idx_hot_changes_attribute ON hot_changes (tenant_id, attribute_id, change_id DESC);

ALTER TABLE hot_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE hot_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hot_changes TO atlas_app
    USING (tenant_id = atlas_current_tenant()) WITH CHECK (tenant_id = atlas_current_tenant());
CREATE POLICY worker_all ON hot_changes TO atlas_worker USING (true) WITH CHECK (true);

GRANT SELECT, INSERT (tenant_id, attribute_id, kind), UPDATE (state, updated_at, finished_at)
    ON hot_changes TO atlas_app;
GRANT UPDATE (is_hot) ON attributes TO atlas_app;
GRANT SELECT, UPDATE ON hot_changes TO atlas_worker;
