//! The audit log: entries written alone (`record_audit`) or, through
//! `insert_audit`, in the transaction of the change they record.
//!
//! Here: `insert_audit` (for the runs, the queue and the memberships) and
//! `AuditRepository`.

use super::{Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{AuditRow, TrailRow, AUDIT_COLUMNS, TRAIL_COLUMNS};
use crate::server::store::{AuditRepository, NewAuditEntry, StoreResult};
use async_trait::async_trait;
use sqlx::types::Json;

pub(super) async fn insert_audit(
    conn: &mut Connection,
    entry: &NewAuditEntry,
) -> StoreResult<AuditEntry> {
    let row: AuditRow = sqlx::query_as(&format!(
        "INSERT INTO audit_logs (id, tenant_id, user_id, action, resource, resource_id, \
         metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {AUDIT_COLUMNS}"
    ))
    .bind(AuditLogId::generate())
    .bind(entry.tenant_id)
    .bind(entry.user_id)
    .bind(&entry.action)
    .bind(&entry.resource)
    .bind(&entry.resource_id)
    .bind(Json(&entry.metadata))
    .bind(Timestamp::now())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.into())
}

#[async_trait]
impl AuditRepository for Store {
    async fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        insert_audit(&mut *self.pool.acquire().await?, &entry).await
    }

    async fn audit_entry(
        &self,
        tenant: TenantId,
        id: AuditLogId,
    ) -> StoreResult<Option<AuditEntry>> {
        let row: Option<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn list_audit(&self, tenant: TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant)
        .bind(i64::from(limit.clamp(1, MAX_PAGE_SIZE)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn run_audit_trail(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<TrailEntry>> {
        let rows: Vec<TrailRow> = sqlx::query_as(&format!(
            "SELECT {TRAIL_COLUMNS} FROM audit_logs a LEFT JOIN users u ON u.id = a.user_id \
             WHERE a.tenant_id = $1 AND a.resource = $2 AND a.resource_id = $3 \
             ORDER BY a.created_at, a.id"
        ))
        .bind(tenant)
        .bind(audit_names::RUN)
        .bind(run.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
