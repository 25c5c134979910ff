//! The repositories, written once in SQL both databases understand and
//! instantiated for each backend by `impl_sql_repositories!`. Where the
//! dialects differ, the backend supplies it through [`SqlDialect`].

use crate::domain::*;

/// What differs between the backends inside otherwise shared SQL.
pub trait SqlDialect {
    /// Starts a transaction that will write. SQLite needs `BEGIN IMMEDIATE`:
    /// a deferred transaction that reads first fails with SQLITE_BUSY when it
    /// later tries to write.
    const BEGIN_WRITE: &'static str;
    /// Appended to the queue's row-picking SELECTs: PostgreSQL skips rows
    /// another worker has locked; SQLite serialises writers anyway.
    const SKIP_LOCKED: &'static str;
    /// Appended to a SELECT whose rows must not change until the transaction
    /// ends: PostgreSQL locks them; SQLite's write transaction already
    /// excludes every other writer.
    const LOCK_ROWS: &'static str;
    /// Run inside the transaction that queues a run, to wake other
    /// processes' workers (PostgreSQL NOTIFY); empty where there are none.
    const NOTIFY_QUEUED: &'static str;

    /// Writers take turns here before the database sees them, where the
    /// database allows one writer at a time (SQLite): waiting on an
    /// in-process lock is far cheaper than SQLITE_BUSY back-off sleeps.
    fn write_gate(&self) -> Option<&std::sync::Arc<tokio::sync::Mutex<()>>>;
}

/// Turns the rows of a keyset query (fetched with `limit + 1` to learn
/// whether more exist) into a newest-first page with neighbour cursors.
pub fn finish_page<T>(
    mut rows: Vec<T>,
    request: &PageRequest,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let limit = request.effective_limit() as usize;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    match request.direction {
        Direction::Older => Page {
            older: if has_more {
                rows.last().map(&cursor_of)
            } else {
                None
            },
            newer: if request.cursor.is_some() {
                rows.first().map(&cursor_of)
            } else {
                None
            },
            items: rows,
        },
        Direction::Newer => {
            rows.reverse();
            Page {
                newer: if has_more {
                    rows.first().map(&cursor_of)
                } else {
                    None
                },
                older: rows.last().map(&cursor_of),
                items: rows,
            }
        }
    }
}

