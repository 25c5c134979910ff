-- Notification payloads in the spec's shape, which other code reads: the
-- tenant (id and slug), `run_type`, the operation as its code
-- (`drift.generate`) and the bucket as the spec spells it (`partial`).
-- Rows written before carry none of these; they are rewritten here so they
-- read back like new ones. The PostgreSQL twin is
-- migrations/postgres/0006_notification_payload.sql.
UPDATE notifications
SET payload = json_set(
    payload,
    '$.tenant', json_object(
        -- The 16-byte id as the hyphenated text serde writes.
        'id', lower(substr(hex(tenant_id), 1, 8) || '-' || substr(hex(tenant_id), 9, 4) || '-'
            || substr(hex(tenant_id), 13, 4) || '-' || substr(hex(tenant_id), 17, 4) || '-'
            || substr(hex(tenant_id), 21, 12)),
        'slug', (SELECT t.slug FROM tenants t WHERE t.id = notifications.tenant_id)
    ),
    '$.run_type', 'bulk_operation_run',
    '$.operation', CASE json_extract(payload, '$.operation')
        WHEN 'drift_generate' THEN 'drift.generate'
        WHEN 'backup_set_add_policies' THEN 'backup_set.add_policies'
        ELSE json_extract(payload, '$.operation')
    END,
    '$.bucket', CASE json_extract(payload, '$.bucket')
        WHEN 'partially_succeeded' THEN 'partial'
        ELSE json_extract(payload, '$.bucket')
    END
)
WHERE json_type(payload, '$.run_type') IS NULL;

-- A run's audit trail (its page) reads the entries about one resource.
CREATE INDEX audit_logs_resource ON audit_logs (tenant_id, resource, resource_id, created_at, id);
