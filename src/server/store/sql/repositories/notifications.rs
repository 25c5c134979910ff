//! The notification feed: a run's "queued" notice (`insert_notification`,
//! with the start), "completed" notices (`notify_finished`, with the
//! change that ends the run) and "stalled" notices (`notify_stalled`, with
//! the flag), and the reader's side.
//!
//! Here: the in-transaction writers (for the runs, the queue and the
//! progress) and `NotificationRepository`.

use super::{Builder, Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{NotificationRow, RunStateRow, NOTIFICATION_COLUMNS};
use crate::server::store::sql::{finish_page, push_id_list, push_keyset};
use crate::server::store::{
    Change, NewNotification, NotificationRepository, StoreError, StoreResult,
};
use async_trait::async_trait;
use sqlx::types::Json;
use std::collections::HashMap;

pub(super) async fn insert_notification(
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

/// Writes the "completed" notification of each run that just
/// ended to everyone who asked for it, once each: its initiator,
/// every other user whose start joined it, its watchers and, for a
/// run `Subscription::FailedOrPartial` covers, the tenant's admins
/// subscribed to it (the role read now, so a demoted admin is left
/// out). Returns the changes those notifications make, for live views.
pub(super) async fn notify_finished(
    conn: &mut Connection,
    runs: &[RunStateRow],
) -> StoreResult<Vec<Change>> {
    let mut asked = asked_for(conn, runs, |run| {
        Subscription::FailedOrPartial.covers(run.status)
    })
    .await?;
    let mut notifications = Vec::new();
    for run in runs {
        let notice = run.finished_notice()?;
        notifications.extend(
            asked
                .remove(&run.id)
                .unwrap_or_default()
                .into_iter()
                .map(|user| NewNotification {
                    tenant_id: run.tenant_id,
                    user_id: user,
                    kind: NotificationKind::RunCompleted,
                    notice: notice.clone(),
                }),
        );
    }
    insert_notifications(conn, &notifications).await
}

/// Writes the "stalled" notification of a run to whoever asked for it:
/// its initiator, joiners and watchers (a subscription is to endings).
pub(super) async fn notify_stalled(
    conn: &mut Connection,
    run: &RunStateRow,
    notice: RunNotice,
) -> StoreResult<Vec<Change>> {
    let asked = asked_for(conn, std::slice::from_ref(run), |_| false).await?;
    let notifications: Vec<NewNotification> = asked
        .into_values()
        .flatten()
        .map(|user| NewNotification {
            tenant_id: run.tenant_id,
            user_id: user,
            kind: NotificationKind::RunStalled,
            notice: notice.clone(),
        })
        .collect();
    insert_notifications(conn, &notifications).await
}

/// Who asked for each run, once each, its initiator first: every other
/// user whose start joined it, its watchers and, for the runs `subscribed`
/// picks, the tenant's admins subscribed to failed or partial runs. One
/// query per thousand runs.
async fn asked_for(
    conn: &mut Connection,
    runs: &[RunStateRow],
    subscribed: impl Fn(&RunStateRow) -> bool,
) -> StoreResult<HashMap<RunId, Vec<UserId>>> {
    let mut asked: HashMap<RunId, Vec<UserId>> =
        runs.iter().map(|run| (run.id, vec![run.user_id])).collect();
    // At most three binds a run.
    for chunk in runs.chunks(1_000) {
        let ids: Vec<RunId> = chunk.iter().map(|run| run.id).collect();
        let of_interest: Vec<RunId> = chunk
            .iter()
            .filter(|run| subscribed(run))
            .map(|run| run.id)
            .collect();
        let mut qb = Builder::new("SELECT run_id, user_id FROM run_joins WHERE run_id IN (");
        push_id_list(&mut qb, &ids);
        qb.push(") UNION SELECT run_id, user_id FROM run_watchers WHERE run_id IN (");
        push_id_list(&mut qb, &ids);
        qb.push(")");
        if !of_interest.is_empty() {
            qb.push(format!(
                " UNION SELECT r.id, s.user_id FROM bulk_operation_runs r \
                 JOIN notification_subscriptions s \
                 ON s.tenant_id = r.tenant_id AND s.kind = '{}' \
                 JOIN tenant_memberships m \
                 ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id AND m.role = '{}' \
                 WHERE r.id IN (",
                Subscription::FailedOrPartial.as_str(),
                Role::Admin.as_str()
            ));
            push_id_list(&mut qb, &of_interest);
            qb.push(")");
        }
        let rows: Vec<(RunId, UserId)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for (run, user) in rows {
            let users = asked.entry(run).or_default();
            if !users.contains(&user) {
                users.push(user);
            }
        }
    }
    Ok(asked)
}

/// Inserts notifications in a few statements; returns the changes they
/// make, for live views.
async fn insert_notifications(
    conn: &mut Connection,
    notifications: &[NewNotification],
) -> StoreResult<Vec<Change>> {
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
        .map(|n| Change::Notifications {
            tenant: n.tenant_id,
            user: n.user_id,
        })
        .collect())
}

#[async_trait]
impl NotificationRepository for Store {
    async fn create_notification(
        &self,
        notification: NewNotification,
    ) -> StoreResult<Notification> {
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
        filter: &NotificationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Notification>> {
        let mut qb = Builder::new(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE n.tenant_id = "
        ));
        qb.push_bind(tenant);
        qb.push(" AND n.user_id = ");
        qb.push_bind(user);
        if let Some(kind) = filter.kind {
            qb.push(" AND n.kind = ");
            qb.push_bind(kind.as_str());
        }
        if filter.unread_only {
            qb.push(" AND n.read_at IS NULL");
        }
        push_keyset(&mut qb, "n", &page);
        let rows: Vec<NotificationRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        let items = rows.into_iter().map(Notification::from).collect();
        Ok(finish_page(items, &page, |n| Cursor {
            at: n.created_at,
            id: n.id.0,
        }))
    }

    async fn unread_count(&self, tenant: TenantId, user: UserId) -> StoreResult<i64> {
        // Counts no further than the cap: a read of at most that many
        // index entries, however many are unread.
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notifications \
             WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL LIMIT $3) AS unread",
        )
        .bind(tenant)
        .bind(user)
        .bind(UNREAD_COUNT_CAP)
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
        self.changes
            .record([Change::Notifications { tenant, user }]);
        Ok(row.into())
    }

    async fn mark_all_read(
        &self,
        tenant: TenantId,
        user: UserId,
        kind: Option<NotificationKind>,
    ) -> StoreResult<u64> {
        let mut qb = Builder::new("UPDATE notifications SET read_at = ");
        qb.push_bind(Timestamp::now());
        qb.push(" WHERE tenant_id = ");
        qb.push_bind(tenant);
        qb.push(" AND user_id = ");
        qb.push_bind(user);
        qb.push(" AND read_at IS NULL");
        if let Some(kind) = kind {
            qb.push(" AND kind = ");
            qb.push_bind(kind.as_str());
        }
        let marked = qb.build().execute(&self.pool).await?.rows_affected();
        if marked > 0 {
            self.changes
                .record([Change::Notifications { tenant, user }]);
        }
        Ok(marked)
    }

    async fn watch_run(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<()> {
        // Taken from the run itself, so only a run of the tenant gets a
        // watcher; a second watch leaves the first as it was.
        let watched: Option<(RunId,)> = sqlx::query_as(
            "INSERT INTO run_watchers (tenant_id, run_id, user_id, created_at) \
             SELECT r.tenant_id, r.id, $3, $4 FROM bulk_operation_runs r \
             WHERE r.tenant_id = $1 AND r.id = $2 \
             ON CONFLICT (run_id, user_id) DO UPDATE SET created_at = run_watchers.created_at \
             RETURNING run_id",
        )
        .bind(tenant)
        .bind(run)
        .bind(user)
        .bind(Timestamp::now())
        .fetch_optional(&self.pool)
        .await?;
        watched.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn unwatch_run(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<()> {
        let removed = sqlx::query(
            "DELETE FROM run_watchers WHERE tenant_id = $1 AND run_id = $2 AND user_id = $3",
        )
        .bind(tenant)
        .bind(run)
        .bind(user)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if removed == 0 && !self.run_exists(tenant, run).await? {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn is_watching(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<bool> {
        let watching: Option<(RunId,)> = sqlx::query_as(
            "SELECT run_id FROM run_watchers WHERE tenant_id = $1 AND run_id = $2 AND user_id = $3",
        )
        .bind(tenant)
        .bind(run)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(watching.is_some())
    }

    async fn set_subscription(
        &self,
        tenant: TenantId,
        user: UserId,
        subscription: Subscription,
        subscribed: bool,
    ) -> StoreResult<()> {
        let query = if subscribed {
            sqlx::query(
                "INSERT INTO notification_subscriptions (tenant_id, user_id, kind, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id, kind) DO NOTHING",
            )
            .bind(tenant)
            .bind(user)
            .bind(subscription.as_str())
            .bind(Timestamp::now())
        } else {
            sqlx::query(
                "DELETE FROM notification_subscriptions \
                 WHERE tenant_id = $1 AND user_id = $2 AND kind = $3",
            )
            .bind(tenant)
            .bind(user)
            .bind(subscription.as_str())
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    async fn subscriptions(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> StoreResult<Vec<Subscription>> {
        let kinds: Vec<(String,)> = sqlx::query_as(
            "SELECT kind FROM notification_subscriptions \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY kind",
        )
        .bind(tenant)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        kinds
            .into_iter()
            .map(|(kind,)| Subscription::parse(&kind).map_err(|e| StoreError::Invalid(e.0)))
            .collect()
    }
}

impl Store {
    async fn run_exists(&self, tenant: TenantId, run: RunId) -> StoreResult<bool> {
        let found: Option<(RunId,)> =
            sqlx::query_as("SELECT id FROM bulk_operation_runs WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(run)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}
