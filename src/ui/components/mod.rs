//! Small pieces shared by pages.

use crate::api::AppError;
use crate::domain::{Counters, RunStatus, StatusBucket, Timestamp};
use leptos::prelude::*;

/// The 404 page. On the server it also sets the response status.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="empty-state" data-testid="not-found">
            <h1>"Not found"</h1>
            <p>"There is nothing at this address, or you cannot see it."</p>
            <p><a href="/">"Back to your tenants"</a></p>
        </section>
    }
}

/// Shows an error from a server function; a missing resource becomes the
/// 404 page.
#[component]
pub fn ErrorView(error: AppError) -> impl IntoView {
    match error {
        AppError::NotFound => view! { <NotFound /> }.into_any(),
        // The session ended while the page was open: sign in, then come back.
        AppError::Unauthorized => view! { <SignInAgain /> }.into_any(),
        other => view! {
            <section class="error-state" role="alert">
                <h1>"Something went wrong"</h1>
                <p>{other.to_string()}</p>
            </section>
        }
        .into_any(),
    }
}

#[component]
fn SignInAgain() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    let target = crate::domain::sign_in_path(&format!(
        "{}{}",
        location.pathname.get_untracked(),
        location.search.get_untracked()
    ));
    view! { <leptos_router::components::Redirect path=target /> }
}

#[component]
pub fn StatusBadge(status: RunStatus) -> impl IntoView {
    let bucket = status.bucket();
    view! {
        <span class=format!("badge badge-{}", bucket.as_str()) title=status.as_str()>
            {bucket.label()}
        </span>
    }
}

#[component]
pub fn Progress(counters: Counters) -> impl IntoView {
    let percent = counters.percent();
    view! {
        <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=percent.to_string()
            aria-label=format!("{} of {} processed", counters.processed, counters.total)>
            <div class="progress-fill" style=format!("width: {percent}%")></div>
        </div>
        <span class="progress-text">{format!("{} / {}", counters.processed, counters.total)}</span>
    }
}

/// `succeeded / failed / skipped` with colours.
#[component]
pub fn Outcome(counters: Counters) -> impl IntoView {
    view! {
        <span class="outcome">
            <span class="ok" title="succeeded">{counters.succeeded}</span>" / "
            <span class="bad" title="failed">{counters.failed}</span>" / "
            <span class="skip" title="skipped">{counters.skipped}</span>
        </span>
    }
}

pub fn bucket_tab_label(bucket: Option<StatusBucket>) -> &'static str {
    bucket.map_or("All", StatusBucket::label)
}

/// A moment in the viewer's time zone. The server, and the browser's first
/// render (so hydration matches), show UTC; once hydrated it turns local.
#[component]
pub fn LocalTime(at: Timestamp) -> impl IntoView {
    let local = RwSignal::new(None::<String>);
    Effect::new(move |_| local.set(Some(local_text(at))));
    view! {
        <time datetime=at.to_rfc3339() title=at.to_rfc3339()>
            {move || local.get().unwrap_or_else(|| at.short_utc())}
        </time>
    }
}

#[cfg(feature = "hydrate")]
fn local_text(at: Timestamp) -> String {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_f64(at.0 as f64 / 1_000.0));
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
    let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"medium".into());
    date.to_locale_string("default", &options).into()
}

#[cfg(not(feature = "hydrate"))]
fn local_text(at: Timestamp) -> String {
    at.short_utc()
}
