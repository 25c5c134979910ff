use super::{
    AuditLogId, FailureEntry, OperationKind, RunId, RunStatus, StatusBucket, TenantId, Timestamp,
    UserId,
};
use serde::{Deserialize, Serialize};

/// Progress of a run. `processed = succeeded + failed + skipped <= total`
/// holds at every moment (the database CHECKs it too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub total: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counters {
    pub fn is_consistent(&self) -> bool {
        self.processed == self.succeeded + self.failed + self.skipped
            && self.processed <= self.total
            && [self.total, self.succeeded, self.failed, self.skipped]
                .iter()
                .all(|n| *n >= 0)
    }

    /// Whole percent done, for progress bars.
    pub fn percent(&self) -> i64 {
        if self.total == 0 {
            0
        } else {
            self.processed * 100 / self.total
        }
    }
}

/// A run as the hub lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub operation: OperationKind,
    pub status: RunStatus,
    pub counters: Counters,
    pub initiator_id: UserId,
    pub initiator_name: String,
    pub idempotency_key: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl RunSummary {
    pub fn bucket(&self) -> StatusBucket {
        self.status.bucket()
    }
}

/// Every field of a run, for its detail page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    /// The run's scope: the ids of the items it works on.
    pub item_ids: Vec<String>,
    /// Operation parameters (backup set, scope key, options).
    pub params: serde_json::Value,
    pub failures: Vec<FailureEntry>,
    pub audit_log_id: Option<AuditLogId>,
    pub updated_at: Timestamp,
    pub attempt: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub heartbeat_at: Option<Timestamp>,
    pub cancel_requested_at: Option<Timestamp>,
    /// The run whose failed items this run retries.
    pub retry_of: Option<RunId>,
}

/// A start that found this run active and joined it instead of starting another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJoin {
    pub user_id: UserId,
    pub user_name: String,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_must_add_up() {
        let ok = Counters {
            total: 10,
            processed: 6,
            succeeded: 3,
            failed: 2,
            skipped: 1,
        };
        assert!(ok.is_consistent());
        assert_eq!(ok.percent(), 60);
        assert!(!Counters { processed: 5, ..ok }.is_consistent());
        assert!(!Counters { total: 5, ..ok }.is_consistent());
    }
}
