//! The pages. The hub, where people land, is in the main bundle; every other
//! page is a lazy route, split into its own wasm chunks by
//! `cargo leptos build --split` and fetched the first time it is shown.
//!
//! A lazy page reads its data once its chunk has arrived (`data()` is
//! empty): a resource created in `data()` would put the page's server
//! function call and JSON readers back into the main bundle.

mod findings;
mod hub;
mod insights;
mod members;
mod notifications;
mod run;
mod sign_in;
mod tenants;

pub use hub::HubPage;

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

/// A page as a lazy route: its view, and all the code only it uses, goes
/// into wasm chunks of its own. `data()` is empty on purpose (see above).
macro_rules! lazy_page {
    ($(#[$doc:meta])* $route:ident => $module:ident :: $page:ident) => {
        $(#[$doc])*
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }

            fn view(_route: Self) -> AnyView {
                view! { <$module::$page /> }.into_any()
            }
        }
    };
}

lazy_page! {
    /// `/`
    TenantsRoute => tenants::TenantsPage
}
lazy_page! {
    /// `/sign-in`
    SignInRoute => sign_in::SignInPage
}
lazy_page! {
    /// `/t/{tenant}/operations/{run_id}`
    RunRoute => run::RunPage
}
lazy_page! {
    /// `/t/{tenant}/findings`
    FindingsRoute => findings::FindingsPage
}
lazy_page! {
    /// `/t/{tenant}/notifications`
    NotificationsRoute => notifications::NotificationsPage
}
lazy_page! {
    /// `/t/{tenant}/insights`
    InsightsRoute => insights::InsightsPage
}
lazy_page! {
    /// `/t/{tenant}/members`
    MembersRoute => members::MembersPage
}
