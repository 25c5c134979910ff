use crate::api::notifications::{notification_feed, Feed, MarkAllRead, OpenNotification};
use crate::domain::{Notification, NotificationKind};
use crate::ui::components::{ErrorView, LocalTime};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/t/{tenant}/notifications`: the signed-in user's feed in this tenant.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let read_all = ServerAction::<MarkAllRead>::new();
    let feed = Resource::new(
        move || {
            (
                params.read().get("tenant").unwrap_or_default(),
                query.read().get("older"),
                read_all.version().get(),
            )
        },
        |(tenant, older, _)| notification_feed(tenant, older),
    );
    view! {
        <Title text="Notifications" />
        <Transition fallback=|| view! { <p class="loading">"Loading notifications…"</p> }>
            {move || Suspend::new(async move {
                match feed.await {
                    Ok(feed) => view! { <FeedView feed read_all /> }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn FeedView(feed: Feed, read_all: ServerAction<MarkAllRead>) -> impl IntoView {
    let slug = feed.tenant.slug.clone();
    let older = feed
        .notifications
        .older
        .map(|cursor| format!("/t/{slug}/notifications?older={cursor}"));
    let empty = feed.notifications.items.is_empty();
    view! {
        <div class="page-head">
            <h1>"Notifications"</h1>
            <span class="muted" data-testid="unread-total">{format!("{} unread", feed.unread)}</span>
            {(feed.unread > 0).then(|| {
                let slug = slug.clone();
                view! {
                    <ActionForm action=read_all attr:class="inline-form">
                        <input type="hidden" name="tenant" value=slug.clone() />
                        <button type="submit" class="button" data-testid="mark-all-read">"Mark all read"</button>
                    </ActionForm>
                }
            })}
        </div>
        {empty.then(|| view! { <p class="empty-state">"Nothing yet: you hear about runs you start here."</p> })}
        <ul class="feed" data-testid="feed">
            {feed.notifications.items.into_iter().map(|n| view! { <FeedEntry n slug=slug.clone() /> }).collect_view()}
        </ul>
        <nav class="pager" aria-label="Pages">
            {older.map(|href| view! { <a rel="next" href=href>"Older →"</a> })}
        </nav>
    }
}

/// One notification: what happened to which run. Opening it (a form, so it
/// works without JavaScript) marks it read and goes to the run.
#[component]
pub fn FeedEntry(n: Notification, slug: String) -> impl IntoView {
    let open = ServerAction::<OpenNotification>::new();
    let notice = n.notice;
    let what = match n.kind {
        NotificationKind::RunQueued => "queued".to_string(),
        NotificationKind::RunCompleted => notice.bucket.label().to_lowercase(),
    };
    let counts = format!(
        "{} / {} processed · {} failed · {} skipped",
        notice.counters.processed,
        notice.counters.total,
        notice.counters.failed,
        notice.counters.skipped
    );
    view! {
        <li class="feed-entry" class:unread=n.read_at.is_none() data-testid="feed-entry"
            data-run-id=notice.run_id.to_string() data-kind=n.kind.as_str()>
            <ActionForm action=open attr:class="feed-open">
                <input type="hidden" name="tenant" value=slug.clone() />
                <input type="hidden" name="id" value=n.id.to_string() />
                <button type="submit" class="link-button" data-testid="open-notification">
                    <span class=format!("badge badge-{}", notice.bucket.as_str())>{notice.bucket.label()}</span>" "
                    <strong>{notice.operation.label()}</strong>" "{what}
                </button>
            </ActionForm>
            <span class="muted">{counts}</span>
            {notice.error_summary.map(|summary| view! { <span class="error-summary">{summary}</span> })}
            <LocalTime at=n.created_at />
        </li>
    }
}
