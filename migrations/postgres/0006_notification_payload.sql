-- Notification payloads in the spec's shape, which other code reads: the
-- tenant (id and slug), `run_type`, the operation as its code
-- (`drift.generate`) and the bucket as the spec spells it (`partial`).
-- Rows written before carry none of these; they are rewritten here so they
-- read back like new ones. The SQLite twin is
-- migrations/sqlite/0006_notification_payload.sql.
UPDATE notifications n
SET payload = n.payload || jsonb_build_object(
    'tenant', jsonb_build_object('id', n.tenant_id::text, 'slug', t.slug),
    'run_type', 'bulk_operation_run',
    'operation', CASE n.payload ->> 'operation'
        WHEN 'drift_generate' THEN 'drift.generate'
        WHEN 'backup_set_add_policies' THEN 'backup_set.add_policies'
        ELSE n.payload ->> 'operation'
    END,
    'bucket', CASE n.payload ->> 'bucket'
        WHEN 'partially_succeeded' THEN 'partial'
        ELSE n.payload ->> 'bucket'
    END
)
FROM tenants t
WHERE t.id = n.tenant_id AND NOT n.payload ? 'run_type';

-- A run's audit trail (its page) reads the entries about one resource.
CREATE INDEX audit_logs_resource ON audit_logs (tenant_id, resource, resource_id, created_at, id);
