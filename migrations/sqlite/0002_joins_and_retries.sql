-- Who else asked for a run while it was active (a start that joined it), and
-- which run a retry re-does. The PostgreSQL twin is migrations/postgres/0002_joins_and_retries.sql.

CREATE UNIQUE INDEX bulk_operation_runs_id_tenant ON bulk_operation_runs (id, tenant_id);

ALTER TABLE bulk_operation_runs
    ADD COLUMN retry_of_run_id BLOB REFERENCES bulk_operation_runs (id) ON DELETE SET NULL;
CREATE INDEX bulk_operation_runs_retries ON bulk_operation_runs (retry_of_run_id)
    WHERE retry_of_run_id IS NOT NULL;

CREATE TABLE run_joins (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL,
    run_id      BLOB NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX run_joins_run ON run_joins (run_id, created_at);

-- The hub's search by idempotency key.
CREATE INDEX bulk_operation_runs_tenant_key ON bulk_operation_runs (tenant_id, idempotency_key);
