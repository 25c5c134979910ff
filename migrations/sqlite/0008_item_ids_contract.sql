-- Runs as the spec shapes them (issue 13 §1). `item_ids` becomes the spec's
-- object naming what the run works on — drift.generate {scope_key,
-- baseline_run_id, current_run_id}, backup_set.add_policies {backup_set_id,
-- policy_ids, options: {include_payload}} — built from the old `params` and
-- item list, and `params` goes. The engine's own list of items to process
-- is `work_items`. A drift retry's object names its subjects too. SQLite
-- cannot drop NOT NULL in place, so nullable columns are added anew, filled,
-- and the old ones dropped (a rebuild of the table would cascade-delete
-- everything that references runs).
ALTER TABLE bulk_operation_runs RENAME COLUMN item_ids TO work_items;
ALTER TABLE bulk_operation_runs ADD COLUMN item_ids TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(item_ids) AND json_type(item_ids) = 'object');
UPDATE bulk_operation_runs SET item_ids = CASE
    WHEN resource = 'drift' THEN
        json_object('scope_key', json_extract(params, '$.scope_key'),
                    'baseline_run_id', json_extract(params, '$.baseline_run_id'),
                    'current_run_id', json_extract(params, '$.current_run_id'))
    ELSE
        json_object('backup_set_id', json_extract(params, '$.backup_set_id'),
                    'policy_ids', json(work_items),
                    'options', json_object('include_payload',
                        json(CASE WHEN json_extract(params, '$.include_payload') THEN 'true' ELSE 'false' END)))
    END;
UPDATE bulk_operation_runs SET item_ids = json_set(item_ids, '$.subjects', json(work_items))
    WHERE resource = 'drift' AND retry_of_run_id IS NOT NULL;
-- Runs an earlier release imported without parameters keep what there is.
UPDATE bulk_operation_runs SET item_ids = (
    SELECT json_group_object(key, json(CASE WHEN type IN ('object', 'array') THEN value
                                            ELSE json_quote(value) END))
    FROM json_each(bulk_operation_runs.item_ids) WHERE type <> 'null');
ALTER TABLE bulk_operation_runs DROP COLUMN params;

-- Nullable where the spec says so: a run without a key is never joined (the
-- active-key index holds only keys), and `failures` may be null.
DROP INDEX bulk_operation_runs_active_key;
DROP INDEX bulk_operation_runs_tenant_key;
ALTER TABLE bulk_operation_runs RENAME COLUMN idempotency_key TO idempotency_key_before;
ALTER TABLE bulk_operation_runs ADD COLUMN idempotency_key TEXT
    CHECK (length(idempotency_key) BETWEEN 1 AND 200);
UPDATE bulk_operation_runs SET idempotency_key = idempotency_key_before;
ALTER TABLE bulk_operation_runs DROP COLUMN idempotency_key_before;
CREATE UNIQUE INDEX bulk_operation_runs_active_key
    ON bulk_operation_runs (tenant_id, idempotency_key)
    WHERE status IN ('pending', 'running');
CREATE INDEX bulk_operation_runs_tenant_key ON bulk_operation_runs (tenant_id, idempotency_key);

-- Failure entries as the spec has them: {reason_code, reason, item_id},
-- plus "type": "skipped" for skipped items only; a run-level failure says
-- so with "item_id": null, "scope": "run".
ALTER TABLE bulk_operation_runs RENAME COLUMN failures TO failures_before;
ALTER TABLE bulk_operation_runs ADD COLUMN failures TEXT
    CHECK (failures IS NULL OR (json_valid(failures) AND json_type(failures) = 'array'));
UPDATE bulk_operation_runs SET failures = (
    SELECT json_group_array(json(entry)) FROM (
        SELECT CASE
            WHEN json_extract(e.value, '$.item_id') IS NULL THEN
                json_object('reason_code', json_extract(e.value, '$.reason_code'),
                            'reason', json_extract(e.value, '$.reason'),
                            'item_id', NULL, 'scope', 'run')
            WHEN json_extract(e.value, '$.type') = 'skipped' THEN
                json_object('reason_code', json_extract(e.value, '$.reason_code'),
                            'reason', json_extract(e.value, '$.reason'),
                            'item_id', json_extract(e.value, '$.item_id'), 'type', 'skipped')
            ELSE
                json_object('reason_code', json_extract(e.value, '$.reason_code'),
                            'reason', json_extract(e.value, '$.reason'),
                            'item_id', json_extract(e.value, '$.item_id'))
            END AS entry
        FROM json_each(bulk_operation_runs.failures_before) AS e ORDER BY e.key));
ALTER TABLE bulk_operation_runs DROP COLUMN failures_before;

-- Every failed item of a run, however many (`failures` keeps the first 500
-- for display): what a retry re-runs. Runs of earlier releases have their
-- kept entries.
CREATE TABLE run_failed_items (
    run_id     BLOB NOT NULL,
    tenant_id  BLOB NOT NULL,
    item_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, item_id),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE
) STRICT;
INSERT OR IGNORE INTO run_failed_items (run_id, tenant_id, item_id)
SELECT r.id, r.tenant_id, json_extract(e.value, '$.item_id')
FROM bulk_operation_runs r, json_each(r.failures) AS e
WHERE r.failures IS NOT NULL AND json_extract(e.value, '$.type') IS NULL
    AND json_extract(e.value, '$.item_id') IS NOT NULL;
