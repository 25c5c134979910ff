//! The user interface: shell, router and pages.

mod components;
mod header;
mod live;
mod pages;

use header::Header;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, Lazy, SsrMode};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.ico" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    live::provide_live();
    view! {
        <Stylesheet id="leptos" href="/pkg/opshub.css" />
        <Title formatter=|title: String| {
            if title.is_empty() { "opshub".to_string() } else { format!("{title} · opshub") }
        } />
        <Router>
            <live::LiveConnection />
            <Header />
            <main class="page">
                // Async SSR: data pages wait for their data so that a missing
                // tenant or run can answer with a real 404 status.
                <Routes fallback=|| view! { <components::NotFound /> }>
                    <Route path=path!("/") view={Lazy::<pages::TenantsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/sign-in") view={Lazy::<pages::SignInRoute>::new()} ssr=SsrMode::Async />
                    <Route
                        path=path!("/t/:tenant/operations")
                        view=pages::HubPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/t/:tenant/findings")
                        view={Lazy::<pages::FindingsRoute>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/t/:tenant/notifications")
                        view={Lazy::<pages::NotificationsRoute>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/t/:tenant/members")
                        view={Lazy::<pages::MembersRoute>::new()}
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/t/:tenant/operations/:run_id")
                        view={Lazy::<pages::RunRoute>::new()}
                        ssr=SsrMode::Async
                    />
                </Routes>
            </main>
        </Router>
    }
}
