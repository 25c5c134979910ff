use crate::api::notifications::{notification_feed, unread_notifications, Feed, FeedQuery};
use crate::api::session::{current_session, SignOut};
use crate::api::AppError;
use crate::domain::{unread_label, Role};
use crate::ui::components::FeedEntry;
use crate::ui::live::{on_live, Live, LiveMessage};
use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// Brand, the tenant switcher (for members of several tenants), who is
/// signed in, and sign-out.
#[component]
pub fn Header() -> impl IntoView {
    let location = use_location();
    let sign_out = ServerAction::<SignOut>::new();
    let live = expect_context::<Live>();
    let current_slug = move || {
        let path = location.pathname.get();
        path.strip_prefix("/t/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
    };
    // Who is signed in, and the bell's count for the tenant on screen; one
    // resource (nested suspense would stall async rendering), re-read on
    // navigation so signing in or out updates the header.
    let session = Resource::new(
        move || (location.pathname.get(), current_slug()),
        |(_, slug)| async move {
            let session = current_session().await;
            let unread = match slug {
                Some(slug) => unread_notifications(slug).await.unwrap_or_default(),
                None => 0,
            };
            session.map(|info| info.map(|info| (info, unread)))
        },
    );
    view! {
        <header class="topbar">
            <a class="brand" href="/">"opshub"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let Ok(Some((info, unread))) = session.await else {
                        live.set_member_of(Vec::new());
                        return ().into_any();
                    };
                    live.set_member_of(info.memberships.iter().map(|m| m.tenant.slug.clone()).collect());
                    // Admins of the tenant on screen manage its members.
                    let members_link = current_slug().and_then(|slug| {
                        info.memberships
                            .iter()
                            .find(|m| m.tenant.slug == slug && m.role == Role::Admin)
                            .map(|_| view! {
                                <a href=format!("/t/{slug}/members") data-testid="members-link">"Members"</a>
                            })
                    });
                    // Tenant navigation, for a tenant the user belongs to.
                    let tenant_nav = current_slug()
                        .filter(|slug| info.memberships.iter().any(|m| &m.tenant.slug == slug))
                        .map(|slug| {
                            let bell_slug = slug.clone();
                            view! {
                                <nav class="tenant-nav" aria-label="Tenant">
                                    <a href=format!("/t/{slug}/operations")>"Operations"</a>
                                    <a href=format!("/t/{slug}/findings") data-testid="findings-link">"Findings"</a>
                                    <a href=format!("/t/{slug}/insights") data-testid="insights-link">"Insights"</a>
                                </nav>
                                <Bell slug=bell_slug unread />
                            }
                        });
                    let switcher = (info.memberships.len() > 1).then(|| {
                        let links = info.memberships.into_iter().map(|membership| {
                            let slug = membership.tenant.slug.clone();
                            let current = move || current_slug().as_deref() == Some(slug.as_str());
                            view! {
                                <a href=format!("/t/{}/operations", membership.tenant.slug)
                                    class:current=current.clone()
                                    aria-current=move || current().then_some("page")>
                                    {membership.tenant.name}
                                </a>
                            }
                        }).collect_view();
                        view! {
                            <nav class="tenant-switcher" aria-label="Tenants" data-testid="tenant-switcher">
                                {links}
                            </nav>
                        }
                    });
                    view! {
                        {switcher}
                        {tenant_nav}
                        {members_link}
                        <div class="user-menu" data-testid="user-menu">
                            <span class="user-name">{info.user.display_name}</span>
                            <ActionForm action=sign_out attr:class="inline-form">
                                <button type="submit" class="button" data-testid="sign-out">"Sign out"</button>
                            </ActionForm>
                        </div>
                    }.into_any()
                })}
            </Transition>
        </header>
    }
}

/// Notifications shown in the bell's menu.
const BELL_MENU_ENTRIES: usize = 6;

