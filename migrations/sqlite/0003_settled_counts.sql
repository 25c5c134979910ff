-- The hub's per-bucket counts read runs that are not ended, or ended
-- recently, by when they finished (runs that ended earlier are counted once
-- and remembered; see src/server/store/settled.rs).
CREATE INDEX bulk_operation_runs_tenant_finished ON bulk_operation_runs (tenant_id, finished_at);
