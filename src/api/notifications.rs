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
    /// The page of notifications the query asked for.
    pub notifications: Page<Notification>,
    /// Every unread notification of the user in the tenant, whatever the filter.
    pub unread: i64,
    /// For admins: whether they hear of every failed or partially
    /// succeeded run of the tenant. `None` for everyone else (they cannot
    /// subscribe).
    pub failed_or_partial: Option<bool>,
}

/// Notifications per page of the feed.
pub const FEED_PAGE: u32 = 20;

/// The feed's query as it appears in the URL (`?kind=completed&unread=1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedQuery {
    /// `queued`, `completed`, or empty for both.
    pub kind: Option<String>,
    /// `1` for unread notifications only; empty for all.
    pub unread: Option<String>,
    pub older: Option<String>,
}

impl FeedQuery {
    /// The fields by their names in the URL.
    fn fields(&self) -> [(&'static str, &Option<String>); 3] {
        [
            ("kind", &self.kind),
            ("unread", &self.unread),
            ("older", &self.older),
        ]
    }

    pub fn to_query_string(&self) -> String {
        query_string(&self.fields())
    }

    /// Empty fields (a submitted filter form) mean "any". Every field has at
    /// most `MAX_SEARCH_CHARS` characters.
    pub fn parse(&self) -> Result<(NotificationFilter, PageRequest), ParseError> {
        bounded_fields(&self.fields())?;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let filter = NotificationFilter {
            kind: parse_kind(self.kind.as_deref())?,
            unread_only: match given(&self.unread).as_deref() {
                None => false,
                Some("1") => true,
                Some(_) => return Err(ParseError("`unread` must be `1` or empty".into())),
            },
        };
        let page = match given(&self.older) {
            Some(cursor) => PageRequest::older_than(Cursor::parse(&cursor)?, FEED_PAGE),
            None => PageRequest::first(FEED_PAGE),
        };
        Ok((filter, page))
    }
}

/// The kind filter's word (empty or absent: every kind).
fn parse_kind(word: Option<&str>) -> Result<Option<NotificationKind>, ParseError> {
    match word.map(str::trim).filter(|word| !word.is_empty()) {
        None => Ok(None),
        Some(word) => NotificationKind::from_filter_word(word).map(Some),
    }
}

#[server(endpoint = "notifications/feed", input = Json, output = JsonText)]
pub async fn notification_feed(tenant: String, query: FeedQuery) -> Result<Feed, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let (filter, page) = query.parse()?;
            let store = super::ssr::store()?;
            let (tenant, user) = (access.tenant, access.user);
            let failed_or_partial = if access.role >= Role::Admin {
                let subscriptions = store.subscriptions(tenant.id, user.id).await?;
                Some(subscriptions.contains(&Subscription::FailedOrPartial))
            } else {
                None
            };
            Ok(Feed {
                notifications: store
                    .list_notifications(tenant.id, user.id, &filter, page)
                    .await?,
                unread: store.unread_count(tenant.id, user.id).await?,
                failed_or_partial,
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

/// Marks the user's unread notifications read: those of `kind` when the
/// feed is filtered by kind (what "Mark all read" on that view means), all
/// of them when `kind` is empty.
#[server(endpoint = "notifications/read-all", output = JsonText)]
pub async fn mark_all_read(tenant: String, kind: String) -> Result<u64, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let kind = parse_kind(Some(&kind))?;
            Ok(super::ssr::store()?
                .mark_all_read(access.tenant.id, access.user.id, kind)
                .await?)
        }
        .await,
    )
}

/// Turns the admin's subscription to every failed or partially succeeded
/// run of the tenant on (`subscribed=true`) or off (`subscribed=false`);
/// returns whether it is on. Admins only: a member who is no longer an
/// admin stops receiving them (checked as each run ends).
#[server(endpoint = "notifications/subscription", output = JsonText)]
pub async fn set_failed_or_partial_subscription(
    tenant: String,
    subscribed: String,
) -> Result<bool, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Admin).await?;
            let subscribed = match subscribed.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(AppError::BadRequest(
                        "`subscribed` must be `true` or `false`".into(),
                    ))
                }
            };
            super::ssr::store()?
                .set_subscription(
                    access.tenant.id,
                    access.user.id,
                    Subscription::FailedOrPartial,
                    subscribed,
                )
                .await?;
            Ok(subscribed)
        }
        .await,
    )
}
