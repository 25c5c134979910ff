-- Stall detection (src/server/engine/stalls.rs). Columns of the engine's own
-- beside the spec's record, which other code may ignore:
--   progressed_at  when the run's progress last moved (its claim counts);
--   stalled_at     since when it is flagged stalled; NULL when it is not.
--                  Progress clears it; a run that ended while stalled keeps
--                  it, as the moment it was last seen stuck.
-- The PostgreSQL twin is migrations/postgres/0014_stalls.sql.
ALTER TABLE bulk_operation_runs ADD COLUMN progressed_at INTEGER;
ALTER TABLE bulk_operation_runs ADD COLUMN stalled_at INTEGER;
-- Runs in flight when this migration runs: their last write is their last
-- known progress.
UPDATE bulk_operation_runs SET progressed_at = updated_at WHERE status = 'running';

-- The "stalled" notice goes to whoever asked for the run. SQLite cannot
-- change a column's constraint in place, so the table is rebuilt (nothing
-- references notifications) with its rows and its indexes.
CREATE TABLE notifications_new (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('run_queued', 'run_completed', 'run_stalled')),
    payload     TEXT NOT NULL CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    read_at     INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;
INSERT INTO notifications_new (id, tenant_id, user_id, kind, payload, read_at, created_at)
SELECT id, tenant_id, user_id, kind, payload, read_at, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_feed ON notifications (user_id, tenant_id, created_at DESC, id DESC);
CREATE INDEX notifications_read ON notifications (read_at) WHERE read_at IS NOT NULL;
CREATE INDEX notifications_unread_age ON notifications (created_at) WHERE read_at IS NULL;
CREATE INDEX notifications_unread_feed ON notifications (user_id, tenant_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;
