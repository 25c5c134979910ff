use crate::api::session::{current_session, SignOut};
use crate::domain::Role;
use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// Brand, the tenant switcher (for members of several tenants), who is
/// signed in, and sign-out.
#[component]
pub fn Header() -> impl IntoView {
    let location = use_location();
    // Re-read on navigation, so signing in or out updates the header.
    let session = Resource::new(move || location.pathname.get(), |_| current_session());
    let sign_out = ServerAction::<SignOut>::new();
    let current_slug = move || {
        let path = location.pathname.get();
        path.strip_prefix("/t/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
    };
    view! {
        <header class="topbar">
            <a class="brand" href="/">"opshub"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let Ok(Some(info)) = session.await else { return ().into_any() };
                    // Admins of the tenant on screen manage its members.
                    let members_link = current_slug().and_then(|slug| {
                        info.memberships
                            .iter()
                            .find(|m| m.tenant.slug == slug && m.role == Role::Admin)
                            .map(|_| view! {
                                <a href=format!("/t/{slug}/members") data-testid="members-link">"Members"</a>
                            })
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
