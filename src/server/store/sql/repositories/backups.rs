//! Policies, backup sets and their items: the batch insert the engine's
//! progress shares, and the repository.
//!
//! Here: `insert_backup_set_items` (for the progress) and `BackupRepository`.

use super::{Builder, Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{
    BackupSetItemRow, BackupSetRow, PolicyRow, BACKUP_SET_COLUMNS, BACKUP_SET_ITEM_COLUMNS,
    POLICY_COLUMNS,
};
use crate::server::store::sql::{push_id_list, SqlDialect};
use crate::server::store::{
    AddOutcome, BackupRepository, BackupSet, BackupSetItem, NewBackupSetItem, NewPolicy, Policy,
    StoreError, StoreResult,
};
use async_trait::async_trait;
use sqlx::types::Json;

/// Snapshots policies into sets; per item, in order: added, already
/// present, or `None` when the policy is not (or no longer) the
/// set's tenant's — checked in the statement, so a foreign-key
/// error never breaks the transaction. One statement per 500 items, and
/// a look-up for the items it did not name (on PostgreSQL, policies the
/// set already held; see `SqlDialect::ON_POLICY_IN_SET`).
pub(super) async fn insert_backup_set_items(
    conn: &mut Connection,
    items: &[&NewBackupSetItem],
) -> StoreResult<Vec<Option<AddOutcome>>> {
    let mut outcomes = Vec::with_capacity(items.len());
    for chunk in items.chunks(500) {
        let candidates: Vec<BackupSetItemId> =
            chunk.iter().map(|_| BackupSetItemId::generate()).collect();
        let now = Timestamp::now();
        // VALUES columns are column1, column2, … in both databases.
        let mut qb = Builder::new(
            "INSERT INTO backup_set_items (id, tenant_id, backup_set_id, policy_id, snapshot, \
             added_by_run_id, created_at) SELECT column1, column2, column3, column4, column5, \
             column6, column7 FROM (",
        );
        qb.push_values(chunk.iter().zip(&candidates), |mut values, (item, id)| {
            values
                .push_bind(*id)
                .push_bind(item.tenant_id)
                .push_bind(item.backup_set_id)
                .push_bind(item.policy_id)
                .push_bind(Json(&item.snapshot))
                .push_bind(item.added_by_run_id)
                .push_bind(now);
        });
        qb.push(format!(
            ") AS v WHERE EXISTS (SELECT 1 FROM policies p WHERE p.id = v.column4 \
             AND p.tenant_id = v.column2) \
             ON CONFLICT (backup_set_id, policy_id) {} \
             RETURNING id, backup_set_id, policy_id",
            <Store as SqlDialect>::ON_POLICY_IN_SET
        ));
        let named: Vec<(BackupSetItemId, BackupSetId, PolicyId)> =
            qb.build_query_as().fetch_all(&mut *conn).await?;
        // The row each (set, policy) has now; an item whose candidate id
        // is not that row's found the policy there (or added it earlier
        // in this same chunk).
        let in_set: std::collections::HashMap<(BackupSetId, PolicyId), BackupSetItemId> = named
            .into_iter()
            .map(|(id, set, policy)| ((set, policy), id))
            .collect();
        let unnamed: Vec<&&NewBackupSetItem> = chunk
            .iter()
            .filter(|item| !in_set.contains_key(&(item.backup_set_id, item.policy_id)))
            .collect();
        let mut present = std::collections::HashSet::new();
        if !unnamed.is_empty() {
            let sets: Vec<BackupSetId> = unnamed.iter().map(|item| item.backup_set_id).collect();
            let policies: Vec<PolicyId> = unnamed.iter().map(|item| item.policy_id).collect();
            let mut qb = Builder::new(
                "SELECT backup_set_id, policy_id FROM backup_set_items WHERE backup_set_id IN (",
            );
            push_id_list(&mut qb, &sets);
            qb.push(") AND policy_id IN (");
            push_id_list(&mut qb, &policies);
            qb.push(")");
            let rows: Vec<(BackupSetId, PolicyId)> =
                qb.build_query_as().fetch_all(&mut *conn).await?;
            present.extend(rows);
        }
        for (item, candidate) in chunk.iter().zip(&candidates) {
            let key = (item.backup_set_id, item.policy_id);
            outcomes.push(match in_set.get(&key) {
                Some(row) if row == candidate => Some(AddOutcome::Added(*candidate)),
                Some(_) => Some(AddOutcome::AlreadyPresent),
                None if present.contains(&key) => Some(AddOutcome::AlreadyPresent),
                None => None,
            });
        }
    }
    Ok(outcomes)
}

#[async_trait]
impl BackupRepository for Store {
    async fn create_policy(&self, policy: NewPolicy) -> StoreResult<Policy> {
        let row: PolicyRow = sqlx::query_as(&format!(
            "INSERT INTO policies (id, tenant_id, external_id, name, policy_type, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {POLICY_COLUMNS}"
        ))
        .bind(PolicyId::generate())
        .bind(policy.tenant_id)
        .bind(&policy.external_id)
        .bind(policy.name.trim())
        .bind(&policy.policy_type)
        .bind(Json(&policy.payload))
        .bind(Timestamp::now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn list_policies(&self, tenant: TenantId) -> StoreResult<Vec<Policy>> {
        let rows: Vec<PolicyRow> = sqlx::query_as(&format!(
            "SELECT {POLICY_COLUMNS} FROM policies WHERE tenant_id = $1 ORDER BY name, id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn policies_by_ids(
        &self,
        tenant: TenantId,
        ids: &[PolicyId],
    ) -> StoreResult<Vec<Policy>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = Builder::new(format!(
            "SELECT {POLICY_COLUMNS} FROM policies WHERE tenant_id = "
        ));
        qb.push_bind(tenant);
        qb.push(" AND id IN (");
        push_id_list(&mut qb, ids);
        qb.push(") ORDER BY name, id");
        let rows: Vec<PolicyRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_backup_set(&self, tenant: TenantId, name: &str) -> StoreResult<BackupSet> {
        let (id,): (BackupSetId,) = sqlx::query_as(
            "INSERT INTO backup_sets (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(BackupSetId::generate())
        .bind(tenant)
        .bind(name.trim())
        .bind(Timestamp::now())
        .fetch_one(&self.pool)
        .await?;
        self.backup_set(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_backup_sets(&self, tenant: TenantId) -> StoreResult<Vec<BackupSet>> {
        let rows: Vec<BackupSetRow> = sqlx::query_as(&format!(
            "SELECT {BACKUP_SET_COLUMNS} FROM backup_sets s WHERE s.tenant_id = $1 ORDER BY s.name, s.id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn backup_set(
        &self,
        tenant: TenantId,
        id: BackupSetId,
    ) -> StoreResult<Option<BackupSet>> {
        let row: Option<BackupSetRow> = sqlx::query_as(&format!(
            "SELECT {BACKUP_SET_COLUMNS} FROM backup_sets s WHERE s.tenant_id = $1 AND s.id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn add_to_backup_set(&self, item: NewBackupSetItem) -> StoreResult<AddOutcome> {
        let mut conn = self.pool.acquire().await?;
        let outcome = insert_backup_set_items(&mut conn, &[&item])
            .await?
            .pop()
            .flatten();
        outcome.ok_or(StoreError::MissingReference)
    }

    async fn backup_set_items(
        &self,
        tenant: TenantId,
        set: BackupSetId,
    ) -> StoreResult<Vec<BackupSetItem>> {
        let rows: Vec<BackupSetItemRow> = sqlx::query_as(&format!(
            "SELECT {BACKUP_SET_ITEM_COLUMNS} FROM backup_set_items \
             WHERE tenant_id = $1 AND backup_set_id = $2 ORDER BY created_at, id"
        ))
        .bind(tenant)
        .bind(set)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
