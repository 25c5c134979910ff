-- One index per filter of the hub and the findings page, each ending in the
-- lists' newest-first order: a filter alone reads one page of index entries
-- however large the tenant, even when few or none of its runs match (without
-- one, a filter that matches nothing scans the tenant's whole history).
-- Status buckets use bulk_operation_runs_tenant_status; the comparison,
-- findings_comparison. The SQLite twin is
-- migrations/sqlite/0011_list_filters.sql.
CREATE INDEX bulk_operation_runs_tenant_initiator
    ON bulk_operation_runs (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX bulk_operation_runs_tenant_operation
    ON bulk_operation_runs (tenant_id, resource, action, created_at DESC, id DESC);
-- The search by the start of a run id: a range of the tenant's ids.
CREATE INDEX bulk_operation_runs_tenant_id ON bulk_operation_runs (tenant_id, id);
-- A run page's retries of the run.
CREATE INDEX bulk_operation_runs_tenant_retries
    ON bulk_operation_runs (tenant_id, retry_of_run_id, created_at DESC, id DESC)
    WHERE retry_of_run_id IS NOT NULL;
CREATE INDEX findings_tenant_status ON findings (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX findings_tenant_scope ON findings (tenant_id, scope_key, created_at DESC, id DESC);
CREATE INDEX findings_tenant_subject_type
    ON findings (tenant_id, subject_type, created_at DESC, id DESC);
CREATE INDEX findings_tenant_run
    ON findings (tenant_id, produced_by_run_id, created_at DESC, id DESC);
