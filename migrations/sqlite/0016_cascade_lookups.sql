-- Deleting a run (retention) looks up its rows in every table whose foreign
-- key cascades from it, by (run_id, tenant_id). Without statistics SQLite's
-- planner took the tenant-first indexes of run_failure_reasons and
-- run_watchers for that look-up and read all of the tenant's rows for every
-- run deleted: 10 s per batch of 200 runs in a tenant of 500,000. These
-- indexes match the foreign keys, so the look-up reads only the run's rows.
-- PostgreSQL plans it with statistics and takes the primary keys (run_id
-- first); it needs no twin.
CREATE INDEX run_failure_reasons_run ON run_failure_reasons (run_id, tenant_id);
CREATE INDEX run_watchers_run ON run_watchers (run_id, tenant_id);
