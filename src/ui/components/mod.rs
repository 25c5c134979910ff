//! Small pieces shared by pages.

use crate::api::notifications::OpenNotification;
use crate::api::AppError;
use crate::domain::{Counters, Notification, NotificationKind, RunStatus, StatusBucket, Timestamp};
use leptos::prelude::*;
use leptos_meta::Title;

/// The 404 page. On the server it also sets the response status.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
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
            <Title text="Something went wrong" />
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

/// A run's status as its operator bucket. Takes a signal so live pages
/// update it in place (a plain value converts).
#[component]
pub fn StatusBadge(#[prop(into)] status: Signal<RunStatus>) -> impl IntoView {
    view! {
        <span class=move || format!("badge badge-{}", status.get().bucket().as_str())
            title=move || status.get().as_str()>
            {move || status.get().bucket().label()}
        </span>
    }
}

/// "Stalled" beside a running run's status while the engine flags it
/// (`RunSummary::stalled_since`); nothing otherwise. Live like the status.
#[component]
pub fn StalledBadge(#[prop(into)] since: Signal<Option<Timestamp>>) -> impl IntoView {
    move || {
        since.get().map(|at| {
            view! {
                " "
                <span class="badge badge-stalled" data-testid="stalled-badge"
                    title=format!("No progress since {} (UTC)", at.short_utc())>
                    "Stalled"
                </span>
            }
        })
    }
}

#[component]
pub fn Progress(#[prop(into)] counters: Signal<Counters>) -> impl IntoView {
    let percent = move || counters.get().percent();
    // Each outcome's stretch of the bar, in percent of all items:
    // succeeded solid, failed cross-hatched, skipped striped (the
    // patterns are `BarPatterns`), so the outcome reads without colour.
    let segment = move |outcome: fn(&Counters) -> i64, before: fn(&Counters) -> i64| {
        let c = counters.get();
        let share = |n: i64| {
            if c.total > 0 {
                n as f64 * 100.0 / c.total as f64
            } else {
                0.0
            }
        };
        (
            format!("{:.2}%", share(before(&c))),
            format!("{:.2}%", share(outcome(&c))),
        )
    };
    let succeeded = move || segment(|c| c.succeeded, |_| 0);
    let failed = move || segment(|c| c.failed, |c| c.succeeded);
    let skipped = move || segment(|c| c.skipped, |c| c.succeeded + c.failed);
    view! {
        <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=move || percent().to_string()
            aria-label=move || {
                let c = counters.get();
                format!(
                    "{} of {} processed: {} succeeded, {} failed, {} skipped",
                    c.processed, c.total, c.succeeded, c.failed, c.skipped
                )
            }>
            // An SVG bar: its widths are attributes, not inline styles
            // (the CSP allows none).
            <svg class="progress-bar" aria-hidden="true">
                <rect class="progress-ok" height="100%" x=move || succeeded().0 width=move || succeeded().1 />
                <rect class="progress-failed" fill="url(#bar-failed)" height="100%" x=move || failed().0 width=move || failed().1 />
                <rect class="progress-skipped" fill="url(#bar-skipped)" height="100%" x=move || skipped().0 width=move || skipped().1 />
            </svg>
        </div>
        <span class="progress-text" data-testid="progress-text">
            {move || {
                let c = counters.get();
                format!("{} / {}", c.processed, c.total)
            }}
        </span>
    }
}

/// The fills of the progress bars' failed and skipped stretches, defined
/// once per page (an id may not repeat) in the app's shell.
#[component]
pub fn BarPatterns() -> impl IntoView {
    view! {
        <svg class="pattern-defs" aria-hidden="true" focusable="false" width="0" height="0">
            <defs>
                <pattern id="bar-failed" width="6" height="6" patternUnits="userSpaceOnUse">
                    <rect class="bar-failed-fill" width="6" height="6" />
                    <path class="bar-pattern-line" d="M0 0L6 6M6 0L0 6" />
                </pattern>
                <pattern id="bar-skipped" width="5" height="5" patternUnits="userSpaceOnUse"
                    patternTransform="rotate(45)">
                    <rect class="bar-skipped-fill" width="5" height="5" />
                    <line class="bar-pattern-line" x1="0" y1="0" x2="0" y2="5" />
                </pattern>
            </defs>
        </svg>
    }
}

/// `succeeded / failed / skipped` with colours.
#[component]
pub fn Outcome(#[prop(into)] counters: Signal<Counters>) -> impl IntoView {
    view! {
        <span class="outcome">
            <span class="ok" title="succeeded">{move || counters.get().succeeded}</span>" / "
            <span class="bad" title="failed">{move || counters.get().failed}</span>" / "
            <span class="skip" title="skipped">{move || counters.get().skipped}</span>
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

/// One notification: what happened to which run. Opening it (a form, so it
/// works without JavaScript) marks it read and goes to the run.
#[component]
pub fn FeedEntry(n: Notification, slug: String) -> impl IntoView {
    let open = ServerAction::<OpenNotification>::new();
    let notice = n.notice;
    let what = match n.kind {
        NotificationKind::RunQueued => "queued".to_string(),
        NotificationKind::RunCompleted => notice.bucket.label().to_lowercase(),
        NotificationKind::RunStalled => "stalled".to_string(),
    };
    let counts = format!(
        "{} / {} processed · {} failed · {} skipped",
        notice.counters.processed,
        notice.counters.total,
        notice.counters.failed,
        notice.counters.skipped
    );
    view! {
        <li class="feed-entry" class:unread=n.read_at.is_none() data-testid="feed-entry"
            data-run-id=notice.run_id.to_string() data-kind=n.kind.as_str()>
            <ActionForm action=open attr:class="feed-open">
                <input type="hidden" name="tenant" value=slug.clone() />
                <input type="hidden" name="id" value=n.id.to_string() />
                <button type="submit" class="link-button" data-testid="open-notification">
                    <span class=format!("badge badge-{}", notice.bucket.as_str())>{notice.bucket.label()}</span>" "
                    <strong>{notice.operation.label()}</strong>" "{what}
                </button>
            </ActionForm>
            <span class="muted">{counts}</span>
            {notice.error_summary.map(|summary| view! { <span class="error-summary">{summary}</span> })}
            <LocalTime at=n.created_at />
        </li>
    }
}
