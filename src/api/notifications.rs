//! The notification feed: each signed-in user's notices about their runs, per
//! tenant. Opening one marks it read and follows its link to the run.

use super::codec::JsonText;
use super::AppError;
use crate::domain::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    pub tenant: Tenant,
    pub notifications: Page<Notification>,
    pub unread: i64,
}

/// Notifications per page of the feed.
pub const FEED_PAGE: u32 = 20;

#[server(endpoint = "notifications/feed", input = Json, output = JsonText)]
pub async fn notification_feed(tenant: String, older: Option<String>) -> Result<Feed, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let page = match older.as_deref() {
                Some(cursor) => PageRequest::older_than(
                    Cursor::parse(bounded_text("older", cursor, MAX_SEARCH_CHARS)?)?,
                    FEED_PAGE,
                ),
                None => PageRequest::first(FEED_PAGE),
            };
            let store = super::ssr::store()?;
            let (tenant, user) = (access.tenant, access.user);
            Ok(Feed {
                notifications: store.list_notifications(tenant.id, user.id, page).await?,
                unread: store.unread_count(tenant.id, user.id).await?,
                tenant,
            })
        }
        .await,
    )
}

/// The bell's number.
#[server(endpoint = "notifications/unread", input = Json, output = JsonText)]
pub async fn unread_notifications(tenant: String) -> Result<i64, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            Ok(super::ssr::store()?
                .unread_count(access.tenant.id, access.user.id)
                .await?)
        }
        .await,
    )
}

/// Marks the notification read and goes to the run it is about.
#[server(endpoint = "notifications/open", output = JsonText)]
pub async fn open_notification(tenant: String, id: String) -> Result<String, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            // Another user's notification is as missing as one that never was.
            let id = NotificationId::parse(&id).map_err(|_| AppError::NotFound)?;
            let opened = super::ssr::store()?
                .mark_read(access.tenant.id, access.user.id, id)
                .await?;
            let link = safe_next(Some(&opened.notice.link));
            leptos_axum::redirect(&link);
            Ok(link)
        }
        .await,
    )
}

#[server(endpoint = "notifications/read-all", output = JsonText)]
pub async fn mark_all_read(tenant: String) -> Result<u64, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            Ok(super::ssr::store()?
                .mark_all_read(access.tenant.id, access.user.id)
                .await?)
        }
        .await,
    )
}
