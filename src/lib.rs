#![recursion_limit = "256"]
// Output goes through `outln!` (server/output.rs), never `println!`.
#![deny(clippy::print_stdout, clippy::print_stderr)]
//! opshub: the operations hub of a multi-tenant admin platform.

pub mod api;
pub mod domain;
#[cfg(feature = "ssr")]
pub mod server;
pub mod ui;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // `leptos::mount::hydrate_lazy`, plus the mark: a lazy route hydrates only
    // once its chunk has arrived, so hydration ends asynchronously.
    let _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let body = leptos::prelude::document()
            .body()
            .expect("the page has a body");
        leptos::mount::hydrate_from_async(body.clone(), ui::App)
            .await
            .forget();
        // Tests and scripts wait for this mark: a click before hydration is lost.
        let _ = body.set_attribute("data-hydrated", "");
    });
}
