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
                <Hydration options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Starts the app in the browser without inline script (the
/// Content-Security-Policy allows none): `/hydrate.js`, a file, reads the
/// page's hydration data (JSON, see `server::hydration_data`) and then
/// imports the JS and WASM named here.
#[component]
fn Hydration(options: LeptosOptions) -> impl IntoView {
    // Leptos's `<HydrationScripts>` would write an inline bootstrap. It runs
    // for what else it does (telling the renderer where the lazy routes'
    // chunks are, for their preload links); its markup is dropped.
    drop(view! { <HydrationScripts options=options.clone() /> });
    let pkg = format!("/{}", options.site_pkg_dir);
    let name = &options.output_name;
    // Named as `<HydrationScripts>` names them: cargo-leptos builds give the
    // WASM the JS's name, plain wasm-bindgen output adds `_bg`. (The
    // project does not hash file names.)
    let wasm_suffix = if option_env!("LEPTOS_OUTPUT_NAME").is_some() {
        ""
    } else {
        "_bg"
    };
    let js = format!("{pkg}/{name}.js");
    let wasm = format!("{pkg}/{name}{wasm_suffix}.wasm");
    view! {
        <link rel="modulepreload" href=js.clone() />
        <link rel="preload" href=wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin="" />
        <script type="module" src="/hydrate.js" id="opshub-hydrate" data-js=js data-wasm=wasm></script>
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
            <components::BarPatterns />
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
                        path=path!("/t/:tenant/insights")
                        view={Lazy::<pages::InsightsRoute>::new()}
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
