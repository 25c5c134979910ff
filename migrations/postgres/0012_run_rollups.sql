-- Rollups of ended runs for the Insights page (server/insights, store
-- repositories/insights.rs): per tenant, UTC hour the runs were queued in,
-- operation and outcome. The engine adds to them in the transaction that ends
-- a run (and, for failure reasons, in the one that records a batch), so they
-- are exact, and they outlive the runs themselves (retention keeps them
-- `retain_rollups_days`, 400 by default). Keyed tenant and hour first: a
-- window of a tenant is one index range. The SQLite twin is
-- migrations/sqlite/0012_run_rollups.sql.
CREATE TABLE run_rollups (
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hour             timestamptz NOT NULL,
    resource         text NOT NULL,
    action           text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('completed', 'completed_with_errors', 'failed', 'aborted')),
    runs             bigint NOT NULL CHECK (runs > 0),
    items_processed  bigint NOT NULL CHECK (items_processed >= 0),
    items_succeeded  bigint NOT NULL CHECK (items_succeeded >= 0),
    items_failed     bigint NOT NULL CHECK (items_failed >= 0),
    items_skipped    bigint NOT NULL CHECK (items_skipped >= 0),
    -- Runs that started (a queued run aborted before it started has no run
    -- time), and their summed queue wait and run time.
    started_runs     bigint NOT NULL CHECK (started_runs >= 0),
    queue_millis     bigint NOT NULL CHECK (queue_millis >= 0),
    run_millis       bigint NOT NULL CHECK (run_millis >= 0),
    PRIMARY KEY (tenant_id, hour, resource, action, outcome)
);
-- Queue wait and run time as histograms (domain::insights::DurationBuckets:
-- four buckets per doubling), from which the page reads p50 and p95.
CREATE TABLE run_duration_rollups (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    resource   text NOT NULL,
    action     text NOT NULL,
    phase      text NOT NULL CHECK (phase IN ('queue', 'run')),
    bucket     bigint NOT NULL CHECK (bucket >= 0),
    runs       bigint NOT NULL CHECK (runs > 0),
    PRIMARY KEY (tenant_id, hour, resource, action, phase, bucket)
);
-- Failed items (and run-level failures) by reason code.
CREATE TABLE run_reason_rollups (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hour         timestamptz NOT NULL,
    resource     text NOT NULL,
    action       text NOT NULL,
    reason_code  text NOT NULL CHECK (length(reason_code) BETWEEN 1 AND 64),
    failures     bigint NOT NULL CHECK (failures > 0),
    PRIMARY KEY (tenant_id, hour, resource, action, reason_code)
);
-- Retention deletes by age across tenants.
CREATE INDEX run_rollups_hour ON run_rollups (hour);
CREATE INDEX run_duration_rollups_hour ON run_duration_rollups (hour);
CREATE INDEX run_reason_rollups_hour ON run_reason_rollups (hour);
