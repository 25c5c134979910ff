-- The run lifecycle moves only forward, whatever writes the table (demo
-- data, imports, the CLI, a bug): pending -> running -> completed |
-- completed_with_errors | failed | aborted, and pending -> aborted (a queued
-- run aborted before it started: our one extension of the spec). The same
-- moves as `RunStatus::can_transition_to` (src/domain/status.rs);
-- tests/contract.rs tries every pair on both databases.
CREATE TRIGGER bulk_operation_runs_forward_only
    BEFORE UPDATE OF status ON bulk_operation_runs
    WHEN OLD.status <> NEW.status
        AND NOT ((OLD.status = 'pending' AND NEW.status IN ('running', 'aborted'))
            OR (OLD.status = 'running'
                AND NEW.status IN ('completed', 'completed_with_errors', 'failed', 'aborted')))
BEGIN
    SELECT RAISE(ABORT, 'a run''s status cannot move that way');
END;

-- Every attempt at a run: which worker, when it started and ended, and why
-- it ended (the run's final status, or `lease_expired` when its worker
-- stopped renewing the lease and another may take over). Written by the
-- triggers below, so no writer can forget one.
CREATE TABLE run_attempts (
    run_id      BLOB NOT NULL,
    tenant_id   BLOB NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    worker      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT CHECK (end_reason IN ('completed', 'completed_with_errors', 'failed', 'aborted', 'lease_expired')),
    PRIMARY KEY (run_id, attempt),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE,
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
) STRICT;

-- A claim raises `attempt`: the attempt begins (closing one left open).
CREATE TRIGGER run_attempts_begin
    AFTER UPDATE OF attempt ON bulk_operation_runs
    WHEN NEW.attempt > OLD.attempt
BEGIN
    UPDATE run_attempts SET ended_at = NEW.updated_at, end_reason = 'lease_expired'
        WHERE run_id = NEW.id AND ended_at IS NULL;
    INSERT INTO run_attempts (run_id, tenant_id, attempt, worker, started_at)
        VALUES (NEW.id, NEW.tenant_id, NEW.attempt, COALESCE(NEW.lease_owner, 'unknown'), NEW.updated_at);
END;

-- The run ends, or rescue takes the lease from a silent worker: the open
-- attempt ends.
CREATE TRIGGER run_attempts_end
    AFTER UPDATE OF status, lease_owner ON bulk_operation_runs
    WHEN (OLD.status IN ('pending', 'running') AND NEW.status NOT IN ('pending', 'running'))
        OR (NEW.status = 'running' AND OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL)
BEGIN
    UPDATE run_attempts
        SET ended_at = NEW.updated_at,
            end_reason = CASE WHEN NEW.status = 'running' THEN 'lease_expired' ELSE NEW.status END
        WHERE run_id = NEW.id AND ended_at IS NULL;
END;

-- Workers take over running runs that lost their worker (rescue released
-- the lease), oldest first, beside the pending queue.
CREATE INDEX bulk_operation_runs_orphaned ON bulk_operation_runs (created_at, id)
    WHERE status = 'running' AND lease_owner IS NULL;
