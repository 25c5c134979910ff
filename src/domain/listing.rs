use super::{OperationKind, ParseError, RunId, RunSummary, StatusBucket, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Position in a newest-first list: the (created_at, id) of a row. Keyset
/// paging on it never skips or repeats rows while new ones arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub at: Timestamp,
    pub id: Uuid,
}

impl Cursor {
    /// Parses the URL form `<micros>_<uuid>`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let bad = || {
            ParseError(format!(
                "{} is not a page cursor",
                super::quote_input(input)
            ))
        };
        let (at, id) = input.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            at: Timestamp(at.parse().map_err(|_| bad())?),
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.at.0, self.id.hyphenated())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Rows after the cursor in newest-first order (the next page).
    Older,
    /// Rows before the cursor (the previous page).
    Newer,
}

pub const MAX_PAGE_SIZE: u32 = 200;
pub const DEFAULT_PAGE_SIZE: u32 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub cursor: Option<Cursor>,
    pub direction: Direction,
    pub limit: u32,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self {
            cursor: None,
            direction: Direction::Older,
            limit,
        }
    }

    pub fn older_than(cursor: Cursor, limit: u32) -> Self {
        Self {
            cursor: Some(cursor),
            direction: Direction::Older,
            limit,
        }
    }

    pub fn newer_than(cursor: Cursor, limit: u32) -> Self {
        Self {
            cursor: Some(cursor),
            direction: Direction::Newer,
            limit,
        }
    }

    /// The limit clamped to 1..=MAX_PAGE_SIZE.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }
}

/// One page of a newest-first list with the cursors to its neighbours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when older rows exist: pass to `PageRequest::older_than`.
    pub older: Option<Cursor>,
    /// Present when newer rows exist: pass to `PageRequest::newer_than`.
    pub newer: Option<Cursor>,
}

/// Filters of the hub's run list. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    pub bucket: Option<StatusBucket>,
    pub operation: Option<OperationKind>,
    pub initiator: Option<UserId>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// Exactly this run (a search by id).
    pub run_id: Option<RunId>,
    /// Runs with exactly this idempotency key (a search by key).
    pub idempotency_key: Option<String>,
}

impl RunFilter {
    /// Whether the hub would list `run` under this filter: the same rules
    /// as the store's query, for runs the live stream announces.
    pub fn matches(&self, run: &RunSummary) -> bool {
        self.bucket
            .is_none_or(|bucket| run.status.bucket() == bucket)
            && self
                .operation
                .is_none_or(|operation| run.operation == operation)
            && self.initiator.is_none_or(|user| run.initiator_id == user)
            && self.created_from.is_none_or(|from| run.created_at >= from)
            && self
                .created_before
                .is_none_or(|before| run.created_at < before)
            && self.run_id.is_none_or(|id| run.id == id)
            && self
                .idempotency_key
                .as_ref()
                .is_none_or(|key| run.idempotency_key.as_ref() == Some(key))
    }
}

/// Number of runs per operator bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCounts {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub partially_succeeded: i64,
    pub failed: i64,
}

impl BucketCounts {
    pub fn get(&self, bucket: StatusBucket) -> i64 {
        match bucket {
            StatusBucket::Queued => self.queued,
            StatusBucket::Running => self.running,
            StatusBucket::Succeeded => self.succeeded,
            StatusBucket::PartiallySucceeded => self.partially_succeeded,
            StatusBucket::Failed => self.failed,
        }
    }

    pub fn add(&mut self, bucket: StatusBucket, n: i64) {
        let slot = match bucket {
            StatusBucket::Queued => &mut self.queued,
            StatusBucket::Running => &mut self.running,
            StatusBucket::Succeeded => &mut self.succeeded,
            StatusBucket::PartiallySucceeded => &mut self.partially_succeeded,
            StatusBucket::Failed => &mut self.failed,
        };
        *slot += n;
    }

    pub fn total(&self) -> i64 {
        StatusBucket::ALL.iter().map(|b| self.get(*b)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_through_its_url_form() {
        let cursor = Cursor {
            at: Timestamp(1_764_000_000_123_456),
            id: Uuid::nil(),
        };
        assert_eq!(Cursor::parse(&cursor.to_string()).unwrap(), cursor);
        assert!(Cursor::parse("12_notauuid").is_err());
        assert!(Cursor::parse("nonsense").is_err());
    }

    #[test]
    fn filters_match_runs_like_the_query() {
        use crate::domain::{Counters, RunStatus, TenantId};
        let run = RunSummary {
            id: RunId(Uuid::from_u128(7)),
            tenant_id: TenantId(Uuid::nil()),
            operation: OperationKind::DriftGenerate,
            status: RunStatus::Pending,
            counters: Counters::default(),
            initiator_id: UserId(Uuid::nil()),
            initiator_name: "Olivia".into(),
            idempotency_key: Some("drift:devices".into()),
            created_at: Timestamp(2_000),
            started_at: None,
            finished_at: None,
        };
        assert!(RunFilter::default().matches(&run));
        let only = |filter: RunFilter| filter.matches(&run);
        assert!(only(RunFilter {
            bucket: Some(StatusBucket::Queued),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            bucket: Some(StatusBucket::Running),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            operation: Some(OperationKind::BackupSetAddPolicies),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            initiator: Some(UserId(Uuid::max())),
            ..Default::default()
        }));
        assert!(only(RunFilter {
            created_from: Some(Timestamp(2_000)),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            created_before: Some(Timestamp(2_000)),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            run_id: Some(RunId(Uuid::nil())),
            ..Default::default()
        }));
        assert!(only(RunFilter {
            idempotency_key: Some("drift:devices".into()),
            ..Default::default()
        }));
        assert!(!only(RunFilter {
            idempotency_key: Some("other".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(PageRequest::first(0).effective_limit(), 1);
        assert_eq!(PageRequest::first(10_000).effective_limit(), MAX_PAGE_SIZE);
    }
}
