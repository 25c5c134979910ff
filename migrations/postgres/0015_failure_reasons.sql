-- Which reason codes each run failed items (or the run itself) with, once
-- per run and code: what the hub's "failure reason" filter reads, so the
-- Insights page's reason totals link to exactly those runs. Written with
-- the reason rollups (store repositories/insights.rs, `FailureTally`), in
-- the transaction that records the failures; it goes with its run.
-- The SQLite twin is migrations/sqlite/0015_failure_reasons.sql.
CREATE TABLE run_failure_reasons (
    run_id       uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    reason_code  text NOT NULL CHECK (length(reason_code) > 0),
    -- The run's created_at (which never changes): the hub lists a reason's
    -- runs newest first from this table's index alone.
    run_created_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, reason_code),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
);

-- A reason's runs newest first, as the hub pages them.
CREATE INDEX run_failure_reasons_hub
    ON run_failure_reasons (tenant_id, reason_code, run_created_at DESC, run_id DESC);

-- Runs recorded before: the failures they kept (their first 500 entries).
INSERT INTO run_failure_reasons (run_id, tenant_id, reason_code, run_created_at)
SELECT DISTINCT r.id, r.tenant_id, e->>'reason_code', r.created_at
FROM bulk_operation_runs r,
     jsonb_array_elements(CASE WHEN jsonb_typeof(r.failures) = 'array' THEN r.failures
                               ELSE '[]'::jsonb END) AS e
WHERE e->>'type' IS NULL AND coalesce(e->>'reason_code', '') <> ''
ON CONFLICT DO NOTHING;
