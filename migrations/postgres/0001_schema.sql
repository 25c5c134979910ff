-- opshub schema, PostgreSQL dialect. The SQLite twin is migrations/sqlite/0001_schema.sql;
-- keep them in step. Ids are uuid, times timestamptz, JSON jsonb.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(trim(name)) > 0),
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name   text NOT NULL CHECK (length(trim(display_name)) > 0),
    password_hash  text,
    created_at     timestamptz NOT NULL
);

CREATE TABLE tenant_memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_memberships_user ON tenant_memberships (user_id);

CREATE TABLE audit_logs (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    action       text NOT NULL CHECK (length(action) > 0),
    resource     text NOT NULL CHECK (length(resource) > 0),
    resource_id  text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL
);
CREATE INDEX audit_logs_tenant_newest ON audit_logs (tenant_id, created_at DESC, id DESC);

CREATE TABLE bulk_operation_runs (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id              uuid NOT NULL REFERENCES users (id),
    resource             text NOT NULL,
    action               text NOT NULL,
    idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    status               text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'completed_with_errors', 'failed', 'aborted')),
    total_items          bigint NOT NULL DEFAULT 0 CHECK (total_items >= 0),
    processed_items      bigint NOT NULL DEFAULT 0 CHECK (processed_items >= 0),
    succeeded            bigint NOT NULL DEFAULT 0 CHECK (succeeded >= 0),
    failed               bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
    skipped              bigint NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    item_ids             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(item_ids) = 'array'),
    params               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    failures             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(failures) = 'array'),
    audit_log_id         uuid REFERENCES audit_logs (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    -- engine columns
    started_at           timestamptz,
    finished_at          timestamptz,
    attempt              bigint NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts         bigint NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_owner          text,
    lease_expires_at     timestamptz,
    heartbeat_at         timestamptz,
    cancel_requested_at  timestamptz,
    CHECK ((resource = 'drift' AND action = 'generate') OR (resource = 'backup_set' AND action = 'add_policies')),
    CHECK (processed_items = succeeded + failed + skipped),
    CHECK (processed_items <= total_items),
    CHECK ((status IN ('pending', 'running')) = (finished_at IS NULL)),
    CHECK (status <> 'running' OR started_at IS NOT NULL)
);
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
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    selection_hash  text NOT NULL CHECK (length(selection_hash) BETWEEN 1 AND 200),
    status          text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    item_count      bigint NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    CHECK (status <> 'completed' OR finished_at IS NOT NULL),
    UNIQUE (id, tenant_id)
);
CREATE INDEX inventory_sync_runs_scope ON inventory_sync_runs (tenant_id, selection_hash, finished_at DESC);

CREATE TABLE inventory_items (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    sync_run_id   uuid NOT NULL,
    subject_type  text NOT NULL CHECK (length(subject_type) > 0),
    external_id   text NOT NULL CHECK (length(external_id) > 0),
    display_name  text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}',
    -- the item belongs to a sync run of the same tenant
    FOREIGN KEY (sync_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id) ON DELETE CASCADE,
    UNIQUE (sync_run_id, subject_type, external_id)
);

CREATE TABLE findings (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    finding_type         text NOT NULL CHECK (finding_type IN ('added', 'removed', 'changed')),
    scope_key            text NOT NULL,
    baseline_run_id      uuid NOT NULL,
    current_run_id       uuid NOT NULL,
    produced_by_run_id   uuid REFERENCES bulk_operation_runs (id) ON DELETE SET NULL,
    fingerprint          text NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 200),
    subject_type         text NOT NULL,
    subject_external_id  text NOT NULL,
    status               text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'acknowledged')),
    evidence             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(evidence) = 'object'),
    acknowledged_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at      timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    FOREIGN KEY (baseline_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    FOREIGN KEY (current_run_id, tenant_id) REFERENCES inventory_sync_runs (id, tenant_id),
    CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL)),
    UNIQUE (tenant_id, fingerprint)
);
CREATE INDEX findings_tenant_newest ON findings (tenant_id, created_at DESC, id DESC);
CREATE INDEX findings_produced_by ON findings (produced_by_run_id);

CREATE TABLE policies (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id  text NOT NULL CHECK (length(external_id) > 0),
    name         text NOT NULL CHECK (length(trim(name)) > 0),
    policy_type  text NOT NULL CHECK (length(policy_type) > 0),
    payload      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id),
    UNIQUE (id, tenant_id)
);

CREATE TABLE backup_sets (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(trim(name)) > 0),
    created_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (id, tenant_id)
);

CREATE TABLE backup_set_items (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    backup_set_id    uuid NOT NULL,
    policy_id        uuid NOT NULL,
    snapshot         jsonb NOT NULL,
    added_by_run_id  uuid REFERENCES bulk_operation_runs (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    -- set and policy belong to the item's tenant
    FOREIGN KEY (backup_set_id, tenant_id) REFERENCES backup_sets (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (policy_id, tenant_id) REFERENCES policies (id, tenant_id) ON DELETE CASCADE,
    UNIQUE (backup_set_id, policy_id)
);

CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('run_queued', 'run_completed')),
    payload     jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    read_at     timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX notifications_feed ON notifications (user_id, tenant_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, tenant_id) WHERE read_at IS NULL;
