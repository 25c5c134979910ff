//! The browser's end of the live stream. One `EventSource` for the tenant on
//! screen, closed while the tab is hidden; pages subscribe to the messages
//! and update what they show in place. The browser reconnects by itself
//! after a dropped stream or a server restart; every (re)connect tells the
//! pages to resync, since changes made meanwhile were not heard.

use crate::domain::RunSummary;
use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
// Only the browser receives messages; the server renders without them.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum LiveMessage {
    Run(RunSummary),
    /// The signed-in user's unread notifications in this tenant.
    Unread(i64),
    /// Changes may have been missed: reload what is shown.
    Resync,
}

/// Handed to pages through context.
#[derive(Clone, Copy)]
pub struct Live {
    listeners: StoredValue<Vec<(u64, Callback<LiveMessage>)>>,
    next_id: StoredValue<u64>,
    /// Slugs of the signed-in user's tenants: only their streams are opened
    /// (another tenant's page is a 404 and has nothing live).
    member_of: RwSignal<Vec<String>>,
    /// Run changes heard so far (see [`runs_heard`]).
    runs_heard: StoredValue<u64>,
}

impl Live {
    fn new() -> Self {
        Self {
            listeners: StoredValue::new(Vec::new()),
            next_id: StoredValue::new(0),
            member_of: RwSignal::new(Vec::new()),
            runs_heard: StoredValue::new(0),
        }
    }

    /// Told by whoever knows the session (the header).
    pub fn set_member_of(self, slugs: Vec<String>) {
        if self.member_of.with_untracked(|known| *known != slugs) {
            self.member_of.set(slugs);
        }
    }

    /// Calls `on_message` for every message while the calling component
    /// lives; nothing once the page's values are gone.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn subscribe(self, on_message: impl Fn(LiveMessage) + Send + Sync + 'static) {
        let Some(id) = self.next_id.try_get_value() else {
            return;
        };
        self.next_id.try_set_value(id + 1);
        let callback = Callback::new(on_message);
        self.listeners
            .try_update_value(|all| all.push((id, callback)));
        on_cleanup(move || {
            self.listeners
                .try_update_value(|all| all.retain(|(listener, _)| *listener != id));
        });
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn dispatch(self, message: LiveMessage) {
        if matches!(message, LiveMessage::Run(_)) {
            self.runs_heard.update_value(|n| *n += 1);
        }
        // Copied out first: a listener may subscribe or unsubscribe.
        let callbacks: Vec<_> = self
            .listeners
            .with_value(|all| all.iter().map(|(_, callback)| *callback).collect());
        for callback in callbacks {
            // A listener disposed by an earlier one (its page re-rendered)
            // is skipped.
            callback.try_run(message.clone());
        }
    }
}

/// Subscribes the calling component to live messages. A no-op on the
/// server, which hears nothing: there the page's closures may even run again
/// after the request's values are gone (Suspense re-checks its children).
pub fn on_live(on_message: impl Fn(LiveMessage) + Send + Sync + 'static) {
    #[cfg(feature = "hydrate")]
    if let Some(live) = use_context::<Live>() {
        live.subscribe(on_message);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = on_message;
}

/// Counts the run changes heard so far. A page reads it when it starts
/// loading its data and hands the figure to [`follow_runs`] once it shows it.
pub fn runs_heard() -> impl Fn() -> u64 + Copy + Send + Sync + 'static {
    let live = use_context::<Live>();
    // Zero where nothing is heard: on the server, or once the page is gone.
    move || {
        live.and_then(|live| live.runs_heard.try_get_value())
            .unwrap_or(0)
    }
}

/// Keeps a page that shows runs current: `on_run` gets every run change, and
/// `catch_up` re-reads the page's runs after a reconnect — and at once when
/// run changes were heard while the page loaded (`heard_before` from
/// [`runs_heard`]), since those reached no one: the page subscribes when it
/// shows.
pub fn follow_runs(
    heard_before: u64,
    on_run: impl Fn(RunSummary) + Send + Sync + 'static,
    catch_up: impl Fn() + Clone + Send + Sync + 'static,
) {
    on_live({
        let catch_up = catch_up.clone();
        move |message| match message {
            LiveMessage::Run(run) => on_run(run),
            LiveMessage::Resync => catch_up(),
            LiveMessage::Unread(_) => {}
        }
    });
    if runs_heard()() != heard_before {
        catch_up();
    }
}

