-- Stall detection (src/server/engine/stalls.rs). Columns of the engine's own
-- beside the spec's record, which other code may ignore:
--   progressed_at  when the run's progress last moved (its claim counts);
--   stalled_at     since when it is flagged stalled; NULL when it is not.
--                  Progress clears it; a run that ended while stalled keeps
--                  it, as the moment it was last seen stuck.
-- The SQLite twin is migrations/sqlite/0014_stalls.sql.
ALTER TABLE bulk_operation_runs ADD COLUMN progressed_at timestamptz;
ALTER TABLE bulk_operation_runs ADD COLUMN stalled_at timestamptz;
-- Runs in flight when this migration runs: their last write is their last
-- known progress.
UPDATE bulk_operation_runs SET progressed_at = updated_at WHERE status = 'running';

-- The "stalled" notice goes to whoever asked for the run.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('run_queued', 'run_completed', 'run_stalled'));