/// `NotFound` unless a statement that targets one row changed it.
pub fn one_row_changed(rows_affected: u64) -> Result<(), super::StoreError> {
    if rows_affected == 0 {
        Err(super::StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// True when the run already counts exactly this batch of progress: an
/// earlier try's commit landed and only its answer was lost.
pub fn already_recorded(state: &super::rows::RunStateRow, run: &super::RunProgress) -> bool {
    state.counters().processed == run.recorded_before + run.items.len() as i64
        && match run.end {
            super::BatchEnd::Continues => {
                !run.items.is_empty() && state.status == RunStatus::Running
            }
            super::BatchEnd::Finishes | super::BatchEnd::BrokeDown(_) => state.status.is_terminal(),
        }
}

/// Per-bucket counts from `(status, count)` rows.
pub fn bucket_counts(rows: Vec<(String, i64)>) -> Result<BucketCounts, super::StoreError> {
    let mut counts = BucketCounts::default();
    for (status, n) in rows {
        let status = RunStatus::parse(&status).map_err(|e| super::StoreError::Invalid(e.0))?;
        counts.add(status.bucket(), n);
    }
    Ok(counts)
}

/// SQL list of quoted status names, e.g. `'pending', 'running'`. Only ever
/// built from our own enum, never from input.
pub fn status_list(statuses: &[RunStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `change_membership` does to a membership.
#[derive(Clone, Copy, Debug)]
pub enum MembershipChange {
    /// Sets the role, member or not.
    Grant(Role),
    /// Sets the role of a member (`NotFound` for anyone else).
    ChangeRole(Role),
    Remove,
}

impl MembershipChange {
    /// The role after the change (`None`: no membership).
    pub fn role(self) -> Option<Role> {
        match self {
            MembershipChange::Grant(role) | MembershipChange::ChangeRole(role) => Some(role),
            MembershipChange::Remove => None,
        }
    }

    pub fn members_only(self) -> bool {
        !matches!(self, MembershipChange::Grant(_))
    }

    /// The audit entry of this change of `user`'s membership, which had
    /// the role `before`.
    pub fn audit_entry(
        self,
        tenant: TenantId,
        user: UserId,
        before: Option<Role>,
        actor: Option<UserId>,
    ) -> super::NewAuditEntry {
        let (action, metadata) = match (self, before) {
            (MembershipChange::Grant(role), None) => (
                audit_names::MEMBERSHIP_GRANT,
                serde_json::json!({ "role": role.as_str() }),
            ),
            (MembershipChange::Grant(role), Some(from)) => (
                audit_names::MEMBERSHIP_GRANT,
                serde_json::json!({ "role": role.as_str(), "from": from.as_str() }),
            ),
            (MembershipChange::ChangeRole(role), _) => (
                audit_names::MEMBERSHIP_ROLE_CHANGE,
                serde_json::json!({ "from": before.map(Role::as_str), "to": role.as_str() }),
            ),
            (MembershipChange::Remove, _) => (
                audit_names::MEMBERSHIP_REMOVE,
                serde_json::json!({ "role": before.map(Role::as_str) }),
            ),
        };
        super::NewAuditEntry {
            tenant_id: tenant,
            user_id: actor,
            action: action.to_string(),
            resource: audit_names::MEMBERSHIP.to_string(),
            resource_id: Some(user.to_string()),
            metadata,
        }
    }
}

macro_rules! impl_sql_repositories {
    ($store:ty, $db:ty) => {
        const _: () = {
            use $crate::domain::*;
            use $crate::server::store::rows::*;
            use $crate::server::store::settled::settled_cutoff;
            use $crate::server::store::sql::{
                already_recorded, bucket_counts, finish_page, one_row_changed, status_list,
                MembershipChange, SqlDialect,
            };
            use $crate::server::store::types::*;
            use $crate::server::store::*;
            use async_trait::async_trait;
            use sqlx::types::Json;
            use sqlx::QueryBuilder;

            type Builder<'a> = QueryBuilder<'a, $db>;

            /// Appends the keyset condition and order for a newest-first list
            /// over `<alias>.created_at, <alias>.id`.
            fn push_keyset(qb: &mut Builder<'_>, alias: &str, page: &PageRequest) {
                let (op, order) = match page.direction {
                    Direction::Older => ("<", "DESC"),
                    Direction::Newer => (">", "ASC"),
                };
                if let Some(cursor) = page.cursor {
                    qb.push(format!(" AND ({alias}.created_at, {alias}.id) {op} ("));
                    qb.push_bind(cursor.at);
                    qb.push(", ");
                    qb.push_bind(cursor.id);
                    qb.push(")");
                }
                qb.push(format!(" ORDER BY {alias}.created_at {order}, {alias}.id {order} LIMIT "));
                qb.push_bind(i64::from(page.effective_limit()) + 1);
            }

            fn push_run_filter(qb: &mut Builder<'_>, filter: &RunFilter, with_bucket: bool) {
                if let (true, Some(bucket)) = (with_bucket, filter.bucket) {
                    qb.push(format!(" AND r.status IN ({})", status_list(&bucket.statuses())));
                }
                if let Some(operation) = filter.operation {
                    qb.push(" AND r.resource = ");
                    qb.push_bind(operation.resource());
                    qb.push(" AND r.action = ");
                    qb.push_bind(operation.action());
                }
                if let Some(initiator) = filter.initiator {
                    qb.push(" AND r.user_id = ");
                    qb.push_bind(initiator);
                }
                if let Some(from) = filter.created_from {
                    qb.push(" AND r.created_at >= ");
                    qb.push_bind(from);
                }
                if let Some(before) = filter.created_before {
                    qb.push(" AND r.created_at < ");
                    qb.push_bind(before);
                }
                if let Some(id) = filter.run_id {
                    qb.push(" AND r.id = ");
                    qb.push_bind(id);
                }
                if let Some(key) = &filter.idempotency_key {
                    qb.push(" AND r.idempotency_key = ");
                    qb.push_bind(key.clone());
                }
            }

            fn push_id_list<'a, T>(qb: &mut Builder<'a>, ids: &[T])
            where
                T: Copy + Send + 'a + sqlx::Encode<'a, $db> + sqlx::Type<$db>,
            {
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
            }

            type Connection = <$db as sqlx::Database>::Connection;

            async fn insert_audit(conn: &mut Connection, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
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

            async fn insert_notification(
                conn: &mut Connection,
                notification: &NewNotification,
            ) -> StoreResult<Notification> {
                let row: NotificationRow = sqlx::query_as(&format!(
                    "INSERT INTO notifications (id, tenant_id, user_id, kind, payload, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {NOTIFICATION_COLUMNS}"
                ))
                .bind(NotificationId::generate())
                .bind(notification.tenant_id)
                .bind(notification.user_id)
                .bind(notification.kind.as_str())
                .bind(Json(&notification.notice))
                .bind(Timestamp::now())
                .fetch_one(&mut *conn)
                .await?;
                Ok(row.into())
            }

            /// Inserts findings, or touches `updated_at` of those whose
            /// fingerprint the tenant already has; ids in input order. The
            /// same finding twice in `findings` (two runs of one batch found
            /// it) is written once.
            async fn upsert_findings(
                conn: &mut Connection,
                findings: &[&NewFinding],
                now: Timestamp,
            ) -> StoreResult<Vec<(FindingId, bool)>> {
                // One statement may not touch a row twice (PostgreSQL refuses).
                let mut seen = std::collections::HashSet::new();
                let distinct: Vec<&NewFinding> = findings
                    .iter()
                    .copied()
                    .filter(|finding| seen.insert((finding.tenant_id, finding.fingerprint.as_str())))
                    .collect();
                let mut written: std::collections::HashMap<(TenantId, &str), (FindingId, bool)> =
                    std::collections::HashMap::with_capacity(distinct.len());
                // Batches keep each statement well under the bind-parameter limits.
                for chunk in distinct.chunks(500) {
                    let candidates: Vec<FindingId> = chunk.iter().map(|_| FindingId::generate()).collect();
                    let mut qb = Builder::new(
                        "INSERT INTO findings (id, tenant_id, finding_type, change_kind, scope_key, \
                         baseline_run_id, current_run_id, produced_by_run_id, fingerprint, \
                         subject_type, subject_external_id, status, evidence_jsonb, created_at, \
                         updated_at) ",
                    );
                    qb.push_values(chunk.iter().zip(&candidates), |mut values, (finding, id)| {
                        values
                            .push_bind(*id)
                            .push_bind(finding.tenant_id)
                            .push_bind(finding.finding_type.as_str())
                            .push_bind(finding.change_kind.as_str())
                            .push_bind(finding.scope_key.clone())
                            .push_bind(finding.baseline_run_id)
                            .push_bind(finding.current_run_id)
                            .push_bind(finding.produced_by_run_id)
                            .push_bind(finding.fingerprint.clone())
                            .push_bind(finding.subject_type.clone())
                            .push_bind(finding.subject_external_id.clone())
                            .push_bind("new")
                            .push_bind(Json(finding.evidence.clone()))
                            .push_bind(now)
                            .push_bind(now);
                    });
                    qb.push(" ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET updated_at = excluded.updated_at \
                              RETURNING id, fingerprint");
                    let rows: Vec<(FindingId, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                    for (finding, candidate) in chunk.iter().zip(&candidates) {
                        let (id, _) = rows
                            .iter()
                            .find(|(_, fingerprint)| *fingerprint == finding.fingerprint)
                            .ok_or(StoreError::NotFound)?;
                        written.insert((finding.tenant_id, finding.fingerprint.as_str()), (*id, id == candidate));
                    }
                }
                let mut first = std::collections::HashSet::new();
                Ok(findings
                    .iter()
                    .map(|finding| {
                        let key = (finding.tenant_id, finding.fingerprint.as_str());
                        let (id, inserted) = written[&key];
                        (id, inserted && first.insert(key))
                    })
                    .collect())
            }

            /// Snapshots policies into sets; per item, in order: added, already
            /// present, or `None` when the policy is not (or no longer) the
            /// set's tenant's — checked in the statement, so a foreign-key
            /// error never breaks the transaction. Two statements per 500 items.
            /// Remembers failed items (every one, unlike the kept
            /// `failures`): what a retry re-runs.
            async fn insert_failed_items(
                conn: &mut Connection,
                failed: &[(RunId, TenantId, &str)],
            ) -> StoreResult<()> {
                for chunk in failed.chunks(1_000) {
                    let mut qb = Builder::new("INSERT INTO run_failed_items (run_id, tenant_id, item_id) ");
                    qb.push_values(chunk, |mut values, (run, tenant, item)| {
                        values.push_bind(*run).push_bind(*tenant).push_bind(item.to_string());
                    });
                    qb.push(" ON CONFLICT DO NOTHING");
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert_backup_set_items(
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
                    qb.push(
                        ") AS v WHERE EXISTS (SELECT 1 FROM policies p WHERE p.id = v.column4 \
                         AND p.tenant_id = v.column2) \
                         ON CONFLICT (backup_set_id, policy_id) DO NOTHING RETURNING id",
                    );
                    let added: Vec<(BackupSetItemId,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                    let added: std::collections::HashSet<BackupSetItemId> =
                        added.into_iter().map(|(id,)| id).collect();
                    let refused: Vec<&&NewBackupSetItem> = chunk
                        .iter()
                        .zip(&candidates)
                        .filter(|(_, id)| !added.contains(id))
                        .map(|(item, _)| item)
                        .collect();
                    let mut present = std::collections::HashSet::new();
                    if !refused.is_empty() {
                        let sets: Vec<BackupSetId> = refused.iter().map(|item| item.backup_set_id).collect();
                        let policies: Vec<PolicyId> = refused.iter().map(|item| item.policy_id).collect();
                        let mut qb = Builder::new(
                            "SELECT backup_set_id, policy_id FROM backup_set_items WHERE backup_set_id IN (",
                        );
                        push_id_list(&mut qb, &sets);
                        qb.push(") AND policy_id IN (");
                        push_id_list(&mut qb, &policies);
                        qb.push(")");
                        let rows: Vec<(BackupSetId, PolicyId)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                        present.extend(rows);
                    }
                    for (item, id) in chunk.iter().zip(&candidates) {
                        outcomes.push(if added.contains(id) {
                            Some(AddOutcome::Added(*id))
                        } else if present.contains(&(item.backup_set_id, item.policy_id)) {
                            Some(AddOutcome::AlreadyPresent)
                        } else {
                            None
                        });
                    }
                }
                Ok(outcomes)
            }

            /// Writes the "completed" notification of each run that just
            /// ended to everyone who asked for it: its initiator and every
            /// other user whose start joined it, once each. Returns the
            /// changes those notifications make, for live views.
            async fn notify_finished(conn: &mut Connection, runs: &[RunStateRow]) -> StoreResult<Vec<Change>> {
                let mut joiners: std::collections::HashMap<RunId, Vec<UserId>> =
                    std::collections::HashMap::new();
                let ids: Vec<RunId> = runs.iter().map(|run| run.id).collect();
                for chunk in ids.chunks(1_000) {
                    let mut qb = Builder::new("SELECT DISTINCT run_id, user_id FROM run_joins WHERE run_id IN (");
                    push_id_list(&mut qb, chunk);
                    qb.push(")");
                    let rows: Vec<(RunId, UserId)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                    for (run, user) in rows {
                        joiners.entry(run).or_default().push(user);
                    }
                }
                let mut notifications = Vec::new();
                for run in runs {
                    let notice = run.finished_notice()?;
                    let mut recipients = vec![run.user_id];
                    for user in joiners.remove(&run.id).unwrap_or_default() {
                        if !recipients.contains(&user) {
                            recipients.push(user);
                        }
                    }
                    notifications.extend(recipients.into_iter().map(|user| NewNotification {
                        tenant_id: run.tenant_id,
                        user_id: user,
                        kind: NotificationKind::RunCompleted,
                        notice: notice.clone(),
                    }));
                }
                let now = Timestamp::now();
                // Six binds a row: far under the bind-parameter limits.
                for chunk in notifications.chunks(1_000) {
                    let mut qb = Builder::new(
                        "INSERT INTO notifications (id, tenant_id, user_id, kind, payload, created_at) ",
                    );
                    qb.push_values(chunk, |mut values, notification| {
                        values
                            .push_bind(NotificationId::generate())
                            .push_bind(notification.tenant_id)
                            .push_bind(notification.user_id)
                            .push_bind(notification.kind.as_str())
                            .push_bind(Json(&notification.notice))
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(notifications
                    .iter()
                    .map(|n| Change::Notifications { tenant: n.tenant_id, user: n.user_id })
                    .collect())
            }

            /// This writer's turn (see `SqlDialect::write_gate`); held until dropped.
            type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

            impl $store {
                async fn write_turn(&self) -> WriteTurn {
                    match self.write_gate() {
                        Some(gate) => Some(gate.clone().lock_owned().await),
                        None => None,
                    }
                }

                /// A write transaction, in this writer's turn.
                async fn begin_write(&self) -> StoreResult<(WriteTurn, sqlx::Transaction<'static, $db>)> {
                    let turn = self.write_turn().await;
                    Ok((turn, self.pool.begin_with(<$store as SqlDialect>::BEGIN_WRITE).await?))
                }

                /// Makes the change and returns the role before, refusing to
                /// leave the tenant without an admin and, for a change of
                /// members only, to touch a non-member (`NotFound`). The
                /// tenant's memberships are read and changed in one write
                /// transaction, with the audit entry: PostgreSQL locks them (in
                /// one order, so two such transactions cannot deadlock),
                /// SQLite's `BEGIN IMMEDIATE` excludes every other writer.
                async fn change_membership(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    change: MembershipChange,
                    audit: MembershipAudit,
                ) -> StoreResult<Option<Role>> {
                    let role = change.role();
                    let (_turn, mut tx) = self.begin_write().await?;
                    let members: Vec<(UserId, String)> = sqlx::query_as(&format!(
                        "SELECT user_id, role FROM tenant_memberships WHERE tenant_id = $1 ORDER BY user_id{}",
                        <$store as SqlDialect>::LOCK_ROWS
                    ))
                    .bind(tenant)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut before = None;
                    let mut other_admins = 0;
                    for (member, member_role) in &members {
                        let member_role = Role::parse(member_role).map_err(|e| StoreError::Invalid(e.0))?;
                        if *member == user {
                            before = Some(member_role);
                        } else if member_role == Role::Admin {
                            other_admins += 1;
                        }
                    }
                    if before.is_none() && change.members_only() {
                        return Err(StoreError::NotFound);
                    }
                    if before == Some(Role::Admin) && role != Some(Role::Admin) && other_admins == 0 {
                        return Err(StoreError::LastAdmin);
                    }
                    match role {
                        Some(role) => {
                            sqlx::query(
                                "INSERT INTO tenant_memberships (tenant_id, user_id, role, created_at) \
                                 VALUES ($1, $2, $3, $4) \
                                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
                            )
                            .bind(tenant)
                            .bind(user)
                            .bind(role.as_str())
                            .bind(Timestamp::now())
                            .execute(&mut *tx)
                            .await?;
                        }
                        None => {
                            sqlx::query("DELETE FROM tenant_memberships WHERE tenant_id = $1 AND user_id = $2")
                                .bind(tenant)
                                .bind(user)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    if let MembershipAudit::By(actor) = audit {
                        insert_audit(&mut tx, &change.audit_entry(tenant, user, before, actor)).await?;
                    }
                    tx.commit().await?;
                    self.changes.record([Change::Access { tenant, user }]);
                    Ok(before)
                }

                /// One of the engine's own write transactions (progress,
                /// rescue), on the engine's connections (see `engine_pool`).
                async fn begin_engine_write(&self) -> StoreResult<(WriteTurn, sqlx::Transaction<'static, $db>)> {
                    let turn = self.write_turn().await;
                    Ok((turn, self.engine_pool.begin_with(<$store as SqlDialect>::BEGIN_WRITE).await?))
                }
            }

            #[async_trait]
            impl TenantRepository for $store {
                async fn create_tenant(&self, slug: &TenantSlug, name: &str) -> StoreResult<Tenant> {
                    let row: TenantRow = sqlx::query_as(&format!(
                        "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4) \
                         RETURNING {TENANT_COLUMNS}"
                    ))
                    .bind(TenantId::generate())
                    .bind(slug.as_str())
                    .bind(name.trim())
                    .bind(Timestamp::now())
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(row.into())
                }

                async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
                    let rows: Vec<TenantRow> = sqlx::query_as(&format!(
                        "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name, id"
                    ))
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
                    let row: Option<TenantRow> = sqlx::query_as(&format!(
                        "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"
                    ))
                    .bind(slug)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn create_user(&self, user: NewUser) -> StoreResult<User> {
                    let (id, email, display_name): (UserId, String, String) = sqlx::query_as(
                        "INSERT INTO users (id, email, display_name, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id, email, display_name",
                    )
                    .bind(UserId::generate())
                    .bind(user.email.trim().to_lowercase())
                    .bind(user.display_name.trim())
                    .bind(user.password_hash)
                    .bind(Timestamp::now())
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(User { id, email, display_name })
                }

                async fn set_membership(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    role: Role,
                    audit: MembershipAudit,
                ) -> StoreResult<Option<Role>> {
                    self.change_membership(tenant, user, MembershipChange::Grant(role), audit).await
                }

                async fn change_member_role(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    role: Role,
                    audit: MembershipAudit,
                ) -> StoreResult<Role> {
                    self.change_membership(tenant, user, MembershipChange::ChangeRole(role), audit)
                        .await?
                        .ok_or(StoreError::NotFound)
                }

                async fn members(&self, tenant: TenantId) -> StoreResult<Vec<Member>> {
                    let rows: Vec<(UserId, String, String, String)> = sqlx::query_as(
                        "SELECT u.id, u.email, u.display_name, m.role FROM tenant_memberships m \
                         JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 \
                         ORDER BY u.display_name, u.email",
                    )
                    .bind(tenant)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.into_iter()
                        .map(|(id, email, display_name, role)| {
                            let role = Role::parse(&role).map_err(|e| StoreError::Invalid(e.0))?;
                            Ok(Member { user: User { id, email, display_name }, role })
                        })
                        .collect()
                }

                async fn membership(&self, user: UserId, tenant_slug: &str) -> StoreResult<Option<Membership>> {
                    let row: Option<MembershipRow> = sqlx::query_as(
                        "SELECT t.id, t.slug, t.name, m.role FROM tenant_memberships m \
                         JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 AND t.slug = $2",
                    )
                    .bind(user)
                    .bind(tenant_slug)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn remove_membership(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    audit: MembershipAudit,
                ) -> StoreResult<Role> {
                    self.change_membership(tenant, user, MembershipChange::Remove, audit)
                        .await?
                        .ok_or(StoreError::NotFound)
                }

                async fn user_credentials(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
                    let row: Option<CredentialsRow> = sqlx::query_as(&format!(
                        "SELECT {CREDENTIALS_COLUMNS} FROM users WHERE email = $1"
                    ))
                    .bind(email.trim().to_lowercase())
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn user_credentials_by_id(&self, id: UserId) -> StoreResult<Option<UserCredentials>> {
                    let row: Option<CredentialsRow> = sqlx::query_as(&format!(
                        "SELECT {CREDENTIALS_COLUMNS} FROM users WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn set_password_hash(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
                    one_row_changed(sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                        .bind(user)
                        .bind(password_hash)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())?;
                    self.changes.record([Change::User { user }]);
                    Ok(())
                }

                async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
                    let rows: Vec<MembershipRow> = sqlx::query_as(
                        "SELECT t.id, t.slug, t.name, m.role FROM tenant_memberships m \
                         JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY t.name, t.id",
                    )
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
            }

            #[async_trait]
            impl RunRepository for $store {
                async fn start_run(&self, run: NewRun) -> StoreResult<StartedRun> {
                    let (_turn, mut tx) = self.begin_write().await?;
                    // The partial unique index decides: either our row goes in, or
                    // the conflicting active row is "updated" (a no-op) and returned.
                    let (id,): (RunId,) = sqlx::query_as(&format!(
                        "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, \
                         idempotency_key, status, total_items, item_ids, work_items, \
                         max_attempts, created_at, updated_at, retry_of_run_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $11, $12) \
                         ON CONFLICT (tenant_id, idempotency_key) WHERE status IN ({}) \
                         DO UPDATE SET updated_at = bulk_operation_runs.updated_at \
                         RETURNING id",
                        status_list(&RunStatus::ACTIVE)
                    ))
                    .bind(run.id)
                    .bind(run.tenant_id)
                    .bind(run.user_id)
                    .bind(run.operation.resource())
                    .bind(run.operation.action())
                    .bind(&run.idempotency_key)
                    .bind(run.work_items.len() as i64)
                    .bind(Json(&run.item_ids))
                    .bind(Json(&run.work_items))
                    .bind(run.max_attempts)
                    .bind(Timestamp::now())
                    .bind(run.retry_of)
                    .fetch_one(&mut *tx)
                    .await?;
                    let joined = id != run.id;
                    if joined {
                        // Recorded so the run shows who else asked for it.
                        sqlx::query(
                            "INSERT INTO run_joins (id, tenant_id, run_id, user_id, created_at) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(uuid::Uuid::now_v7())
                        .bind(run.tenant_id)
                        .bind(id)
                        .bind(run.user_id)
                        .bind(Timestamp::now())
                        .execute(&mut *tx)
                        .await?;
                        // The start is audited as what it became: a join of that run.
                        if let Some(audit) = &run.audit {
                            let join = NewAuditEntry {
                                action: audit_names::RUN_JOIN.to_string(),
                                resource: audit_names::RUN.to_string(),
                                resource_id: Some(id.to_string()),
                                ..audit.clone()
                            };
                            insert_audit(&mut tx, &join).await?;
                        }
                    }
                    // Only a run that was created gets its start entry (which
                    // `audit_log_id` points at) and "queued" notification, in
                    // the same transaction.
                    if !joined {
                        if let Some(audit) = &run.audit {
                            let entry = insert_audit(&mut tx, audit).await?;
                            sqlx::query("UPDATE bulk_operation_runs SET audit_log_id = $2 WHERE id = $1")
                                .bind(id)
                                .bind(entry.id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        if let Some(notification) = &run.notification {
                            insert_notification(&mut tx, notification).await?;
                        }
                        if !<$store as SqlDialect>::NOTIFY_QUEUED.is_empty() {
                            sqlx::query(<$store as SqlDialect>::NOTIFY_QUEUED).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    let run_changed = Change::Run { tenant: run.tenant_id, run: id };
                    if joined {
                        self.changes.record([run_changed]);
                    } else {
                        self.queued.notify_waiters();
                        let notified = run.notification.as_ref().map(|n| Change::Notifications {
                            tenant: n.tenant_id,
                            user: n.user_id,
                        });
                        self.changes.record(std::iter::once(run_changed).chain(notified));
                    }
                    let detail = self.run(run.tenant_id, id).await?.ok_or(StoreError::NotFound)?;
                    Ok(StartedRun { run: detail, joined })
                }

                async fn run(&self, tenant: TenantId, id: RunId) -> StoreResult<Option<RunDetail>> {
                    let row: Option<RunDetailRow> = sqlx::query_as(&format!(
                        "SELECT {RUN_DETAIL_COLUMNS} FROM bulk_operation_runs r \
                         JOIN users u ON u.id = r.user_id WHERE r.tenant_id = $1 AND r.id = $2"
                    ))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(RunDetailRow::into_domain).transpose()
                }

                async fn list_runs(
                    &self,
                    tenant: TenantId,
                    filter: &RunFilter,
                    page: PageRequest,
                ) -> StoreResult<Page<RunSummary>> {
                    let mut qb = Builder::new(format!(
                        "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
                         JOIN users u ON u.id = r.user_id WHERE r.tenant_id = "
                    ));
                    qb.push_bind(tenant);
                    push_run_filter(&mut qb, filter, true);
                    push_keyset(&mut qb, "r", &page);
                    let rows: Vec<RunSummaryRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                    let runs = rows
                        .into_iter()
                        .map(RunSummaryRow::into_domain)
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(finish_page(runs, &page, |run| Cursor { at: run.created_at, id: run.id.0 }))
                }

                async fn count_runs_by_bucket(
                    &self,
                    tenant: TenantId,
                    filter: &RunFilter,
                ) -> StoreResult<BucketCounts> {
                    // See `settled.rs`: runs that ended before the cutoff are
                    // counted once; the rest every time, through an index.
                    let cutoff = settled_cutoff(Timestamp::now());
                    let mut counts = match self.settled_counts.get(tenant, cutoff, filter) {
                        Some(counts) => counts,
                        None => {
                            let mut qb = Builder::new(
                                "SELECT r.status, COUNT(*) FROM bulk_operation_runs r WHERE r.tenant_id = ",
                            );
                            qb.push_bind(tenant);
                            qb.push(" AND r.finished_at < ");
                            qb.push_bind(cutoff);
                            push_run_filter(&mut qb, filter, false);
                            qb.push(" GROUP BY r.status");
                            let settled = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
                            self.settled_counts.remember(tenant, cutoff, filter, settled);
                            settled
                        }
                    };
                    // Not ended, or ended since the cutoff.
                    let mut qb = Builder::new("SELECT status, COUNT(*) FROM (");
                    for (index, condition) in [" AND r.finished_at IS NULL", " AND r.finished_at >= "]
                        .into_iter()
                        .enumerate()
                    {
                        if index > 0 {
                            qb.push(" UNION ALL ");
                        }
                        qb.push("SELECT r.status FROM bulk_operation_runs r WHERE r.tenant_id = ");
                        qb.push_bind(tenant);
                        qb.push(condition);
                        if index > 0 {
                            qb.push_bind(cutoff);
                        }
                        push_run_filter(&mut qb, filter, false);
                    }
                    qb.push(") recent GROUP BY status");
                    let recent = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
                    for bucket in StatusBucket::ALL {
                        counts.add(bucket, recent.get(bucket));
                    }
                    Ok(counts)
                }

                async fn transition_run(
                    &self,
                    tenant: TenantId,
                    id: RunId,
                    to: RunStatus,
                ) -> StoreResult<RunDetail> {
                    let allowed_from = RunStatus::predecessors(to);
                    if !allowed_from.is_empty() {
                        let updated = sqlx::query(&format!(
                            "UPDATE bulk_operation_runs SET status = $3, updated_at = $4, \
                             started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) ELSE started_at END, \
                             finished_at = CASE WHEN $3 IN ({active}) THEN finished_at ELSE $4 END, \
                             lease_owner = CASE WHEN $3 IN ({active}) THEN lease_owner ELSE NULL END, \
                             lease_expires_at = CASE WHEN $3 IN ({active}) THEN lease_expires_at ELSE NULL END \
                             WHERE tenant_id = $1 AND id = $2 AND status IN ({from})",
                            active = status_list(&RunStatus::ACTIVE),
                            from = status_list(&allowed_from),
                        ))
                        .bind(tenant)
                        .bind(id)
                        .bind(to.as_str())
                        .bind(Timestamp::now())
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                        if updated == 1 {
                            self.changes.record([Change::Run { tenant, run: id }]);
                            return self.run(tenant, id).await?.ok_or(StoreError::NotFound);
                        }
                    }
                    match self.run(tenant, id).await? {
                        None => Err(StoreError::NotFound),
                        Some(run) => Err(StoreError::IllegalTransition { from: run.summary.status, to }),
                    }
                }

                async fn run_joins(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunJoin>> {
                    let rows: Vec<(UserId, String, Timestamp)> = sqlx::query_as(
                        "SELECT j.user_id, u.display_name, j.created_at FROM run_joins j \
                         JOIN users u ON u.id = j.user_id \
                         WHERE j.tenant_id = $1 AND j.run_id = $2 ORDER BY j.created_at, j.id",
                    )
                    .bind(tenant)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows
                        .into_iter()
                        .map(|(user_id, user_name, at)| RunJoin { user_id, user_name, at })
                        .collect())
                }

                async fn run_attempts(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunAttempt>> {
                    let rows: Vec<RunAttemptRow> = sqlx::query_as(
                        "SELECT attempt, worker, started_at, ended_at, end_reason FROM run_attempts \
                         WHERE tenant_id = $1 AND run_id = $2 ORDER BY attempt",
                    )
                    .bind(tenant)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.into_iter().map(RunAttemptRow::into_domain).collect()
                }

                async fn failed_items(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<String>> {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT item_id FROM run_failed_items WHERE tenant_id = $1 AND run_id = $2 ORDER BY item_id",
                    )
                    .bind(tenant)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(|(item,)| item).collect())
                }

                async fn run_summaries(&self, ids: &[RunId]) -> StoreResult<Vec<RunSummary>> {
                    let mut runs = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(500) {
                        let mut qb = Builder::new(format!(
                            "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
                             JOIN users u ON u.id = r.user_id WHERE r.id IN ("
                        ));
                        push_id_list(&mut qb, chunk);
                        qb.push(")");
                        let rows: Vec<RunSummaryRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                        for row in rows {
                            runs.push(row.into_domain()?);
                        }
                    }
                    Ok(runs)
                }

                async fn retries_of(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunSummary>> {
                    let rows: Vec<RunSummaryRow> = sqlx::query_as(&format!(
                        "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
                         JOIN users u ON u.id = r.user_id \
                         WHERE r.tenant_id = $1 AND r.retry_of_run_id = $2 \
                         ORDER BY r.created_at DESC, r.id DESC LIMIT 50"
                    ))
                    .bind(tenant)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.into_iter().map(RunSummaryRow::into_domain).collect()
                }

                async fn insert_run_records(&self, runs: &[RunRecord]) -> StoreResult<()> {
                    let (_turn, mut tx) = self.begin_write().await?;
                    // Batches keep each statement well under the bind-parameter limits.
                    for chunk in runs.chunks(500) {
                        let mut qb = Builder::new(
                            "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, \
                             idempotency_key, status, total_items, processed_items, succeeded, failed, \
                             skipped, item_ids, work_items, failures, attempt, created_at, updated_at, \
                             started_at, finished_at) ",
                        );
                        qb.push_values(chunk, |mut values, run| {
                            values
                                .push_bind(run.id)
                                .push_bind(run.tenant_id)
                                .push_bind(run.user_id)
                                .push_bind(run.operation.resource())
                                .push_bind(run.operation.action())
                                .push_bind(run.idempotency_key.clone())
                                .push_bind(run.status.as_str())
                                .push_bind(run.counters.total)
                                .push_bind(run.counters.processed)
                                .push_bind(run.counters.succeeded)
                                .push_bind(run.counters.failed)
                                .push_bind(run.counters.skipped)
                                .push_bind(Json(run.item_ids.clone()))
                                .push_bind(Json(run.work_items.clone()))
                                .push_bind(Json(run.failures.clone()))
                                .push_bind(run.attempt)
                                .push_bind(run.created_at)
                                .push_bind(run.finished_at.or(run.started_at).unwrap_or(run.created_at))
                                .push_bind(run.started_at)
                                .push_bind(run.finished_at);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    let failed: Vec<(RunId, TenantId, &str)> = runs
                        .iter()
                        .flat_map(|run| {
                            run.failures
                                .iter()
                                .filter(|f| f.kind == FailureKind::Failed)
                                .filter_map(move |f| Some((run.id, run.tenant_id, f.item_id.as_deref()?)))
                        })
                        .collect();
                    insert_failed_items(&mut tx, &failed).await?;
                    tx.commit().await?;
                    // Old ended runs may have arrived: settled counts are stale.
                    self.settled_counts.forget_all();
                    Ok(())
                }
            }

            #[async_trait]
            impl FindingRepository for $store {
                async fn upsert_finding(&self, finding: NewFinding) -> StoreResult<Upserted<Finding>> {
                    let mut conn = self.pool.acquire().await?;
                    let upserted = upsert_findings(&mut conn, &[&finding], Timestamp::now()).await?;
                    drop(conn);
                    let (id, inserted) = upserted.first().copied().ok_or(StoreError::NotFound)?;
                    let value = self.finding(finding.tenant_id, id).await?.ok_or(StoreError::NotFound)?;
                    Ok(Upserted { value, inserted })
                }

                async fn finding(&self, tenant: TenantId, id: FindingId) -> StoreResult<Option<Finding>> {
                    let row: Option<FindingRow> = sqlx::query_as(&format!(
                        "SELECT {FINDING_COLUMNS} FROM findings WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn list_findings(
                    &self,
                    tenant: TenantId,
                    filter: &FindingFilter,
                    page: PageRequest,
                ) -> StoreResult<Page<Finding>> {
                    let mut qb = Builder::new(format!(
                        "SELECT {FINDING_COLUMNS} FROM findings f WHERE f.tenant_id = "
                    ));
                    qb.push_bind(tenant);
                    if let Some(status) = filter.status {
                        qb.push(" AND f.status = ");
                        qb.push_bind(status.as_str());
                    }
                    if let Some(scope) = &filter.scope_key {
                        qb.push(" AND f.scope_key = ");
                        qb.push_bind(scope.clone());
                    }
                    if let Some(subject_type) = &filter.subject_type {
                        qb.push(" AND f.subject_type = ");
                        qb.push_bind(subject_type.clone());
                    }
                    if let Some(baseline) = filter.baseline {
                        qb.push(" AND f.baseline_run_id = ");
                        qb.push_bind(baseline);
                    }
                    if let Some(current) = filter.current {
                        qb.push(" AND f.current_run_id = ");
                        qb.push_bind(current);
                    }
                    if let Some(run) = filter.produced_by {
                        qb.push(" AND f.produced_by_run_id = ");
                        qb.push_bind(run);
                    }
                    push_keyset(&mut qb, "f", &page);
                    let rows: Vec<FindingRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                    let findings = rows.into_iter().map(Finding::from).collect();
                    Ok(finish_page(findings, &page, |f| Cursor { at: f.created_at, id: f.id.0 }))
                }

                async fn acknowledge_findings(
                    &self,
                    tenant: TenantId,
                    ids: &[FindingId],
                    by: UserId,
                ) -> StoreResult<u64> {
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let now = Timestamp::now();
                    let (_turn, mut tx) = self.begin_write().await?;
                    let mut changed: Vec<FindingId> = Vec::with_capacity(ids.len());
                    // Batches keep each statement well under the bind-parameter limits.
                    for chunk in ids.chunks(1_000) {
                        let mut qb = Builder::new(
                            "UPDATE findings SET status = 'acknowledged', acknowledged_by = ",
                        );
                        qb.push_bind(by);
                        qb.push(", acknowledged_at = ");
                        qb.push_bind(now);
                        qb.push(", updated_at = ");
                        qb.push_bind(now);
                        qb.push(" WHERE status = 'new' AND tenant_id = ");
                        qb.push_bind(tenant);
                        qb.push(" AND id IN (");
                        push_id_list(&mut qb, chunk);
                        qb.push(") RETURNING id");
                        let rows: Vec<(FindingId,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                        changed.extend(rows.into_iter().map(|(id,)| id));
                    }
                    // One entry per finding that changed; one already
                    // acknowledged (or another tenant's) was not acted on.
                    for chunk in changed.chunks(1_000) {
                        let mut qb = Builder::new(
                            "INSERT INTO audit_logs (id, tenant_id, user_id, action, resource, resource_id, \
                             metadata, created_at) ",
                        );
                        qb.push_values(chunk, |mut values, finding| {
                            values
                                .push_bind(AuditLogId::generate())
                                .push_bind(tenant)
                                .push_bind(by)
                                .push_bind(audit_names::FINDING_ACKNOWLEDGE)
                                .push_bind(audit_names::FINDING)
                                .push_bind(finding.to_string())
                                .push_bind(Json(serde_json::json!({})))
                                .push_bind(now);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(changed.len() as u64)
                }
            }

            #[async_trait]
            impl InventoryRepository for $store {
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
                        .map(|(selection_hash, completed_syncs)| InventoryScope { selection_hash, completed_syncs })
                        .collect())
                }

                async fn inventory_items(
                    &self,
                    tenant: TenantId,
                    sync: InventorySyncRunId,
                ) -> StoreResult<Vec<InventoryItem>> {
                    let rows: Vec<InventoryItemRow> = sqlx::query_as(&format!(
                        "SELECT {INVENTORY_ITEM_COLUMNS} FROM inventory_items \
                         WHERE tenant_id = $1 AND sync_run_id = $2 ORDER BY subject_type, external_id"
                    ))
                    .bind(tenant)
                    .bind(sync)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
            }

            #[async_trait]
            impl BackupRepository for $store {
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

                async fn policies_by_ids(&self, tenant: TenantId, ids: &[PolicyId]) -> StoreResult<Vec<Policy>> {
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
                    self.backup_set(tenant, id).await?.ok_or(StoreError::NotFound)
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

                async fn backup_set(&self, tenant: TenantId, id: BackupSetId) -> StoreResult<Option<BackupSet>> {
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
                    let outcome = insert_backup_set_items(&mut conn, &[&item]).await?.pop().flatten();
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

            #[async_trait]
            impl NotificationRepository for $store {
                async fn create_notification(&self, notification: NewNotification) -> StoreResult<Notification> {
                    let created = insert_notification(&mut *self.pool.acquire().await?, &notification).await?;
                    self.changes.record([Change::Notifications {
                        tenant: notification.tenant_id,
                        user: notification.user_id,
                    }]);
                    Ok(created)
                }

                async fn list_notifications(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    page: PageRequest,
                ) -> StoreResult<Page<Notification>> {
                    let mut qb = Builder::new(format!(
                        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE n.tenant_id = "
                    ));
                    qb.push_bind(tenant);
                    qb.push(" AND n.user_id = ");
                    qb.push_bind(user);
                    push_keyset(&mut qb, "n", &page);
                    let rows: Vec<NotificationRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                    let items = rows.into_iter().map(Notification::from).collect();
                    Ok(finish_page(items, &page, |n| Cursor { at: n.created_at, id: n.id.0 }))
                }

                async fn unread_count(&self, tenant: TenantId, user: UserId) -> StoreResult<i64> {
                    let (count,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM notifications \
                         WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
                    )
                    .bind(tenant)
                    .bind(user)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(count)
                }

                async fn mark_read(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    id: NotificationId,
                ) -> StoreResult<Notification> {
                    let row: NotificationRow = sqlx::query_as(&format!(
                        "UPDATE notifications SET read_at = COALESCE(read_at, $4) \
                         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 RETURNING {NOTIFICATION_COLUMNS}"
                    ))
                    .bind(tenant)
                    .bind(user)
                    .bind(id)
                    .bind(Timestamp::now())
                    .fetch_one(&self.pool)
                    .await?;
                    self.changes.record([Change::Notifications { tenant, user }]);
                    Ok(row.into())
                }

                async fn mark_all_read(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
                    let marked = sqlx::query(
                        "UPDATE notifications SET read_at = $3 \
                         WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
                    )
                    .bind(tenant)
                    .bind(user)
                    .bind(Timestamp::now())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if marked > 0 {
                        self.changes.record([Change::Notifications { tenant, user }]);
                    }
                    Ok(marked)
                }
            }

            #[async_trait]
            impl AuditRepository for $store {
                async fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
                    insert_audit(&mut *self.pool.acquire().await?, &entry).await
                }

                async fn audit_entry(&self, tenant: TenantId, id: AuditLogId) -> StoreResult<Option<AuditEntry>> {
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

            #[async_trait]
            impl SignInLimitRepository for $store {
                async fn reserve_sign_in(
                    &self,
                    rules: &[LimitRule],
                    window: std::time::Duration,
                    now: Timestamp,
                ) -> StoreResult<Result<(), std::time::Duration>> {
                    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
                    // Rows are locked in one order, so concurrent reservations
                    // sharing keys cannot deadlock (PostgreSQL).
                    let mut rules: Vec<&LimitRule> = rules.iter().collect();
                    rules.sort_by(|a, b| a.key.cmp(&b.key));
                    rules.dedup_by(|a, b| a.key == b.key);
                    let (_turn, mut tx) = self.begin_write().await?;
                    for rule in rules {
                        // Allowed when the window is over (it starts again), under
                        // the limit, or past the limit but a spacing after the
                        // last attempt; a refused attempt changes nothing.
                        let reserved: Option<(i64,)> = sqlx::query_as(
                            "INSERT INTO sign_in_limits (key, window_ends, attempts, next_at) \
                             VALUES ($1, $2 + $3, 1, $2 + $5) \
                             ON CONFLICT (key) DO UPDATE SET \
                               attempts = CASE WHEN sign_in_limits.window_ends <= $2 THEN 1 \
                                          ELSE sign_in_limits.attempts + 1 END, \
                               window_ends = CASE WHEN sign_in_limits.window_ends <= $2 THEN $2 + $3 \
                                             ELSE sign_in_limits.window_ends END, \
                               next_at = $2 + $5 \
                             WHERE sign_in_limits.window_ends <= $2 OR sign_in_limits.attempts < $4 \
                               OR sign_in_limits.next_at <= $2 \
                             RETURNING attempts",
                        )
                        .bind(&rule.key)
                        .bind(now.0)
                        .bind(micros(window))
                        .bind(rule.limit)
                        .bind(micros(rule.spacing))
                        .fetch_optional(&mut *tx)
                        .await?;
                        if reserved.is_none() {
                            let (window_ends, next_at): (i64, i64) = sqlx::query_as(
                                "SELECT window_ends, next_at FROM sign_in_limits WHERE key = $1",
                            )
                            .bind(&rule.key)
                            .fetch_one(&mut *tx)
                            .await?;
                            tx.rollback().await?;
                            let wait = window_ends.min(next_at).saturating_sub(now.0).max(0);
                            return Ok(Err(std::time::Duration::from_micros(wait.unsigned_abs())));
                        }
                    }
                    tx.commit().await?;
                    Ok(Ok(()))
                }

                async fn release_sign_in(&self, keys: &[String]) -> StoreResult<()> {
                    for key in keys {
                        sqlx::query("UPDATE sign_in_limits SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0")
                            .bind(key)
                            .execute(&self.pool)
                            .await?;
                    }
                    Ok(())
                }

                async fn prune_sign_in_limits(&self, now: Timestamp) -> StoreResult<u64> {
                    // Rows another transaction holds are left for the next
                    // prune (PostgreSQL), so pruning never waits on sign-ins.
                    Ok(sqlx::query(&format!(
                        "DELETE FROM sign_in_limits WHERE key IN (SELECT key FROM sign_in_limits \
                         WHERE window_ends <= $1 LIMIT 10000{})",
                        <$store as SqlDialect>::SKIP_LOCKED
                    ))
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
                }
            }

            /// Running runs a worker may take over: their lease was released
            /// (or they never had one), attempts remain, no abort asked.
            const ORPHANED_RUNS: &str = "status = 'running' AND lease_owner IS NULL \
                AND attempt < max_attempts AND cancel_requested_at IS NULL";

            fn lease_expiry(now: Timestamp, lease_for: std::time::Duration) -> Timestamp {
                now.plus_millis(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 1_000))
            }

            #[async_trait]
            impl QueueRepository for $store {
                async fn claim_runs(
                    &self,
                    owner: &str,
                    lease_for: std::time::Duration,
                    limit: ClaimLimit,
                ) -> StoreResult<Vec<ClaimedRun>> {
                    let now = Timestamp::now();
                    let _turn = self.write_turn().await;
                    // The oldest pending runs and running runs that lost their
                    // worker (rescue released the lease), as many as `limit`
                    // allows: the first always, the next while their items
                    // left still fit. A taken-over run stays `running`.
                    let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
                        "WITH candidates AS (\
                           SELECT * FROM (SELECT id, created_at, total_items - processed_items AS items_left \
                             FROM bulk_operation_runs WHERE status = 'pending' \
                             ORDER BY created_at, id LIMIT $4{skip}) queued \
                           UNION ALL \
                           SELECT * FROM (SELECT id, created_at, total_items - processed_items AS items_left \
                             FROM bulk_operation_runs WHERE {orphaned} \
                             ORDER BY created_at, id LIMIT $4{skip}) orphaned), \
                         picked AS (\
                           SELECT id FROM (SELECT id, \
                             ROW_NUMBER() OVER (ORDER BY created_at, id) AS position, \
                             SUM(items_left) OVER (ORDER BY created_at, id) AS items_so_far \
                           FROM candidates) ranked WHERE position = 1 OR items_so_far <= $5) \
                         UPDATE bulk_operation_runs SET status = 'running', attempt = attempt + 1, \
                         lease_owner = $1, lease_expires_at = $2, heartbeat_at = $3, \
                         started_at = COALESCE(started_at, $3), updated_at = $3 \
                         WHERE id IN (SELECT id FROM picked) AND (status = 'pending' OR ({orphaned})) \
                         RETURNING {CLAIM_COLUMNS}",
                        skip = <$store as SqlDialect>::SKIP_LOCKED,
                        orphaned = ORPHANED_RUNS,
                    ))
                    .bind(owner)
                    .bind(lease_expiry(now, lease_for))
                    .bind(now)
                    .bind(i64::try_from(limit.runs.max(1)).unwrap_or(i64::MAX))
                    .bind(i64::try_from(limit.items).unwrap_or(i64::MAX))
                    .fetch_all(&self.engine_pool)
                    .await?;
                    let mut claimed = rows
                        .into_iter()
                        .map(|row| row.into_domain(now))
                        .collect::<StoreResult<Vec<_>>>()?;
                    // RETURNING keeps no order; the queue's is oldest first.
                    claimed.sort_by_key(|run| (run.created_at, run.lease.run_id));
                    self.changes.record(claimed.iter().map(|run| run.lease.changed()));
                    Ok(claimed)
                }

                async fn reclaim_runs(
                    &self,
                    owner: &str,
                    lease_for: std::time::Duration,
                ) -> StoreResult<Vec<ClaimedRun>> {
                    let now = Timestamp::now();
                    let _turn = self.write_turn().await;
                    // The same claim, so the same attempt: nobody else ever
                    // saw it, and rescue moved on from any it reached first.
                    let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
                        "UPDATE bulk_operation_runs SET lease_expires_at = $2, heartbeat_at = $3, updated_at = $3 \
                         WHERE status = 'running' AND lease_owner = $1 RETURNING {CLAIM_COLUMNS}"
                    ))
                    .bind(owner)
                    .bind(lease_expiry(now, lease_for))
                    .bind(now)
                    .fetch_all(&self.engine_pool)
                    .await?;
                    let mut held = rows
                        .into_iter()
                        .map(|row| row.into_domain(now))
                        .collect::<StoreResult<Vec<_>>>()?;
                    held.sort_by_key(|run| (run.created_at, run.lease.run_id));
                    Ok(held)
                }

                async fn record_progress(
                    &self,
                    lease_for: std::time::Duration,
                    progress: &[RunProgress],
                ) -> StoreResult<Vec<ProgressOutcome>> {
                    let now = Timestamp::now();
                    let (_turn, mut tx) = self.begin_engine_write().await?;
                    // The fence, read first and held to the commit (row locks
                    // on PostgreSQL, the write transaction on SQLite): a run
                    // whose claim moved on is refused before anything of it is
                    // written, and the other runs of the batch go ahead. A
                    // batch the run already counts (the commit of an earlier
                    // try landed but its answer was lost) is reported as
                    // recorded and not written again.
                    let ids: Vec<RunId> = progress.iter().map(|run| run.lease.run_id).collect();
                    let mut qb = Builder::new(format!(
                        "SELECT {RUN_STATE_COLUMNS} FROM bulk_operation_runs WHERE id IN ("
                    ));
                    push_id_list(&mut qb, &ids);
                    qb.push(format!(") ORDER BY id{}", <$store as SqlDialect>::LOCK_ROWS));
                    let rows: Vec<RunStateRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    let mut states: std::collections::HashMap<RunId, RunStateRow> =
                        rows.into_iter().map(|row| (row.id, row)).collect();
                    // Filled in input order: refusals now, the rest once written.
                    let mut outcomes: Vec<Option<ProgressOutcome>> = Vec::with_capacity(progress.len());
                    let mut accepted = Vec::new();
                    for (position, run) in progress.iter().enumerate() {
                        let state = states
                            .remove(&run.lease.run_id)
                            .filter(|state| state.attempt == run.lease.attempt);
                        outcomes.push(match state {
                            None => Some(ProgressOutcome::LeaseLost),
                            Some(state) if already_recorded(&state, run) => {
                                Some(ProgressOutcome::Recorded(state.status))
                            }
                            Some(state) if state.status != RunStatus::Running
                                || state.counters().processed != run.recorded_before =>
                            {
                                Some(ProgressOutcome::LeaseLost)
                            }
                            Some(state) if state.abort_requested => Some(ProgressOutcome::AbortRequested),
                            Some(state) => {
                                accepted.push((position, run, state));
                                None
                            }
                        });
                    }
                    if accepted.is_empty() {
                        return Ok(outcomes.into_iter().flatten().collect());
                    }

                    // Artifacts of every accepted run, a few statements for all.
                    let findings: Vec<&NewFinding> = accepted
                        .iter()
                        .flat_map(|(_, run, _)| &run.items)
                        .filter_map(|item| match &item.outcome {
                            ItemOutcome::Succeeded(Some(Artifact::Finding(finding))) => Some(finding),
                            _ => None,
                        })
                        .collect();
                    upsert_findings(&mut tx, &findings, now).await?;
                    let additions: Vec<&NewBackupSetItem> = accepted
                        .iter()
                        .flat_map(|(_, run, _)| &run.items)
                        .filter_map(|item| match &item.outcome {
                            ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(add))) => Some(add),
                            _ => None,
                        })
                        .collect();
                    let mut added = insert_backup_set_items(&mut tx, &additions).await?.into_iter();

                    let mut finished = Vec::new();
                    let mut changed = Vec::new();
                    let mut failed_items = Vec::new();
                    let mut advanced = Vec::with_capacity(accepted.len());
                    for (position, run, state) in accepted {
                        let mut counters = state.counters();
                        let mut failures = state.failures.0.clone();
                        for item in &run.items {
                            let item_id = || Some(item.item_id.clone());
                            let entry = match &item.outcome {
                                ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(_))) => {
                                    match added.next().flatten() {
                                        Some(AddOutcome::Added(_)) => None,
                                        Some(AddOutcome::AlreadyPresent) => Some(FailureEntry::skipped(
                                            item_id(),
                                            ReasonCode::AlreadyPresent,
                                            "the backup set already holds this policy",
                                        )),
                                        None => Some(FailureEntry::failed(
                                            item_id(),
                                            ReasonCode::PolicyNotFound,
                                            "the policy does not exist in this tenant",
                                        )),
                                    }
                                }
                                ItemOutcome::Succeeded(_) => None,
                                ItemOutcome::Failed { reason_code, reason } => {
                                    Some(FailureEntry::failed(item_id(), *reason_code, reason))
                                }
                                ItemOutcome::Skipped { reason_code, reason } => {
                                    Some(FailureEntry::skipped(item_id(), *reason_code, reason))
                                }
                            };
                            if entry.as_ref().is_some_and(|e| e.kind == FailureKind::Failed) {
                                failed_items.push((run.lease.run_id, run.lease.tenant_id, item.item_id.as_str()));
                            }
                            counters.record_item(&mut failures, entry);
                        }
                        if !counters.is_consistent() {
                            return Err(StoreError::Invalid(format!(
                                "progress of run {} would count {} of {} items",
                                run.lease.run_id, counters.processed, counters.total
                            )));
                        }
                        if let BatchEnd::BrokeDown(entry) = &run.end {
                            record_run_failure(&mut failures, entry.clone());
                        }
                        let finish = run.end != BatchEnd::Continues;
                        let status = if finish {
                            RunStatus::for_outcome(&counters, matches!(run.end, BatchEnd::BrokeDown(_)))
                        } else {
                            RunStatus::Running
                        };
                        let (lease_expires_at, finished_at) = if finish {
                            (None, Some(now))
                        } else {
                            (Some(lease_expiry(now, lease_for)), None)
                        };
                        changed.push(run.lease.changed());
                        if finish {
                            finished.push(state.advanced(status, counters, failures.clone()));
                        }
                        advanced.push((&run.lease, run.recorded_before, counters, failures, status, lease_expires_at, finished_at));
                        outcomes[position] = Some(ProgressOutcome::Recorded(status));
                    }
                    // Every run's counters in one statement. Still fenced,
                    // though the lock above already holds each run as read:
                    // the statement says what it relies on.
                    for chunk in advanced.chunks(1_000) {
                        let mut qb = Builder::new(
                            "UPDATE bulk_operation_runs SET processed_items = v.column3, succeeded = v.column4, \
                             failed = v.column5, skipped = v.column6, failures = v.column7, status = v.column8, \
                             updated_at = v.column9, heartbeat_at = v.column9, lease_expires_at = v.column10, \
                             finished_at = v.column11 FROM (",
                        );
                        qb.push_values(chunk, |mut values, (lease, before, counters, failures, status, expires, finished)| {
                            values
                                .push_bind(lease.run_id)
                                .push_bind(lease.attempt)
                                .push_bind(counters.processed)
                                .push_bind(counters.succeeded)
                                .push_bind(counters.failed)
                                .push_bind(counters.skipped)
                                .push_bind(Json(failures))
                                .push_bind(status.as_str())
                                .push_bind(now)
                                .push_bind(*expires)
                                .push_bind(*finished)
                                .push_bind(*before);
                        });
                        qb.push(
                            ") AS v WHERE bulk_operation_runs.id = v.column1 \
                             AND bulk_operation_runs.attempt = v.column2 \
                             AND bulk_operation_runs.processed_items = v.column12 \
                             AND bulk_operation_runs.status = 'running' \
                             AND bulk_operation_runs.cancel_requested_at IS NULL",
                        );
                        let written = qb.build().execute(&mut *tx).await?.rows_affected();
                        if written != chunk.len() as u64 {
                            return Err(StoreError::Invalid(format!(
                                "{written} of {} locked runs took their progress",
                                chunk.len()
                            )));
                        }
                    }
                    insert_failed_items(&mut tx, &failed_items).await?;
                    changed.extend(notify_finished(&mut tx, &finished).await?);
                    tx.commit().await?;
                    self.changes.record(changed);
                    Ok(outcomes.into_iter().flatten().collect())
                }

                async fn renew_lease(
                    &self,
                    lease: &Lease,
                    lease_for: std::time::Duration,
                ) -> StoreResult<LeaseState> {
                    let now = Timestamp::now();
                    let _turn = self.write_turn().await;
                    let abort: Option<(bool,)> = sqlx::query_as(
                        "UPDATE bulk_operation_runs SET lease_expires_at = $3, heartbeat_at = $4 \
                         WHERE id = $1 AND attempt = $2 AND status = 'running' \
                         RETURNING cancel_requested_at IS NOT NULL",
                    )
                    .bind(lease.run_id)
                    .bind(lease.attempt)
                    .bind(lease_expiry(now, lease_for))
                    .bind(now)
                    .fetch_optional(&self.engine_pool)
                    .await?;
                    Ok(match abort {
                        None => LeaseState::Lost,
                        Some((true,)) => LeaseState::AbortRequested,
                        Some((false,)) => LeaseState::Held,
                    })
                }

                async fn finish_aborted(&self, lease: &Lease) -> StoreResult<bool> {
                    let now = Timestamp::now();
                    let (_turn, mut tx) = self.begin_engine_write().await?;
                    let row: Option<RunStateRow> = sqlx::query_as(&format!(
                        "UPDATE bulk_operation_runs SET status = 'aborted', finished_at = $3, updated_at = $3, \
                         lease_expires_at = NULL WHERE id = $1 AND attempt = $2 AND status = 'running' \
                         RETURNING {RUN_STATE_COLUMNS}"
                    ))
                    .bind(lease.run_id)
                    .bind(lease.attempt)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(run) = row else { return Ok(false) };
                    let notified = notify_finished(&mut tx, std::slice::from_ref(&run)).await?;
                    tx.commit().await?;
                    self.changes.record(std::iter::once(lease.changed()).chain(notified));
                    Ok(true)
                }

                async fn rescue_expired(&self) -> StoreResult<RescueReport> {
                    let now = Timestamp::now();
                    let mut report = RescueReport::default();
                    let mut changed = Vec::new();
                    let (_turn, mut tx) = self.begin_engine_write().await?;
                    // Leases that lapsed, and released runs no worker may take
                    // over (out of attempts, or their abort requested).
                    let expired: Vec<RunStateRow> = sqlx::query_as(&format!(
                        "SELECT {RUN_STATE_COLUMNS} FROM bulk_operation_runs \
                         WHERE status = 'running' AND ((lease_owner IS NOT NULL \
                           AND (lease_expires_at IS NULL OR lease_expires_at < $1)) \
                           OR (lease_owner IS NULL AND NOT ({ORPHANED_RUNS}))) \
                         ORDER BY lease_expires_at NULLS FIRST LIMIT 200{skip}",
                        skip = <$store as SqlDialect>::SKIP_LOCKED,
                    ))
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                    for run in expired {
                        // Fenced like a worker's write: a heartbeat that renewed
                        // the lease meanwhile wins.
                        const FENCE: &str = "WHERE id = $1 AND attempt = $2 AND status = 'running' \
                            AND (lease_expires_at IS NULL OR lease_expires_at < $3)";
                        let decision = LostLease::decide(run.abort_requested, run.attempt, run.max_attempts);
                        if decision == LostLease::Release {
                            // It stays running: the next claim takes it over
                            // as attempt + 1 (the trigger ends this attempt).
                            let released = sqlx::query(&format!(
                                "UPDATE bulk_operation_runs SET lease_owner = NULL, \
                                 lease_expires_at = NULL, heartbeat_at = NULL, updated_at = $3 {FENCE}"
                            ))
                            .bind(run.id)
                            .bind(run.attempt)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            report.released += released;
                            if released == 1 {
                                changed.push(run.changed());
                            }
                            continue;
                        }
                        let mut failures = run.failures.0.clone();
                        let status = match decision.failure(run.attempt) {
                            Some(lost) => {
                                record_run_failure(&mut failures, lost);
                                RunStatus::Failed
                            }
                            None => RunStatus::Aborted,
                        };
                        let ended = sqlx::query(&format!(
                            "UPDATE bulk_operation_runs SET status = $4, failures = $5, finished_at = $3, \
                             updated_at = $3, lease_owner = NULL, lease_expires_at = NULL {FENCE}"
                        ))
                        .bind(run.id)
                        .bind(run.attempt)
                        .bind(now)
                        .bind(status.as_str())
                        .bind(Json(&failures))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if ended == 1 {
                            changed.push(run.changed());
                            let counters = run.counters();
                            changed.extend(
                                notify_finished(&mut tx, &[run.advanced(status, counters, failures)]).await?,
                            );
                            match status {
                                RunStatus::Aborted => report.aborted += 1,
                                _ => report.failed += 1,
                            }
                        }
                    }
                    if report.released > 0 && !<$store as SqlDialect>::NOTIFY_QUEUED.is_empty() {
                        sqlx::query(<$store as SqlDialect>::NOTIFY_QUEUED).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    if report.released > 0 {
                        self.queued.notify_waiters();
                    }
                    self.changes.record(changed);
                    Ok(report)
                }

                async fn request_abort(
                    &self,
                    tenant: TenantId,
                    id: RunId,
                    audit: NewAuditEntry,
                ) -> StoreResult<AbortOutcome> {
                    let now = Timestamp::now();
                    let (_turn, mut tx) = self.begin_write().await?;
                    let pending: Option<RunStateRow> = sqlx::query_as(&format!(
                        "UPDATE bulk_operation_runs SET status = 'aborted', cancel_requested_at = $3, \
                         finished_at = $3, updated_at = $3 \
                         WHERE tenant_id = $1 AND id = $2 AND status = 'pending' RETURNING {RUN_STATE_COLUMNS}"
                    ))
                    .bind(tenant)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let mut changed = vec![Change::Run { tenant, run: id }];
                    let outcome = if let Some(run) = pending {
                        changed.extend(notify_finished(&mut tx, std::slice::from_ref(&run)).await?);
                        AbortOutcome::Aborted
                    } else {
                        let flagged = sqlx::query(
                            "UPDATE bulk_operation_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $3), \
                             updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
                        )
                        .bind(tenant)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if flagged == 0 {
                            let status: Option<(String,)> = sqlx::query_as(
                                "SELECT status FROM bulk_operation_runs WHERE tenant_id = $1 AND id = $2",
                            )
                            .bind(tenant)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                            let (status,) = status.ok_or(StoreError::NotFound)?;
                            let status = RunStatus::parse(&status).map_err(|e| StoreError::Invalid(e.0))?;
                            return Ok(AbortOutcome::AlreadyFinished(status));
                        }
                        AbortOutcome::Requested
                    };
                    insert_audit(&mut tx, &audit).await?;
                    tx.commit().await?;
                    self.changes.record(changed);
                    Ok(outcome)
                }
            }
        };
    };
}
pub(crate) use impl_sql_repositories;
