//! The notification feed: a run's "queued" notice (`insert_notification`,
//! with the start) and "completed" notices (`notify_finished`, with the
//! change that ends the run), and the reader's side.
//!
//! Here: the in-transaction writers (for the runs, the queue and the
//! progress) and `NotificationRepository`.

use super::{Builder, Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{NotificationRow, RunStateRow, NOTIFICATION_COLUMNS};
use crate::server::store::sql::{finish_page, push_id_list, push_keyset};
use crate::server::store::{Change, NewNotification, NotificationRepository, StoreResult};
use async_trait::async_trait;
use sqlx::types::Json;

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
/// ended to everyone who asked for it: its initiator and every
/// other user whose start joined it, once each. Returns the
/// changes those notifications make, for live views.
pub(super) async fn notify_finished(
    conn: &mut Connection,
    runs: &[RunStateRow],
) -> StoreResult<Vec<Change>> {
    let mut joiners: std::collections::HashMap<RunId, Vec<UserId>> =
        std::collections::HashMap::new();
    let ids: Vec<RunId> = runs.iter().map(|run| run.id).collect();
    for chunk in ids.chunks(1_000) {
        let mut qb =
            Builder::new("SELECT DISTINCT run_id, user_id FROM run_joins WHERE run_id IN (");
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
            self.changes
                .record([Change::Notifications { tenant, user }]);
        }
        Ok(marked)
    }
}
