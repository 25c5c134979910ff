-- The run lifecycle moves only forward, whatever writes the table (demo
-- data, imports, the CLI, a bug): pending -> running -> completed |
-- completed_with_errors | failed | aborted, and pending -> aborted (a queued
-- run aborted before it started: our one extension of the spec). The same
-- moves as `RunStatus::can_transition_to` (src/domain/status.rs);
-- tests/contract.rs tries every pair on both databases.
CREATE FUNCTION bulk_operation_runs_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.status = 'pending' AND NEW.status IN ('running', 'aborted'))
        OR (OLD.status = 'running'
            AND NEW.status IN ('completed', 'completed_with_errors', 'failed', 'aborted')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a run''s status cannot move from % to %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER bulk_operation_runs_forward_only
    BEFORE UPDATE OF status ON bulk_operation_runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION bulk_operation_runs_forward_only();

-- Every attempt at a run: which worker, when it started and ended, and why
-- it ended (the run's final status, or `lease_expired` when its worker
-- stopped renewing the lease and another may take over). Written by the
-- triggers below, so no writer can forget one.
CREATE TABLE run_attempts (
    run_id      uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    attempt     bigint NOT NULL CHECK (attempt >= 1),
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text CHECK (end_reason IN ('completed', 'completed_with_errors', 'failed', 'aborted', 'lease_expired')),
    PRIMARY KEY (run_id, attempt),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE,
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);

-- A claim raises `attempt`: the attempt begins (closing one left open).
CREATE FUNCTION run_attempts_begin() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE run_attempts SET ended_at = NEW.updated_at, end_reason = 'lease_expired'
        WHERE run_id = NEW.id AND ended_at IS NULL;
    INSERT INTO run_attempts (run_id, tenant_id, attempt, worker, started_at)
        VALUES (NEW.id, NEW.tenant_id, NEW.attempt, COALESCE(NEW.lease_owner, 'unknown'), NEW.updated_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER run_attempts_begin
    AFTER UPDATE OF attempt ON bulk_operation_runs
    FOR EACH ROW WHEN (NEW.attempt > OLD.attempt)
    EXECUTE FUNCTION run_attempts_begin();

-- The run ends, or rescue takes the lease from a silent worker: the open
-- attempt ends.
CREATE FUNCTION run_attempts_end() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE run_attempts
        SET ended_at = NEW.updated_at,
            end_reason = CASE WHEN NEW.status = 'running' THEN 'lease_expired' ELSE NEW.status END
        WHERE run_id = NEW.id AND ended_at IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER run_attempts_end
    AFTER UPDATE OF status, lease_owner ON bulk_operation_runs
    FOR EACH ROW WHEN (
        (OLD.status IN ('pending', 'running') AND NEW.status NOT IN ('pending', 'running'))
        OR (NEW.status = 'running' AND OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL))
    EXECUTE FUNCTION run_attempts_end();

-- Workers take over running runs that lost their worker (rescue released
-- the lease), oldest first, beside the pending queue.
CREATE INDEX bulk_operation_runs_orphaned ON bulk_operation_runs (created_at, id)
    WHERE status = 'running' AND lease_owner IS NULL;
