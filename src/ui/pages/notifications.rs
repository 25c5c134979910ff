use crate::api::notifications::{notification_feed, Feed, MarkAllRead};
use crate::domain::unread_label;
use crate::ui::components::{ErrorView, FeedEntry};
use crate::ui::live::{on_live, LiveMessage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/t/{tenant}/notifications`: the signed-in user's feed in this tenant.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let read_all = ServerAction::<MarkAllRead>::new();
    // The user's notifications changed (here or in another tab): reload.
    let changed = RwSignal::new(0u32);
    on_live(move |message| {
        if matches!(message, LiveMessage::Unread(_) | LiveMessage::Resync) {
            changed.update(|n| *n += 1);
        }
    });
    let feed = Resource::new(
        move || {
            (
                params.read().get("tenant").unwrap_or_default(),
                query.read().get("older"),
                read_all.version().get(),
                changed.get(),
            )
        },
        |(tenant, older, _, _)| notification_feed(tenant, older),
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
            <span class="muted" data-testid="unread-total">{format!("{} unread", unread_label(feed.unread))}</span>
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
