-- The hub searches idempotency keys by prefix, a range in byte order
-- (`COLLATE "C"`, whatever the database's collation): the tenant's key index
-- is built in that order so the range is an index read. SQLite compares
-- bytes by default, so its index (0002) serves as it is.
DROP INDEX bulk_operation_runs_tenant_key;
CREATE INDEX bulk_operation_runs_tenant_key ON bulk_operation_runs (tenant_id, idempotency_key COLLATE "C");
