-- Findings as the spec shapes them (issue 13 §3): `finding_type` names the
-- kind of artifact ('drift'), the kind of change gets a column of its own,
-- the evidence column is `evidence_jsonb`, and the two syncs compared are
-- nullable. SQLite cannot change a column's constraints in place, so the
-- table is rebuilt (nothing references findings). Existing rows keep their
-- values: their old finding_type is their change kind.
CREATE TABLE findings_new (
    id                   BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    finding_type         TEXT NOT NULL CHECK (finding_type IN ('drift')),
    change_kind          TEXT NOT NULL CHECK (change_kind IN ('added', 'removed', 'changed')),
    scope_key            TEXT NOT NULL,
    baseline_run_id      BLOB,
    current_run_id       BLOB,
    produced_by_run_id   BLOB REFERENCES bulk_operation_runs (id) ON DELETE SET NULL,
    fingerprint          TEXT NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 200),
    subject_type         TEXT NOT NULL,
    subject_external_id  TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'acknowledged')),
    evidence_jsonb       TEXT NOT NULL DEFAULT '{}'
                         CHECK (json_valid(evidence_jsonb) AND json_type(evidence_jsonb) = 'object'),
    acknowledged_by      BLOB REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at      INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    FOREIGN KEY (baseline_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    FOREIGN KEY (current_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL)),
    UNIQUE (tenant_id, fingerprint)
) STRICT;

INSERT INTO findings_new (id, tenant_id, finding_type, change_kind, scope_key, baseline_run_id,
    current_run_id, produced_by_run_id, fingerprint, subject_type, subject_external_id, status,
    evidence_jsonb, acknowledged_by, acknowledged_at, created_at, updated_at)
SELECT id, tenant_id, 'drift', finding_type, scope_key, baseline_run_id, current_run_id,
    produced_by_run_id, fingerprint, subject_type, subject_external_id, status, evidence,
    acknowledged_by, acknowledged_at, created_at, updated_at
FROM findings;

DROP TABLE findings;
ALTER TABLE findings_new RENAME TO findings;
CREATE INDEX findings_tenant_newest ON findings (tenant_id, created_at DESC, id DESC);
CREATE INDEX findings_produced_by ON findings (produced_by_run_id);
-- The spec's Phase 1 link from a drift run to its findings: scope key +
-- baseline + current, newest first (the findings page's order).
CREATE INDEX findings_comparison ON findings
    (tenant_id, scope_key, baseline_run_id, current_run_id, created_at DESC, id DESC);
-- Rows written before keep the fingerprint they had (one covering the change
-- alone); new rows' fingerprints also cover the comparison.
