-- Webhook deliveries (seed B.4). The CDC loader's second sink turns each
-- batch's changes of entity_jsonb into one delivery per matching webhook,
-- here, before it loads the warehouse; the heartbeat function's sender
-- posts them, in order per webhook and entity, with retries, and leaves
-- the ones that never succeed as dead letters the tenant can list.

-- What the sink last saw of each entity's hot state, for tenants with
-- webhooks: the "old" side of a change. Debezium sends an update of
-- entity_jsonb without its old row unless the table's replica identity
-- is FULL, which would write the whole old row to the WAL on every hot
-- upsert. `lsn` is the change the state reflects: a change at or before it
-- (a redelivered batch) makes no delivery.
CREATE TABLE webhook_entity_state (
    tenant_id  bigint NOT NULL REFERENCES tenants,
    entity_id  bigint NOT NULL,
    hot_attrs  jsonb  NOT NULL,
    lsn        bigint NOT NULL,
    PRIMARY KEY (tenant_id, entity_id)
);

CREATE TABLE webhook_deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint      NOT NULL,
    webhook_id      text        NOT NULL,
    -- The receiver's key for deduplication, derived from the webhook and
    -- the change, so a change that reaches the sink twice is one delivery.
    event_id        text        NOT NULL,
    entity_id       bigint      NOT NULL,
    body            jsonb       NOT NULL,
    lag_seconds     float8      NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A sender holds a delivery it is posting until then; past it, another
    -- may take it (the first one died).
    leased_until    timestamptz,
    last_status     int,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (webhook_id, event_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, entity_id, delivery_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (tenant_id, webhook_id, finished_at DESC)
    WHERE state = 'dead';
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE state = 'delivered';

ALTER TABLE webhook_entity_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_entity_state FORCE ROW LEVEL SECURITY;
CREATE POLICY worker_all ON webhook_entity_state TO atlas_worker USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_entity_state TO atlas_worker;

-- Tenants list their dead letters through the query API.
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries TO atlas_app
    USING (tenant_id = atlas_current_tenant());
CREATE POLICY worker_all ON webhook_deliveries TO atlas_worker USING (true) WITH CHECK (true);
GRANT SELECT ON webhook_deliveries TO atlas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO atlas_worker;

-- The CDC loader now writes to the primary (the webhook sink): a login of
-- its own, a member of atlas_worker, like the other pipelines (V9, V13).
-- Roles are cluster-wide and several databases may migrate at once; each
-- step is retried. V9 and V13 each made and dropped this helper; from here
-- on it stays, for later migrations to use (it runs with its caller's
-- rights, and only the owner may call it).
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

SELECT atlas_role_step('CREATE ROLE atlas_cdc_loader LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE atlas_worker');
SELECT atlas_role_step(format('ALTER ROLE atlas_cdc_loader SET %I = %L', setting, value))
FROM (VALUES ('statement_timeout', '60s'), ('idle_in_transaction_session_timeout', '60s')) s(setting, value);

REVOKE EXECUTE ON FUNCTION atlas_role_step(text) FROM PUBLIC;
