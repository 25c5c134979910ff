-- Runs as the spec shapes them (issue 13 §1). `item_ids` becomes the spec's
-- object naming what the run works on — drift.generate {scope_key,
-- baseline_run_id, current_run_id}, backup_set.add_policies {backup_set_id,
-- policy_ids, options: {include_payload}} — built from the old `params` and
-- item list, and `params` goes. The engine's own list of items to process
-- is `work_items`. A drift retry's object names its subjects too.
ALTER TABLE bulk_operation_runs RENAME COLUMN item_ids TO work_items;
ALTER TABLE bulk_operation_runs RENAME CONSTRAINT bulk_operation_runs_item_ids_check
    TO bulk_operation_runs_work_items_check;
ALTER TABLE bulk_operation_runs ADD COLUMN item_ids jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT bulk_operation_runs_item_ids_check CHECK (jsonb_typeof(item_ids) = 'object');
UPDATE bulk_operation_runs SET item_ids = CASE
    WHEN resource = 'drift' THEN
        jsonb_build_object('scope_key', params->'scope_key',
                           'baseline_run_id', params->'baseline_run_id',
                           'current_run_id', params->'current_run_id')
        || CASE WHEN retry_of_run_id IS NOT NULL
                THEN jsonb_build_object('subjects', work_items) ELSE '{}'::jsonb END
    ELSE
        jsonb_build_object('backup_set_id', params->'backup_set_id',
                           'policy_ids', work_items,
                           'options', jsonb_build_object('include_payload',
                               COALESCE(params->'include_payload', 'false'::jsonb)))
    END;
-- Runs an earlier release imported without parameters keep what there is.
UPDATE bulk_operation_runs SET item_ids = jsonb_strip_nulls(item_ids);
ALTER TABLE bulk_operation_runs DROP COLUMN params;

-- Nullable where the spec says so: a run without a key is never joined (the
-- active-key index holds only keys), and `failures` may be null.
ALTER TABLE bulk_operation_runs ALTER COLUMN idempotency_key DROP NOT NULL;
ALTER TABLE bulk_operation_runs ALTER COLUMN failures DROP NOT NULL;
ALTER TABLE bulk_operation_runs ALTER COLUMN failures DROP DEFAULT;

-- Failure entries as the spec has them: {reason_code, reason, item_id},
-- plus "type": "skipped" for skipped items only; a run-level failure says
-- so with "item_id": null, "scope": "run".
UPDATE bulk_operation_runs r SET failures = (
    SELECT jsonb_agg(
        jsonb_build_object('reason_code', e->'reason_code', 'reason', e->'reason',
                           'item_id', COALESCE(e->'item_id', 'null'::jsonb))
        || CASE WHEN e->>'type' = 'skipped' THEN '{"type": "skipped"}'::jsonb ELSE '{}'::jsonb END
        || CASE WHEN COALESCE(e->'item_id', 'null'::jsonb) = 'null'::jsonb
                THEN '{"scope": "run"}'::jsonb ELSE '{}'::jsonb END
        ORDER BY position)
    FROM jsonb_array_elements(r.failures) WITH ORDINALITY AS entries (e, position))
WHERE jsonb_array_length(failures) > 0;

-- Every failed item of a run, however many (`failures` keeps the first 500
-- for display): what a retry re-runs. Runs of earlier releases have their
-- kept entries.
CREATE TABLE run_failed_items (
    run_id     uuid NOT NULL,
    tenant_id  uuid NOT NULL,
    item_id    text NOT NULL,
    PRIMARY KEY (run_id, item_id),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
);
INSERT INTO run_failed_items (run_id, tenant_id, item_id)
SELECT DISTINCT r.id, r.tenant_id, e->>'item_id'
FROM bulk_operation_runs r, jsonb_array_elements(r.failures) AS e
WHERE r.failures IS NOT NULL AND e->>'type' IS NULL AND e->>'item_id' IS NOT NULL;