/// The unread count, kept live, and a menu of the latest notifications. A
/// `<details>` element: it opens by keyboard and without JavaScript too (then
/// it offers the link to the feed page; the entries load once hydrated).
#[component]
fn Bell(slug: String, unread: i64) -> impl IntoView {
    let count = RwSignal::new(unread);
    let open = RwSignal::new(false);
    let menu = NodeRef::<leptos::html::Details>::new();
    let count_slug = slug.clone();
    on_live(move |message| match message {
        LiveMessage::Unread(n) => count.set(n),
        LiveMessage::Resync => {
            let slug = count_slug.clone();
            leptos::task::spawn_local(async move {
                if let Ok(n) = unread_notifications(slug).await {
                    count.try_set(n);
                }
            });
        }
        LiveMessage::Run(_) => {}
    });
    // Loaded in the browser when the menu opens, and again when the count
    // moves while it is open (an effect: the server renders the menu closed).
    let entries = RwSignal::new(None::<Result<Feed, AppError>>);
    let entries_slug = slug.clone();
    Effect::new(move |_| {
        let (is_open, _) = (open.get(), count.get());
        if !is_open {
            return;
        }
        let slug = entries_slug.clone();
        leptos::task::spawn_local(async move {
            let feed = notification_feed(slug, FeedQuery::default()).await;
            // The header may have re-rendered meanwhile.
            entries.try_set(Some(feed));
        });
    });
    // `try_`: a `toggle` event is queued, and may arrive after navigation
    // replaced this header.
    let close = move || {
        if let Some(details) = menu.try_get_untracked().flatten() {
            details.set_open(false);
        }
    };
    let feed_href = format!("/t/{slug}/notifications");
    view! {
        <details class="bell-menu" node_ref=menu data-testid="bell-menu"
            on:toggle=move |_| {
                let is_open = menu.try_get_untracked().flatten().is_some_and(|d| d.open());
                open.try_set(is_open);
            }
            on:keydown=move |ev| if ev.key() == "Escape" { close() }>
            <summary class="bell" data-testid="bell"
                aria-label=move || format!("Notifications, {} unread", unread_label(count.get()))>
                // Drawn, not an emoji: a machine without an emoji font shows
                // an empty box. The summary's label is its text.
                <svg class="icon" viewBox="0 0 24 24" width="18" height="18"
                    aria-hidden="true" focusable="false">
                    <path fill="currentColor"
                        d="M12 3a6 6 0 0 0-6 6v3.5L4.5 15v1.5h15V15L18 12.5V9a6 6 0 0 0-6-6zm-2.2 15a2.2 2.2 0 0 0 4.4 0z" />
                </svg>
                <span class="count" class:zero=move || count.get() == 0
                    data-testid="bell-count">{move || unread_label(count.get())}</span>
            </summary>
            // Following an entry or the feed link closes the menu (the
            // header may stay on screen while the next page loads).
            <div class="menu" role="group" aria-label="Latest notifications"
                on:click=move |ev| {
                    let followed = event_target::<web_sys::Element>(&ev)
                        .closest("a, button")
                        .ok()
                        .flatten()
                        .is_some();
                    if followed {
                        close();
                    }
                }>
                {move || match entries.get() {
                    None => None,
                    Some(Ok(feed)) if feed.notifications.items.is_empty() => Some(view! {
                        <p class="muted">"No notifications yet."</p>
                    }.into_any()),
                    Some(Ok(feed)) => {
                        let slug = feed.tenant.slug.clone();
                        Some(view! {
                            <ul class="feed compact">
                                {feed.notifications.items.into_iter().take(BELL_MENU_ENTRIES)
                                    .map(|n| view! { <FeedEntry n slug=slug.clone() /> })
                                    .collect_view()}
                            </ul>
                        }.into_any())
                    }
                    Some(Err(error)) => Some(view! {
                        <p class="form-error" role="alert">{error.to_string()}</p>
                    }.into_any()),
                }}
                <a href=feed_href data-testid="all-notifications">"All notifications"</a>
            </div>
        </details>
    }
}
