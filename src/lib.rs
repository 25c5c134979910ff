#![recursion_limit = "256"]
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
    leptos::mount::hydrate_body(ui::App);
}
