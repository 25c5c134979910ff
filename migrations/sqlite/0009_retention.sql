-- Indexes the prune needs (server/retention.rs, store/sql/retention.rs), so a
-- pass finds old records without scanning whole tables and its reference
-- checks (and the foreign keys' own actions) are index lookups. The PostgreSQL
-- twin is migrations/postgres/0009_retention.sql.

-- Ended runs by status and age.
CREATE INDEX bulk_operation_runs_ended ON bulk_operation_runs (status, finished_at)
    WHERE finished_at IS NOT NULL;
-- A kept run keeps its audit entry (audit_log_id) and the syncs its item_ids name.
CREATE INDEX bulk_operation_runs_audit_log ON bulk_operation_runs (audit_log_id)
    WHERE audit_log_id IS NOT NULL;
CREATE INDEX bulk_operation_runs_drift_baseline ON bulk_operation_runs (json_extract(item_ids, '$.baseline_run_id'))
    WHERE resource = 'drift';
CREATE INDEX bulk_operation_runs_drift_current ON bulk_operation_runs (json_extract(item_ids, '$.current_run_id'))
    WHERE resource = 'drift';
-- ON DELETE SET NULL of a pruned run.
CREATE INDEX backup_set_items_added_by ON backup_set_items (added_by_run_id)
    WHERE added_by_run_id IS NOT NULL;
-- Read notifications by when they were read; unread ones by age.
CREATE INDEX notifications_read ON notifications (read_at) WHERE read_at IS NOT NULL;
CREATE INDEX notifications_unread_age ON notifications (created_at) WHERE read_at IS NULL;
-- Acknowledged findings by age; a kept finding keeps both its syncs.
CREATE INDEX findings_acknowledged ON findings (acknowledged_at) WHERE status = 'acknowledged';
CREATE INDEX findings_baseline ON findings (baseline_run_id);
CREATE INDEX findings_current ON findings (current_run_id);
-- Audit entries by age, across tenants.
CREATE INDEX audit_logs_created ON audit_logs (created_at);
-- Ended syncs by age.
CREATE INDEX inventory_sync_runs_ended ON inventory_sync_runs (COALESCE(finished_at, created_at))
    WHERE status IN ('completed', 'failed');