/// Makes [`Live`] available to everything below the calling component.
pub fn provide_live() {
    provide_context(Live::new());
}

/// Keeps the stream of the tenant in the URL open. Sits inside the router,
/// below [`provide_live`].
#[component]
pub fn LiveConnection() -> impl IntoView {
    let live = expect_context::<Live>();
    let location = leptos_router::hooks::use_location();
    let tenant = Memo::new(move |_| {
        location
            .pathname
            .read()
            .strip_prefix("/t/")
            .and_then(|rest| rest.split('/').next())
            .filter(|slug| live.member_of.read().iter().any(|member| member == slug))
            .map(str::to_string)
    });
    #[cfg(feature = "hydrate")]
    browser::keep_open(live, tenant);
    #[cfg(not(feature = "hydrate"))]
    let _ = (live, tenant);
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{Live, LiveMessage};
    use crate::domain::{live_path, RESYNC_EVENT, RUN_EVENT, UNREAD_EVENT};
    use leptos::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{Event, EventSource, MessageEvent, VisibilityState};

    type Handler = Closure<dyn FnMut(Event)>;

    /// How soon a stream the browser gave up on is opened again.
    const RETRY_CLOSED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

    /// An open stream; closed when dropped.
    struct Stream {
        tenant: String,
        source: EventSource,
        _handlers: Vec<Handler>,
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    pub fn keep_open(live: Live, tenant: Memo<Option<String>>) {
        let stream: Rc<RefCell<Option<Stream>>> = Rc::default();
        let sync = {
            let stream = stream.clone();
            move || {
                let visible = document().visibility_state() == VisibilityState::Visible;
                let wanted = tenant.get_untracked().filter(|_| visible);
                let mut current = stream.borrow_mut();
                // The browser retries a dropped stream by itself, but gives
                // up on an error answer (a proxy's 502 while the server
                // restarts): such a stream is opened anew.
                let usable = current
                    .as_ref()
                    .filter(|s| s.source.ready_state() != EventSource::CLOSED);
                if usable.map(|s| &s.tenant) == wanted.as_ref() {
                    return;
                }
                *current = wanted.and_then(|slug| open(live, slug));
            }
        };
        let on_visibility: Handler = Closure::new({
            let sync = sync.clone();
            move |_: Event| sync()
        });
        let _ = document().add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
        // A local look at the stream's state, not a request.
        let retry = set_interval_with_handle(sync.clone(), RETRY_CLOSED_AFTER).ok();
        Effect::new(move |_| {
            tenant.track();
            sync();
        });
        on_cleanup({
            let on_visibility = send_wrapper::SendWrapper::new((on_visibility, stream));
            move || {
                if let Some(retry) = retry {
                    retry.clear();
                }
                let (on_visibility, stream) = on_visibility.take();
                let _ = document().remove_event_listener_with_callback(
                    "visibilitychange",
                    on_visibility.as_ref().unchecked_ref(),
                );
                stream.borrow_mut().take();
            }
        });
    }

    fn open(live: Live, tenant: String) -> Option<Stream> {
        let source = EventSource::new(&live_path(&tenant)).ok()?;
        let mut handlers = Vec::new();
        let mut listen = |name: &str, on: Box<dyn Fn(String) -> Option<LiveMessage>>| {
            let handler: Handler = Closure::new(move |event: Event| {
                let data = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|message| message.data().as_string())
                    .unwrap_or_default();
                if let Some(message) = on(data) {
                    live.dispatch(message);
                }
            });
            let _ = source.add_event_listener_with_callback(name, handler.as_ref().unchecked_ref());
            handlers.push(handler);
        };
        // Every (re)connect may follow missed changes (the page was rendered
        // before the stream opened; the server restarted).
        listen("open", Box::new(|_| Some(LiveMessage::Resync)));
        listen(RESYNC_EVENT, Box::new(|_| Some(LiveMessage::Resync)));
        listen(
            RUN_EVENT,
            Box::new(|data| serde_json::from_str(&data).ok().map(LiveMessage::Run)),
        );
        listen(
            UNREAD_EVENT,
            Box::new(|data| data.parse().ok().map(LiveMessage::Unread)),
        );
        Some(Stream {
            tenant,
            source,
            _handlers: handlers,
        })
    }
}
