//! `GET /api/live/{tenant}`: the signed-in user's stream of the tenant's
//! changes, as server-sent events.

use super::{LiveEvent, StreamSlot};
use crate::api::AppError;
use crate::domain::{TenantId, UserId, RESYNC_EVENT, RUN_EVENT, UNREAD_EVENT};
use crate::server::auth::AuthSession;
use crate::server::metrics::Held;
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// A stream ends after this long and the browser reconnects at once: the
/// reconnect checks the session and membership again. Sign-out, a password
/// change and a membership change end streams at once (whichever process
/// made them); this is the backstop.
const MAX_STREAM_AGE: Duration = Duration::from_secs(15 * 60);
/// How soon the browser reconnects after a stream ends or the server restarts.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

pub async fn live_stream(
    State(state): State<AppState>,
    auth: AuthSession,
    Path(tenant): Path<String>,
) -> Response {
    let Some(session_user) = auth.user else {
        return refuse(AppError::Unauthorized);
    };
    // Another tenant answers exactly like one that does not exist.
    let membership = match state.store.membership(session_user.user.id, &tenant).await {
        Ok(Some(membership)) => membership,
        Ok(None) => return refuse(AppError::NotFound),
        Err(e) => return refuse(e.into()),
    };
    let subscriber = Subscriber {
        tenant: membership.tenant.id,
        user: session_user.user.id,
        slot: state.live.open_stream(session_user.user.id),
        _open: state.store.metrics().live_stream_opened(),
        events: state.live.subscribe(),
        closing: state.live.closing(),
        ends_at: Instant::now() + MAX_STREAM_AGE,
        greeted: false,
    };
    let events = futures_util::stream::unfold(subscriber, |mut subscriber| async move {
        subscriber
            .next_event()
            .await
            .map(|event| (Ok::<_, Infallible>(event), subscriber))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn refuse(error: AppError) -> Response {
    (error.http_status(), error.to_string()).into_response()
}

struct Subscriber {
    tenant: TenantId,
    user: UserId,
    /// Held while the stream is open; the user's 17th stream evicts it.
    slot: StreamSlot,
    /// Counts the stream in `opshub_live_streams_open` until it ends.
    _open: Held,
    events: broadcast::Receiver<Arc<LiveEvent>>,
    closing: watch::Receiver<bool>,
    ends_at: Instant,
    greeted: bool,
}

impl Subscriber {
    /// The next event for this user and tenant; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        if !self.greeted {
            self.greeted = true;
            return Some(Event::default().retry(RECONNECT_AFTER).comment("live"));
        }
        loop {
            let received = tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => return None,
                _ = self.slot.evicted.wait_for(|evicted| *evicted) => return None,
                () = tokio::time::sleep_until(self.ends_at) => return None,
                received = self.events.recv() => received,
            };
            let event = match received {
                Ok(event) => event,
                // Fell behind: whatever was dropped, the page reloads.
                Err(broadcast::error::RecvError::Lagged(_)) => Arc::new(LiveEvent::Resync),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            match self.filter(&event) {
                Filtered::Send(event) => return Some(event),
                Filtered::Skip => continue,
                Filtered::End => return None,
            }
        }
    }

    fn filter(&self, event: &LiveEvent) -> Filtered {
        match event {
            LiveEvent::Run(run) if run.tenant_id == self.tenant => {
                match Event::default().event(RUN_EVENT).json_data(run) {
                    Ok(event) => Filtered::Send(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot encode a run for a live stream");
                        Filtered::Skip
                    }
                }
            }
            LiveEvent::Unread {
                tenant,
                user,
                count,
            } if *tenant == self.tenant && *user == self.user => {
                Filtered::Send(Event::default().event(UNREAD_EVENT).data(count.to_string()))
            }
            LiveEvent::AccessChanged { tenant, user }
                if *tenant == self.tenant && *user == self.user =>
            {
                Filtered::End
            }
            LiveEvent::UserChanged { user } if *user == self.user => Filtered::End,
            LiveEvent::Resync => Filtered::Send(Event::default().event(RESYNC_EVENT).data("")),
            _ => Filtered::Skip,
        }
    }
}

enum Filtered {
    Send(Event),
    Skip,
    End,
}
