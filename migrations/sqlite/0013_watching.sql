-- Who is told when a run ends, beyond its initiator and joiners
-- (`notify_finished`, store repositories/notifications.rs). The PostgreSQL
-- twin is migrations/postgres/0013_watching.sql.
--
-- Users watching a run (the run page's "Watch"). A watch belongs to a run
-- of the same tenant and to a membership of that tenant (composite foreign
-- keys): it goes with the run (retention, ON DELETE CASCADE) and with the
-- membership (a removed member stops hearing about the tenant's runs).
CREATE TABLE run_watchers (
    tenant_id   BLOB NOT NULL,
    run_id      BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, user_id),
    FOREIGN KEY (run_id, tenant_id) REFERENCES bulk_operation_runs (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_memberships (tenant_id, user_id) ON DELETE CASCADE
) STRICT;
-- The membership's foreign key looks watches up by member.
CREATE INDEX run_watchers_member ON run_watchers (tenant_id, user_id);

-- A member's standing subscriptions in a tenant; `failed_or_partial`: the
-- "completed" notice of every run of the tenant that ends failed or
-- completed with errors. A table of its own rather than a column of
-- tenant_memberships, which is the spec's record that other code reads;
-- a row per kind leaves room for other kinds. Only admins may subscribe,
-- and only admins are notified: the role is read when a run ends, so a
-- demoted admin's row stays but is ignored (and counts again if promoted
-- back). It goes with the membership.
CREATE TABLE notification_subscriptions (
    tenant_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('failed_or_partial')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_memberships (tenant_id, user_id) ON DELETE CASCADE
) STRICT;

-- The feed's "unread only" filter reads unread notifications newest first;
-- this index serves it and the unread count, which used the one it replaces.
CREATE INDEX notifications_unread_feed ON notifications (user_id, tenant_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;
DROP INDEX notifications_unread;
