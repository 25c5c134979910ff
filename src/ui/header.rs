use crate::api::notifications::unread_notifications;
use crate::api::session::{current_session, SignOut};
use crate::domain::Role;
use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// Brand, the tenant switcher (for members of several tenants), who is
/// signed in, and sign-out.
#[component]
pub fn Header() -> impl IntoView {
    let location = use_location();
    let sign_out = ServerAction::<SignOut>::new();
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
                    let Ok(Some((info, unread))) = session.await else { return ().into_any() };
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
                                </nav>
                                <a class="bell" href=format!("/t/{bell_slug}/notifications")
                                    data-testid="bell"
                                    aria-label=format!("Notifications, {unread} unread")>
                                    <span aria-hidden="true">"🔔"</span>
                                    <span class="count" class:zero=unread == 0
                                        data-testid="bell-count">{unread}</span>
                                </a>
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
