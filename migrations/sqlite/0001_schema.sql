-- opshub schema, SQLite dialect. The PostgreSQL twin is migrations/postgres/0001_schema.sql;
-- keep them in step. Ids are UUID blobs (16 bytes), times are Unix microseconds (UTC),
-- JSON is TEXT checked with json_valid. WAL, busy_timeout and foreign_keys are set on
-- every connection by the server, not here.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    slug        TEXT NOT NULL UNIQUE CHECK (slug GLOB '[a-z0-9]*' AND NOT slug GLOB '*[^a-z0-9-]*' AND length(slug) BETWEEN 1 AND 63),
    name        TEXT NOT NULL CHECK (length(trim(name)) > 0),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id             BLOB PRIMARY KEY CHECK (length(id) = 16),
    email          TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name   TEXT NOT NULL CHECK (length(trim(display_name)) > 0),
    password_hash  TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_memberships (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;
CREATE INDEX tenant_memberships_user ON tenant_memberships (user_id);

CREATE TABLE audit_logs (
    id           BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      BLOB REFERENCES users (id) ON DELETE SET NULL,
    action       TEXT NOT NULL CHECK (length(action) > 0),
    resource     TEXT NOT NULL CHECK (length(resource) > 0),
    resource_id  TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_logs_tenant_newest ON audit_logs (tenant_id, created_at DESC, id DESC);

CREATE TABLE bulk_operation_runs (
    id                   BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id              BLOB NOT NULL REFERENCES users (id),
    resource             TEXT NOT NULL,
    action               TEXT NOT NULL,
    idempotency_key      TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    status               TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'completed_with_errors', 'failed', 'aborted')),
    total_items          INTEGER NOT NULL DEFAULT 0 CHECK (total_items >= 0),
    processed_items      INTEGER NOT NULL DEFAULT 0 CHECK (processed_items >= 0),
    succeeded            INTEGER NOT NULL DEFAULT 0 CHECK (succeeded >= 0),
    failed               INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    skipped              INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    item_ids             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(item_ids) AND json_type(item_ids) = 'array'),
    params               TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params) AND json_type(params) = 'object'),
    failures             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(failures) AND json_type(failures) = 'array'),
    audit_log_id         BLOB REFERENCES audit_logs (id) ON DELETE SET NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    -- engine columns
    started_at           INTEGER,
    finished_at          INTEGER,
    attempt              INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts         INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_owner          TEXT,
    lease_expires_at     INTEGER,
    heartbeat_at         INTEGER,
    cancel_requested_at  INTEGER,
    CHECK ((resource = 'drift' AND action = 'generate') OR (resource = 'backup_set' AND action = 'add_policies')),
    CHECK (processed_items = succeeded + failed + skipped),
    CHECK (processed_items <= total_items),
    CHECK ((status IN ('pending', 'running')) = (finished_at IS NULL)),
    CHECK (status <> 'running' OR started_at IS NOT NULL)
) STRICT;
-- One active run per tenant and key; "start" is an upsert against this index.
CREATE UNIQUE INDEX bulk_operation_runs_active_key
    ON bulk_operation_runs (tenant_id, idempotency_key)
    WHERE status IN ('pending', 'running');
-- The hub: newest first, keyset on (created_at, id), optionally per status.
CREATE INDEX bulk_operation_runs_tenant_newest ON bulk_operation_runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX bulk_operation_runs_tenant_status ON bulk_operation_runs (tenant_id, status, created_at DESC, id DESC);
-- Workers: oldest pending first; expired leases.
CREATE INDEX bulk_operation_runs_queue ON bulk_operation_runs (created_at, id) WHERE status = 'pending';
CREATE INDEX bulk_operation_runs_leases ON bulk_operation_runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE inventory_sync_runs (
    id              BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    selection_hash  TEXT NOT NULL CHECK (length(selection_hash) BETWEEN 1 AND 200),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    item_count      INTEGER NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    CHECK (status <> 'completed' OR finished_at IS NOT NULL),
    UNIQUE (id, tenant_id)
) STRICT;
CREATE INDEX inventory_sync_runs_scope ON inventory_sync_runs (tenant_id, selection_hash, finished_at DESC);

CREATE TABLE inventory_items (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id     BLOB NOT NULL,
    sync_run_id   BLOB NOT NULL,
    subject_type  TEXT NOT NULL CHECK (length(subject_type) > 0),
    external_id   TEXT NOT NULL CHECK (length(external_id) > 0),
    display_name  TEXT NOT NULL,
    payload       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    -- the item belongs to a sync run of the same tenant
    FOREIGN KEY (sync_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id) ON DELETE CASCADE,
    UNIQUE (sync_run_id, subject_type, external_id)
) STRICT;

CREATE TABLE findings (
    id                   BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    finding_type         TEXT NOT NULL CHECK (finding_type IN ('added', 'removed', 'changed')),
    scope_key            TEXT NOT NULL,
    baseline_run_id      BLOB NOT NULL,
    current_run_id       BLOB NOT NULL,
    produced_by_run_id   BLOB REFERENCES bulk_operation_runs (id) ON DELETE SET NULL,
    fingerprint          TEXT NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 200),
    subject_type         TEXT NOT NULL,
    subject_external_id  TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'acknowledged')),
    evidence             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(evidence) AND json_type(evidence) = 'object'),
    acknowledged_by      BLOB REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at      INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    FOREIGN KEY (baseline_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    FOREIGN KEY (current_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL)),
    UNIQUE (tenant_id, fingerprint)
) STRICT;
CREATE INDEX findings_tenant_newest ON findings (tenant_id, created_at DESC, id DESC);
CREATE INDEX findings_produced_by ON findings (produced_by_run_id);

CREATE TABLE policies (
    id           BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id  TEXT NOT NULL CHECK (length(external_id) > 0),
    name         TEXT NOT NULL CHECK (length(trim(name)) > 0),
    policy_type  TEXT NOT NULL CHECK (length(policy_type) > 0),
    payload      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, external_id),
    UNIQUE (id, tenant_id)
) STRICT;

CREATE TABLE backup_sets (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(trim(name)) > 0),
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (id, tenant_id)
) STRICT;

CREATE TABLE backup_set_items (
    id               BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id        BLOB NOT NULL,
    backup_set_id    BLOB NOT NULL,
    policy_id        BLOB NOT NULL,
    snapshot         TEXT NOT NULL CHECK (json_valid(snapshot)),
    added_by_run_id  BLOB REFERENCES bulk_operation_runs (id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    -- set and policy belong to the item's tenant
    FOREIGN KEY (backup_set_id, tenant_id) REFERENCES backup_sets (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (policy_id, tenant_id) REFERENCES policies (id, tenant_id) ON DELETE CASCADE,
    UNIQUE (backup_set_id, policy_id)
) STRICT;

CREATE TABLE notifications (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('run_queued', 'run_completed')),
    payload     TEXT NOT NULL CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    read_at     INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX notifications_feed ON notifications (user_id, tenant_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, tenant_id) WHERE read_at IS NULL;
