-- Which reason codes each run failed items (or the run itself) with, once
-- per run and code: what the hub's "failure reason" filter reads, so the
-- Insights page's reason totals link to exactly those runs. Written with
-- the reason rollups (store repositories/insights.rs, `FailureTally`), in
-- the transaction that records the failures; it goes with its run.
-- The PostgreSQL twin is migrations/postgres/0015_failure_reasons.sql.
CREATE TABLE run_failure_reasons (
    run_id       BLOB NOT NULL,
    tenant_id    BLOB NOT NULL,
    reason_code  TEXT NOT NULL CHECK (length(reason_code) > 0),
    -- The run's created_at (which never changes): the hub lists a reason's
    -- runs newest first from this table's index alone.
    run_created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, reason_code),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
) STRICT;
-- A reason's runs newest first, as the hub pages them.
CREATE INDEX run_failure_reasons_hub
    ON run_failure_reasons (tenant_id, reason_code, run_created_at DESC, run_id DESC);

-- Runs recorded before: the failures they kept (their first 500 entries).
INSERT OR IGNORE INTO run_failure_reasons (run_id, tenant_id, reason_code, run_created_at)
SELECT DISTINCT r.id, r.tenant_id, json_extract(e.value, '$.reason_code'), r.created_at
FROM bulk_operation_runs r,
     json_each(CASE WHEN json_type(r.failures) = 'array' THEN r.failures ELSE '[]' END) AS e
WHERE json_extract(e.value, '$.type') IS NULL
  AND coalesce(json_extract(e.value, '$.reason_code'), '') <> '';
