//! What the store committed, for live views. Every write that changes a run
//! or a user's notifications records a [`Change`] after it commits; the
//! backend relays each process's changes to every process sharing the
//! database (PostgreSQL NOTIFY; on SQLite, datagrams between the processes
//! on one file, see `peers`), where the live hub turns them into stream
//! events.

use crate::domain::{RunId, TenantId, UserId};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch, Notify};

/// One thing that changed. Carries ids only: readers load the current state
/// once per change, however many streams show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    Run {
        tenant: TenantId,
        run: RunId,
    },
    Notifications {
        tenant: TenantId,
        user: UserId,
    },
    /// A user's role in a tenant was granted, changed or removed: their open
    /// streams of that tenant end and must be authorised again.
    Access {
        tenant: TenantId,
        user: UserId,
    },
    /// The user signed out or their password changed: all their open
    /// streams end, and each browser's reconnect is authorised afresh.
    User {
        user: UserId,
    },
}

/// Which recordings a batch taken from the log covers (see `ChangeLog::relayed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayMark(u64);

/// What a relay hands to its subscribers.
#[derive(Clone, Debug)]
pub enum Relayed {
    Changes(Arc<[Change]>),
    /// Changes may have been missed (the relay reconnected): views must
    /// reload what they show.
    Gap,
}

/// Changes this process committed, waiting for the relay. A set: a run that
/// changes many times before the relay looks is relayed once. Inert (records
/// nothing) until a relay starts, so processes without one pay nothing.
pub struct ChangeLog {
    relaying: AtomicBool,
    pending: Mutex<Pending>,
    recorded: Notify,
    /// The last recording the relay has handed on (see `flushed`).
    relayed_up_to: watch::Sender<u64>,
    delivered: broadcast::Sender<Relayed>,
}

#[derive(Default)]
struct Pending {
    changes: HashSet<Change>,
    /// Recordings so far that added a change.
    recorded: u64,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self {
            relaying: AtomicBool::new(false),
            pending: Mutex::default(),
            recorded: Notify::new(),
            relayed_up_to: watch::channel(0).0,
            // Room for bursts; a subscriber that still falls behind is told
            // (`Lagged`) and resyncs.
            delivered: broadcast::channel(1_024).0,
        }
    }
}

impl ChangeLog {
    pub fn record(&self, changes: impl IntoIterator<Item = Change>) {
        if !self.relaying.load(Ordering::Relaxed) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let before = pending.changes.len();
        pending.changes.extend(changes);
        let added = pending.changes.len() > before;
        if added {
            pending.recorded += 1;
        }
        drop(pending);
        if added {
            self.recorded.notify_one();
        }
    }

    /// Turns recording on; true the first time (the caller starts the relay).
    pub fn start_relaying(&self) -> bool {
        !self.relaying.swap(true, Ordering::SeqCst)
    }

    /// Waits for recorded changes and takes all of them. The relay calls
    /// `relayed` with the returned mark once it has handed them on.
    pub async fn take(&self) -> (Vec<Change>, RelayMark) {
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !pending.changes.is_empty() {
                    return (
                        pending.changes.drain().collect(),
                        RelayMark(pending.recorded),
                    );
                }
            }
            self.recorded.notified().await;
        }
    }

    /// The changes taken with `mark` have been sent (or sending them failed
    /// and was logged): `flushed` stops waiting for them.
    pub fn relayed(&self, mark: RelayMark) {
        self.relayed_up_to.send_if_modified(|up_to| {
            let newer = mark.0 > *up_to;
            *up_to = (*up_to).max(mark.0);
            newer
        });
    }

    /// Resolves once every change recorded before the call has been relayed
    /// to the other processes: a short-lived process (the CLI) awaits it
    /// before it exits, or its changes would die with it. Immediate when
    /// nothing is relaying.
    pub async fn flushed(&self) {
        if !self.relaying.load(Ordering::SeqCst) {
            return;
        }
        let target = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.recorded
        };
        let mut relayed = self.relayed_up_to.subscribe();
        // The sender lives as long as `self`.
        let _ = relayed.wait_for(|up_to| *up_to >= target).await;
    }

    /// Hands relayed changes to this process's subscribers.
    pub fn deliver(&self, relayed: Relayed) {
        // No subscriber (a worker-only process) is fine.
        let _ = self.delivered.send(relayed);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Relayed> {
        self.delivered.subscribe()
    }
}

