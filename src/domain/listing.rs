use super::{
    OperationKind, ParseError, ReasonCode, RunId, RunSummary, StatusBucket, Timestamp, UserId,
};
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
        let bad =
            || ParseError("not a page cursor (the pages' older/newer links carry them)".into());
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
    /// The hub's search box: a run id or idempotency key prefix.
    pub search: Option<RunSearch>,
    /// Runs that failed an item (or failed themselves) with this code, as
    /// the Insights page's reason totals count them.
    pub reason: Option<ReasonCode>,
}

/// A search of the hub: text that reads as the start of a run id (hex
/// digits, hyphens where a UUID has them) finds the runs whose id starts so
/// (a whole id: that run); anything else finds the runs whose idempotency
/// key starts with it. Both are range reads of an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunSearch {
    /// Lowercase hex digits, 1 to 32, hyphens left out.
    IdPrefix(String),
    KeyPrefix(String),
}

impl RunSearch {
    pub fn parse(text: &str) -> RunSearch {
        let text = text.trim();
        match id_prefix_digits(text) {
            Some(digits) => RunSearch::IdPrefix(digits),
            None => RunSearch::KeyPrefix(text.to_string()),
        }
    }

    /// The first and last run id an id prefix covers.
    pub fn id_range(&self) -> Option<(RunId, RunId)> {
        let RunSearch::IdPrefix(digits) = self else {
            return None;
        };
        let bound = |fill: char| {
            let hex: String = digits
                .chars()
                .chain(std::iter::repeat(fill))
                .take(32)
                .collect();
            uuid::Uuid::parse_str(&hex).ok().map(RunId)
        };
        Some((bound('0')?, bound('f')?))
    }

    pub fn matches(&self, run: &RunSummary) -> bool {
        match self {
            RunSearch::IdPrefix(digits) => {
                run.id.0.simple().to_string().starts_with(digits.as_str())
            }
            RunSearch::KeyPrefix(prefix) => run
                .idempotency_key
                .as_deref()
                .is_some_and(|key| key.starts_with(prefix.as_str())),
        }
    }
}

/// The hex digits of `text` when it reads as the start of a UUID in its
/// usual form (8-4-4-4-12, lowercase or uppercase).
fn id_prefix_digits(text: &str) -> Option<String> {
    const HYPHENS_AT: [usize; 4] = [8, 13, 18, 23];
    if text.is_empty() || text.chars().count() > 36 {
        return None;
    }
    let mut digits = String::with_capacity(32);
    for (at, c) in text.chars().enumerate() {
        match c {
            '-' if HYPHENS_AT.contains(&at) => {}
            c if c.is_ascii_hexdigit() && !HYPHENS_AT.contains(&at) => {
                digits.push(c.to_ascii_lowercase())
            }
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some(digits)
}

/// The least string greater than every string that starts with `prefix`,
/// in code point order (which is UTF-8 byte order): `prefix` with its last
/// character raised by one. None when no such string exists (the prefix is
/// all U+10FFFF): then everything from `prefix` on matches.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl RunFilter {
    /// Whether the hub would list `run` under this filter: the same rules
    /// as the store's query, for runs the live stream announces (never
    /// under a reason filter, which a summary cannot tell).
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
            && self
                .search
                .as_ref()
                .is_none_or(|search| search.matches(run))
            && self.reason.is_none()
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
            stalled_at: None,
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
        let search = |text: &str| RunFilter {
            search: Some(RunSearch::parse(text)),
            ..Default::default()
        };
        assert!(!only(search(&Uuid::nil().to_string())));
        assert!(only(search(&run.id.to_string())));
        assert!(
            only(search("00000000-0000")),
            "an id prefix, hyphens as in the id"
        );
        assert!(only(search("drift:devices")));
        assert!(only(search("drift:")), "a key prefix");
        assert!(!only(search("devices")));
        assert!(!only(search("other")));
    }

    #[test]
    fn searches_read_as_id_or_key_prefixes() {
        assert_eq!(
            RunSearch::parse(" 0190AB "),
            RunSearch::IdPrefix("0190ab".into())
        );
        assert_eq!(
            RunSearch::parse("0190abcd-12"),
            RunSearch::IdPrefix("0190abcd12".into())
        );
        // A hyphen where a UUID has none, or anything not hex: a key.
        assert_eq!(
            RunSearch::parse("01-90"),
            RunSearch::KeyPrefix("01-90".into())
        );
        assert_eq!(
            RunSearch::parse("drift.generate:"),
            RunSearch::KeyPrefix("drift.generate:".into())
        );
        assert_eq!(RunSearch::parse("ü"), RunSearch::KeyPrefix("ü".into()));
        let whole = Uuid::from_u128(0x0190_abcd_0000_7000_8000_0000_0000_0001);
        let (low, high) = RunSearch::parse(&whole.to_string()).id_range().unwrap();
        assert_eq!((low.0, high.0), (whole, whole));
        let (low, high) = RunSearch::parse("0190ab").id_range().unwrap();
        assert_eq!(
            low.0.simple().to_string(),
            format!("0190ab{}", "0".repeat(26))
        );
        assert_eq!(
            high.0.simple().to_string(),
            format!("0190ab{}", "f".repeat(26))
        );
        assert_eq!(RunSearch::parse("drift").id_range(), None);
    }

    #[test]
    fn a_prefix_upper_bound_follows_every_string_with_that_prefix() {
        assert_eq!(prefix_upper_bound("drift:").as_deref(), Some("drift;"));
        assert_eq!(
            prefix_upper_bound("ab\u{D7FF}").as_deref(),
            Some("ab\u{E000}"),
            "surrogates skipped"
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        for key in ["drift:", "drift:a", "drift:\u{10FFFF}x", "drift:zzz"] {
            assert!(
                key >= "drift:" && key < prefix_upper_bound("drift:").unwrap().as_str(),
                "{key}"
            );
        }
        assert!("drift;" >= prefix_upper_bound("drift:").unwrap().as_str());
    }

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(PageRequest::first(0).effective_limit(), 1);
        assert_eq!(PageRequest::first(10_000).effective_limit(), MAX_PAGE_SIZE);
    }
}
