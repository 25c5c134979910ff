//! Run lists, what needs no database type: the hub's filters (generic
//! over the database) and per-bucket counts from rows. The lists and counts
//! are `repositories/run_lists.rs`.

use super::status_list;
use crate::domain::*;
use crate::server::store::StoreError;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Per-bucket counts from `(status, count)` rows.
pub fn bucket_counts(rows: Vec<(String, i64)>) -> Result<BucketCounts, StoreError> {
    let mut counts = BucketCounts::default();
    for (status, n) in rows {
        let status = RunStatus::parse(&status).map_err(|e| StoreError::Invalid(e.0))?;
        counts.add(status.bucket(), n);
    }
    Ok(counts)
}

/// Appends the conditions of a run filter over runs aliased `r`; the
/// status bucket only `with_bucket` (the counts group by status instead).
pub fn push_run_filter<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    filter: &RunFilter,
    with_bucket: bool,
    byte_order: &str,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
    Timestamp: Encode<'a, DB> + Type<DB>,
    UserId: Encode<'a, DB> + Type<DB>,
    RunId: Encode<'a, DB> + Type<DB>,
{
    if let (true, Some(bucket)) = (with_bucket, filter.bucket) {
        qb.push(format!(
            " AND r.status IN ({})",
            status_list(&bucket.statuses())
        ));
    }
    if let Some(operation) = filter.operation {
        qb.push(" AND r.resource = ");
        qb.push_bind(operation.resource());
        qb.push(" AND r.action = ");
        qb.push_bind(operation.action());
    }
    if let Some(initiator) = filter.initiator {
        qb.push(" AND r.user_id = ");
        qb.push_bind(initiator);
    }
    if let Some(from) = filter.created_from {
        qb.push(" AND r.created_at >= ");
        qb.push_bind(from);
    }
    if let Some(before) = filter.created_before {
        qb.push(" AND r.created_at < ");
        qb.push_bind(before);
    }
    if let Some(reason) = filter.reason {
        qb.push(
            " AND EXISTS (SELECT 1 FROM run_failure_reasons fr \
             WHERE fr.run_id = r.id AND fr.reason_code = ",
        );
        qb.push_bind(reason.as_str());
        qb.push(")");
    }
    match &filter.search {
        None => {}
        Some(search @ RunSearch::IdPrefix(_)) => {
            if let Some((first, last)) = search.id_range() {
                qb.push(" AND r.id BETWEEN ");
                qb.push_bind(first);
                qb.push(" AND ");
                qb.push_bind(last);
            }
        }
        // A prefix is a range of keys in byte order (`byte_order` makes
        // PostgreSQL compare bytes whatever the database's collation).
        Some(RunSearch::KeyPrefix(prefix)) => {
            qb.push(format!(" AND r.idempotency_key {byte_order} >= "));
            qb.push_bind(prefix.clone());
            if let Some(upper) = prefix_upper_bound(prefix) {
                qb.push(format!(" AND r.idempotency_key {byte_order} < "));
                qb.push_bind(upper);
            }
        }
    }
}