/// Changes on the wire between processes (a NOTIFY payload or a datagram:
/// text, under 8,000 bytes): `r<tenant><run>`, `n<tenant><user>`,
/// `a<tenant><user>` and `u<user>` with simple-format uuids, comma-separated.
pub mod wire {
    use super::Change;
    use crate::domain::{RunId, TenantId, UserId};
    use uuid::Uuid;

    /// Changes per payload: 100 × 66 bytes stays well under the limit.
    const PER_PAYLOAD: usize = 100;

    pub fn encode(changes: &[Change]) -> Vec<String> {
        changes
            .chunks(PER_PAYLOAD)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|change| match change {
                        Change::Run { tenant, run } => {
                            format!("r{}{}", tenant.0.simple(), run.0.simple())
                        }
                        Change::Notifications { tenant, user } => {
                            format!("n{}{}", tenant.0.simple(), user.0.simple())
                        }
                        Change::Access { tenant, user } => {
                            format!("a{}{}", tenant.0.simple(), user.0.simple())
                        }
                        Change::User { user } => format!("u{}", user.0.simple()),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    /// The changes in a payload; `None` when any part is not one (the
    /// payload did not come from us).
    pub fn decode(payload: &str) -> Option<Vec<Change>> {
        payload
            .split(',')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (kind, ids) = part.split_at_checked(1)?;
                if kind == "u" {
                    return Some(Change::User {
                        user: UserId(Uuid::try_parse(ids).ok()?),
                    });
                }
                let (first, second) = ids.split_at_checked(32)?;
                let first = Uuid::try_parse(first).ok()?;
                let second = Uuid::try_parse(second).ok()?;
                match kind {
                    "r" => Some(Change::Run {
                        tenant: TenantId(first),
                        run: RunId(second),
                    }),
                    "n" => Some(Change::Notifications {
                        tenant: TenantId(first),
                        user: UserId(second),
                    }),
                    "a" => Some(Change::Access {
                        tenant: TenantId(first),
                        user: UserId(second),
                    }),
                    _ => None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunId, TenantId, UserId};

    #[test]
    fn changes_round_trip_through_notify_payloads() {
        let tenant = TenantId::generate();
        let changes: Vec<Change> = (0..250)
            .map(|i| {
                if i % 3 == 0 {
                    Change::Notifications {
                        tenant,
                        user: UserId::generate(),
                    }
                } else if i % 7 == 0 {
                    Change::Access {
                        tenant,
                        user: UserId::generate(),
                    }
                } else if i % 11 == 0 {
                    Change::User {
                        user: UserId::generate(),
                    }
                } else {
                    Change::Run {
                        tenant,
                        run: RunId::generate(),
                    }
                }
            })
            .collect();
        let payloads = wire::encode(&changes);
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8_000));
        let decoded: Vec<Change> = payloads
            .iter()
            .flat_map(|p| wire::decode(p).expect("our own payload decodes"))
            .collect();
        assert_eq!(decoded, changes);
    }

    #[test]
    fn foreign_payloads_are_refused_whole() {
        let good = wire::encode(&[Change::Run {
            tenant: TenantId::generate(),
            run: RunId::generate(),
        }])
        .remove(0);
        assert!(wire::decode(&good).is_some());
        assert_eq!(wire::decode(&format!("{good},x")), None);
        assert_eq!(wire::decode(&good.replacen('r', "q", 1)), None);
        assert_eq!(wire::decode(&good[..40]), None);
        assert_eq!(wire::decode("r🙂"), None);
        let user = wire::encode(&[Change::User {
            user: UserId::generate(),
        }])
        .remove(0);
        assert_eq!(user.len(), 33);
        assert_eq!(wire::decode(&user[..20]), None);
        assert_eq!(wire::decode(&format!("{user}0")), None);
    }

    #[tokio::test]
    async fn nothing_is_recorded_until_a_relay_runs_and_repeats_collapse() {
        let log = Arc::new(ChangeLog::default());
        let change = Change::Run {
            tenant: TenantId::generate(),
            run: RunId::generate(),
        };
        log.record([change]);
        assert!(log.pending.lock().unwrap().changes.is_empty());
        assert!(log.start_relaying());
        assert!(!log.start_relaying());
        log.record([change, change]);
        log.record([change]);
        let (taken, mark) = log.take().await;
        assert_eq!(taken, vec![change]);

        // `flushed` waits until the relay says the taken changes went out.
        let flushed = tokio::spawn({
            let log = log.clone();
            async move { log.flushed().await }
        });
        tokio::task::yield_now().await;
        assert!(!flushed.is_finished());
        log.relayed(mark);
        flushed.await.unwrap();
    }
}
