-- Who else asked for a run while it was active (a start that joined it), and
-- which run a retry re-does. The SQLite twin is migrations/sqlite/0002_joins_and_retries.sql.

CREATE UNIQUE INDEX bulk_operation_runs_id_tenant ON bulk_operation_runs (id, tenant_id);

ALTER TABLE bulk_operation_runs
    ADD COLUMN retry_of_run_id uuid REFERENCES bulk_operation_runs (id) ON DELETE SET NULL;
CREATE INDEX bulk_operation_runs_retries ON bulk_operation_runs (retry_of_run_id)
    WHERE retry_of_run_id IS NOT NULL;

CREATE TABLE run_joins (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    run_id      uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    -- the join belongs to a run of the same tenant
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX run_joins_run ON run_joins (run_id, created_at);

-- The hub's search by idempotency key.
CREATE INDEX bulk_operation_runs_tenant_key ON bulk_operation_runs (tenant_id, idempotency_key);
