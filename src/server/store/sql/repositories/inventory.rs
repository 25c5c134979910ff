//! Inventory syncs ("last observed" runs, drift's inputs) and their items.
//!
//! Here: `InventoryRepository`.

use super::{Builder, Store};
use crate::domain::*;
use crate::server::store::rows::{
    InventoryItemRow, InventorySyncRow, INVENTORY_ITEM_COLUMNS, INVENTORY_SYNC_COLUMNS,
};
use crate::server::store::{
    InventoryItem, InventoryRepository, InventoryScope, InventorySync, NewInventorySync,
    StoreResult,
};
use async_trait::async_trait;
use sqlx::types::Json;

#[async_trait]
impl InventoryRepository for Store {
    async fn record_inventory_sync(&self, sync: NewInventorySync) -> StoreResult<InventorySync> {
        let (_turn, mut tx) = self.begin_write().await?;
        let row: InventorySyncRow = sqlx::query_as(&format!(
            "INSERT INTO inventory_sync_runs (id, tenant_id, selection_hash, status, \
             item_count, created_at, finished_at) \
             VALUES ($1, $2, $3, 'completed', $4, $5, $6) RETURNING {INVENTORY_SYNC_COLUMNS}"
        ))
        .bind(InventorySyncRunId::generate())
        .bind(sync.tenant_id)
        .bind(&sync.selection_hash)
        .bind(sync.items.len() as i64)
        .bind(Timestamp::now().min(sync.finished_at))
        .bind(sync.finished_at)
        .fetch_one(&mut *tx)
        .await?;
        let recorded = InventorySync::from(row);
        // Batches keep each statement well under the bind-parameter limits.
        for chunk in sync.items.chunks(500) {
            let mut qb = Builder::new(
                "INSERT INTO inventory_items (id, tenant_id, sync_run_id, subject_type, \
                 external_id, display_name, payload) ",
            );
            qb.push_values(chunk, |mut values, item| {
                values
                    .push_bind(InventoryItemId::generate())
                    .push_bind(sync.tenant_id)
                    .push_bind(recorded.id)
                    .push_bind(item.subject_type.clone())
                    .push_bind(item.external_id.clone())
                    .push_bind(item.display_name.clone())
                    .push_bind(Json(item.payload.clone()));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn completed_syncs(
        &self,
        tenant: TenantId,
        selection_hash: &str,
        limit: u32,
    ) -> StoreResult<Vec<InventorySync>> {
        let rows: Vec<InventorySyncRow> = sqlx::query_as(&format!(
            "SELECT {INVENTORY_SYNC_COLUMNS} FROM inventory_sync_runs \
             WHERE tenant_id = $1 AND selection_hash = $2 AND status = 'completed' \
             ORDER BY finished_at DESC, id DESC LIMIT $3"
        ))
        .bind(tenant)
        .bind(selection_hash)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn inventory_scopes(&self, tenant: TenantId) -> StoreResult<Vec<InventoryScope>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT selection_hash, COUNT(*) FROM inventory_sync_runs \
             WHERE tenant_id = $1 AND status = 'completed' \
             GROUP BY selection_hash ORDER BY selection_hash",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(selection_hash, completed_syncs)| InventoryScope {
                selection_hash,
                completed_syncs,
            })
            .collect())
    }

    async fn inventory_items(
        &self,
        tenant: TenantId,
        sync: InventorySyncRunId,
    ) -> StoreResult<Vec<InventoryItem>> {
        let rows: Vec<InventoryItemRow> = sqlx::query_as(&format!(
            "SELECT {INVENTORY_ITEM_COLUMNS} FROM inventory_items \
             WHERE tenant_id = $1 AND sync_run_id = $2"
        ))
        .bind(tenant)
        .bind(sync)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn inventory_subjects(
        &self,
        tenant: TenantId,
        [first, second]: [InventorySyncRunId; 2],
    ) -> StoreResult<Vec<(String, String)>> {
        // Read from the index of a sync's subjects, never the payloads: a
        // scope can hold millions of subjects.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT subject_type, external_id FROM inventory_items \
             WHERE tenant_id = $1 AND sync_run_id IN ($2, $3)",
        )
        .bind(tenant)
        .bind(first)
        .bind(second)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn inventory_item_names(
        &self,
        tenant: TenantId,
        [current, baseline]: [InventorySyncRunId; 2],
        subject_keys: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        if subject_keys.is_empty() {
            return Ok(Vec::new());
        }
        // Keyed as the drift run keys its items. Only read for a run with
        // failures, and within its two syncs.
        let mut qb = Builder::new(
            "SELECT subject_type || ':' || external_id AS subject_key, display_name, \
             CASE WHEN sync_run_id = ",
        );
        qb.push_bind(current)
            .push(" THEN 0 ELSE 1 END AS preference FROM inventory_items WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND sync_run_id IN (")
            .push_bind(current)
            .push(", ")
            .push_bind(baseline)
            .push(") AND subject_type || ':' || external_id IN (");
        let mut keys = qb.separated(", ");
        for key in subject_keys {
            keys.push_bind(key.clone());
        }
        qb.push(") ORDER BY preference");
        let rows: Vec<(String, String, i32)> = qb.build_query_as().fetch_all(&self.pool).await?;
        let mut names: Vec<(String, String)> = Vec::new();
        for (key, name, _) in rows {
            if !names.iter().any(|(known, _)| *known == key) {
                names.push((key, name));
            }
        }
        Ok(names)
    }
}
