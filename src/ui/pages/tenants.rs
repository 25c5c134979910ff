use crate::api::tenants::list_tenants;
use crate::ui::components::ErrorView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

#[component]
pub fn TenantsPage() -> impl IntoView {
    let tenants = Resource::new(|| (), |_| list_tenants());
    view! {
        <Title text="Tenants" />
        <h1>"Tenants"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading tenants…"</p> }>
            {move || Suspend::new(async move {
                match tenants.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty-state">"You are not a member of any tenant yet. Ask an administrator to add you."</p>
                    }.into_any(),
                    // One tenant: straight to its hub.
                    Ok(list) if list.len() == 1 => view! {
                        <Redirect path=format!("/t/{}/operations", list[0].slug) />
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="tenant-list" data-testid="tenant-list">
                            {list.into_iter().map(|tenant| view! {
                                <li>
                                    <a href=format!("/t/{}/operations", tenant.slug)>{tenant.name}</a>
                                    <span class="muted">{tenant.slug}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}
