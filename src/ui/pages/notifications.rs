use crate::api::notifications::{
    notification_feed, Feed, FeedQuery, MarkAllRead, SetFailedOrPartialSubscription,
};
use crate::api::AppError;
use crate::domain::{unread_label, NotificationKind};
use crate::ui::components::{ErrorView, FeedEntry};
use crate::ui::live::{on_live, LiveMessage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/t/{tenant}/notifications`: the signed-in user's feed in this tenant,
/// filtered through the URL, and (for admins) their subscription to every
/// failed or partially succeeded run.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let read_all = ServerAction::<MarkAllRead>::new();
    let subscribe = ServerAction::<SetFailedOrPartialSubscription>::new();
    // The user's notifications changed (here or in another tab): reload.
    let changed = RwSignal::new(0u32);
    on_live(move |message| {
        if matches!(message, LiveMessage::Unread(_) | LiveMessage::Resync) {
            changed.update(|n| *n += 1);
        }
    });
    let feed_query = move || {
        let q = query.read();
        FeedQuery {
            kind: q.get("kind"),
            unread: q.get("unread"),
            older: q.get("older"),
        }
    };
    let feed = Resource::new(
        move || {
            (
                params.read().get("tenant").unwrap_or_default(),
                feed_query(),
                read_all.version().get(),
                subscribe.version().get(),
                changed.get(),
            )
        },
        |(tenant, query, ..)| notification_feed(tenant, query),
    );
    view! {
        <Title text="Notifications" />
        <Transition fallback=|| view! { <p class="loading">"Loading notifications…"</p> }>
            {move || Suspend::new(async move {
                match feed.await {
                    Ok(feed) => view! {
                        <FeedView feed query=feed_query() read_all subscribe />
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn FeedView(
    feed: Feed,
    query: FeedQuery,
    read_all: ServerAction<MarkAllRead>,
    subscribe: ServerAction<SetFailedOrPartialSubscription>,
) -> impl IntoView {
    let slug = feed.tenant.slug.clone();
    let base = format!("/t/{slug}/notifications");
    let older = feed.notifications.older.map(|cursor| {
        let target = FeedQuery {
            older: Some(cursor.to_string()),
            ..query.clone()
        };
        format!("{base}{}", target.to_query_string())
    });
    let error = move || {
        read_all
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| subscribe.value().get().and_then(Result::err))
            .map(|error: AppError| error.to_string())
    };
    // The page only renders for a query the server accepted, so a kind
    // word here is one of ours.
    let kind = query
        .kind
        .as_deref()
        .and_then(|word| NotificationKind::from_filter_word(word).ok());
    let unread_only = query.unread.as_deref() == Some("1");
    let filtered = kind.is_some() || unread_only;
    let empty = feed.notifications.items.is_empty();
    let read_all_label = match kind {
        None => "Mark all read".to_string(),
        Some(kind) => format!("Mark all {} read", kind.filter_word()),
    };
    view! {
        <div class="page-head">
            <h1>"Notifications"</h1>
            <span class="muted" data-testid="unread-total">{format!("{} unread", unread_label(feed.unread))}</span>
            {(feed.unread > 0).then(|| {
                let (slug, kind) = (slug.clone(), kind.map_or("", NotificationKind::filter_word));
                view! {
                    <ActionForm action=read_all attr:class="inline-form">
                        <input type="hidden" name="tenant" value=slug.clone() />
                        <input type="hidden" name="kind" value=kind />
                        <button type="submit" class="button" data-testid="mark-all-read">{read_all_label.clone()}</button>
                    </ActionForm>
                }
            })}
        </div>
        // A GET form: the filters become the URL, shareable and back-button safe.
        <form method="get" action=base.clone() class="form inline filters" data-testid="feed-filters">
            <label>"Kind"
                <select name="kind">
                    <option value="" selected=kind.is_none()>"all"</option>
                    {NotificationKind::ALL.iter().map(|option| view! {
                        <option value=option.filter_word() selected=kind == Some(*option)>
                            {option.filter_word()}
                        </option>
                    }).collect_view()}
                </select>
            </label>
            <label><input type="checkbox" name="unread" value="1" checked=unread_only />" Unread only"</label>
            <button type="submit" class="button">"Filter"</button>
            <a href=base.clone()>"Clear"</a>
        </form>
        {move || error().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        {feed.failed_or_partial.map(|subscribed| view! {
            <SubscriptionToggle slug=slug.clone() subscribed subscribe />
        })}
        {empty.then(|| if filtered {
            view! { <p class="empty-state">"No notifications match."</p> }.into_any()
        } else {
            view! {
                <p class="empty-state">"Nothing yet: you hear here about runs you start, join or watch."</p>
            }.into_any()
        })}
        <ul class="feed" data-testid="feed">
            {feed.notifications.items.into_iter().map(|n| view! { <FeedEntry n slug=slug.clone() /> }).collect_view()}
        </ul>
        <nav class="pager" aria-label="Pages">
            {older.map(|href| view! { <a rel="next" href=href>"Older →"</a> })}
        </nav>
    }
}

/// An admin's standing request for the "completed" notice of every run of
/// the tenant that fails or partly succeeds. One button, pressed while on.
#[component]
fn SubscriptionToggle(
    slug: String,
    subscribed: bool,
    subscribe: ServerAction<SetFailedOrPartialSubscription>,
) -> impl IntoView {
    let state = if subscribed {
        "On: every failed or partially succeeded run of this tenant notifies you."
    } else {
        "Off: you hear about runs you start, join or watch."
    };
    view! {
        <ActionForm action=subscribe attr:class="form inline" attr:data-testid="subscription-form">
            <input type="hidden" name="tenant" value=slug.clone() />
            <input type="hidden" name="subscribed" value=(!subscribed).to_string() />
            <button type="submit" class="button" aria-pressed=subscribed.to_string()
                data-testid="failed-or-partial-subscription">
                "Notify me of every failed or partially succeeded run"
            </button>
            <span class="muted" data-testid="subscription-state">{state}</span>
        </ActionForm>
    }
}
