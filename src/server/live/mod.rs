//! Live updates without polling: the store's relayed changes become events
//! on one server-sent-events stream per signed-in user and tenant.
//!
//! The hub loads each change once (one query per batch of changed runs, one
//! per user whose notifications changed) and fans the result out to every
//! stream in memory, so database work per change does not grow with the
//! number of open streams. A stream that may have missed something (the
//! relay reconnected, or the stream fell behind) is told to resync.

mod stream;

pub use stream::live_stream;

use crate::domain::{RunSummary, TenantId, UserId};
use crate::server::store::{Change, Relayed, Store};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// What every stream of this process hears; each keeps what is its own.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    Run(RunSummary),
    Unread {
        tenant: TenantId,
        user: UserId,
        count: i64,
    },
    /// The user's access to the tenant changed: their streams end, and the
    /// browser's reconnect is authorised afresh.
    AccessChanged {
        tenant: TenantId,
        user: UserId,
    },
    /// The user signed out or changed their password: all their streams end.
    UserChanged {
        user: UserId,
    },
    Resync,
}

/// How many streams one user may hold open in one process: opening one more
/// closes their oldest (a tab left open long ago, most likely).
pub const MAX_STREAMS_PER_USER: usize = 16;

pub struct LiveHub {
    events: broadcast::Sender<Arc<LiveEvent>>,
    closing: watch::Sender<bool>,
    /// Queries made to load changes (a test shows they do not grow with
    /// the number of streams).
    loads: AtomicU64,
    /// Each user's open streams, oldest first. An entry leaves when its
    /// stream ends, so this holds at most the open streams.
    open: Mutex<HashMap<UserId, VecDeque<OpenStream>>>,
    next_stream: AtomicU64,
}

struct OpenStream {
    id: u64,
    /// Turning true ends the stream.
    evict: watch::Sender<bool>,
}

/// A stream's place among its user's open streams; dropping it (the stream
/// ended) gives the place up.
pub struct StreamSlot {
    hub: Arc<LiveHub>,
    user: UserId,
    id: u64,
    /// Turns true when the user opened more streams than allowed and this is
    /// the oldest.
    pub evicted: watch::Receiver<bool>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(streams) = open.get_mut(&self.user) {
            streams.retain(|stream| stream.id != self.id);
            if streams.is_empty() {
                open.remove(&self.user);
            }
        }
    }
}

impl LiveHub {
    /// Starts relaying this process's changes and loading everyone's.
    pub fn start(store: Arc<dyn Store>) -> Arc<Self> {
        store.publish_changes();
        let changes = store.subscribe_changes();
        let hub = Arc::new(Self {
            events: broadcast::channel(4_096).0,
            closing: watch::channel(false).0,
            loads: AtomicU64::new(0),
            open: Mutex::default(),
            next_stream: AtomicU64::new(0),
        });
        tokio::spawn(load_and_fan_out(store, changes, hub.clone()));
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.events.subscribe()
    }

    /// Ends every stream (the server is shutting down; browsers reconnect
    /// to whichever instance is up).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Registers a new stream of `user`, closing their oldest when they
    /// would hold more than `MAX_STREAMS_PER_USER`.
    pub fn open_stream(self: &Arc<Self>, user: UserId) -> StreamSlot {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = watch::channel(false);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let streams = open.entry(user).or_default();
        while streams.len() >= MAX_STREAMS_PER_USER {
            if let Some(oldest) = streams.pop_front() {
                oldest.evict.send_replace(true);
            }
        }
        streams.push_back(OpenStream { id, evict });
        StreamSlot {
            hub: self.clone(),
            user,
            id,
            evicted,
        }
    }

    /// How many streams `user` has open in this process.
    pub fn open_streams(&self, user: UserId) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&user).map_or(0, VecDeque::len)
    }

    fn send(&self, event: LiveEvent) {
        // No stream open is fine.
        let _ = self.events.send(Arc::new(event));
    }
}

async fn load_and_fan_out(
    store: Arc<dyn Store>,
    mut relayed: broadcast::Receiver<Relayed>,
    hub: Arc<LiveHub>,
) {
    loop {
        let first = match relayed.recv().await {
            Ok(batch) => batch,
            Err(broadcast::error::RecvError::Lagged(_)) => Relayed::Gap,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // Whatever else is already waiting is loaded together with it.
        let mut batches = vec![first];
        loop {
            match relayed.try_recv() {
                Ok(batch) => batches.push(batch),
                Err(broadcast::error::TryRecvError::Lagged(_)) => batches.push(Relayed::Gap),
                Err(_) => break,
            }
        }
        let mut gap = false;
        let mut runs = HashSet::new();
        let mut readers = HashSet::new();
        for batch in batches {
            match batch {
                Relayed::Gap => gap = true,
                Relayed::Changes(changes) => {
                    for change in changes.iter() {
                        match *change {
                            Change::Run { run, .. } => {
                                runs.insert(run);
                            }
                            Change::Notifications { tenant, user } => {
                                readers.insert((tenant, user));
                            }
                            Change::Access { tenant, user } => {
                                hub.send(LiveEvent::AccessChanged { tenant, user })
                            }
                            Change::User { user } => hub.send(LiveEvent::UserChanged { user }),
                        }
                    }
                }
            }
        }
        if gap {
            hub.send(LiveEvent::Resync);
        }
        if !runs.is_empty() {
            let ids: Vec<_> = runs.into_iter().collect();
            hub.loads.fetch_add(1, Ordering::Relaxed);
            match store.run_summaries(&ids).await {
                Ok(summaries) => summaries
                    .into_iter()
                    .for_each(|run| hub.send(LiveEvent::Run(run))),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load changed runs for live views");
                    hub.send(LiveEvent::Resync);
                }
            }
        }
        for (tenant, user) in readers {
            hub.loads.fetch_add(1, Ordering::Relaxed);
            match store.unread_count(tenant, user).await {
                Ok(count) => hub.send(LiveEvent::Unread {
                    tenant,
                    user,
                    count,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load an unread count for live views");
                    hub.send(LiveEvent::Resync);
                }
            }
        }
    }
}
