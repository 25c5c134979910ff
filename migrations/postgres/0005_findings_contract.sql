-- Findings as the spec shapes them (issue 13 §3): `finding_type` names the
-- kind of artifact ('drift'), the kind of change gets a column of its own,
-- the evidence column is `evidence_jsonb`, and the two syncs compared are
-- nullable. Existing rows keep their values: their old finding_type is their
-- change kind.
ALTER TABLE findings ADD COLUMN change_kind text;
UPDATE findings SET change_kind = finding_type;
ALTER TABLE findings ALTER COLUMN change_kind SET NOT NULL;
ALTER TABLE findings ADD CONSTRAINT findings_change_kind_check
    CHECK (change_kind IN ('added', 'removed', 'changed'));

ALTER TABLE findings DROP CONSTRAINT findings_finding_type_check;
UPDATE findings SET finding_type = 'drift';
ALTER TABLE findings ADD CONSTRAINT findings_finding_type_check
    CHECK (finding_type IN ('drift'));

ALTER TABLE findings RENAME COLUMN evidence TO evidence_jsonb;
ALTER TABLE findings RENAME CONSTRAINT findings_evidence_check TO findings_evidence_jsonb_check;

ALTER TABLE findings ALTER COLUMN baseline_run_id DROP NOT NULL;
ALTER TABLE findings ALTER COLUMN current_run_id DROP NOT NULL;

-- The spec's Phase 1 link from a drift run to its findings: scope key +
-- baseline + current, newest first (the findings page's order).
CREATE INDEX findings_comparison ON findings
    (tenant_id, scope_key, baseline_run_id, current_run_id, created_at DESC, id DESC);
-- Rows written before keep the fingerprint they had (one covering the change
-- alone); new rows' fingerprints also cover the comparison.
