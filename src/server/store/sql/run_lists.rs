//! Run lists and per-bucket counts: the hub's filters, keyset pages, and
//! counts that remember what settled long ago (`settled.rs`).

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

/// Run lists: `list_run_page` and `count_by_bucket`, behind
/// `RunRepository::list_runs` and `count_runs_by_bucket`.
/// Expanded by `impl_sql_repositories!` (see `sql/mod.rs`) for `$store` on
/// database `$db`; the expansion's scope brings the imports and the
/// helpers the other aggregates define.
macro_rules! impl_run_lists {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn list_run_page(
                &self,
                tenant: TenantId,
                filter: &RunFilter,
                page: PageRequest,
            ) -> StoreResult<Page<RunSummary>> {
                let mut qb = Builder::new(format!(
                    "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
                     JOIN users u ON u.id = r.user_id WHERE r.tenant_id = "
                ));
                qb.push_bind(tenant);
                push_run_filter(&mut qb, filter, true, <$store as SqlDialect>::BYTE_ORDER);
                push_keyset(&mut qb, "r", &page);
                let rows: Vec<RunSummaryRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                let runs = rows
                    .into_iter()
                    .map(RunSummaryRow::into_domain)
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(finish_page(runs, &page, |run| Cursor { at: run.created_at, id: run.id.0 }))
            }

            async fn count_by_bucket(
                &self,
                tenant: TenantId,
                filter: &RunFilter,
            ) -> StoreResult<BucketCounts> {
                // See `settled.rs`: runs that ended before the cutoff are
                // counted once; the rest every time, through an index.
                let cutoff = settled_cutoff(Timestamp::now());
                let mut counts = match self.settled_counts.get(tenant, cutoff, filter) {
                    Some(counts) => counts,
                    None => {
                        let mut qb = Builder::new(
                            "SELECT r.status, COUNT(*) FROM bulk_operation_runs r WHERE r.tenant_id = ",
                        );
                        qb.push_bind(tenant);
                        qb.push(" AND r.finished_at < ");
                        qb.push_bind(cutoff);
                        push_run_filter(&mut qb, filter, false, <$store as SqlDialect>::BYTE_ORDER);
                        qb.push(" GROUP BY r.status");
                        let settled = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
                        self.settled_counts.remember(tenant, cutoff, filter, settled);
                        settled
                    }
                };
                // Not ended, or ended since the cutoff.
                let mut qb = Builder::new("SELECT status, COUNT(*) FROM (");
                for (index, condition) in [" AND r.finished_at IS NULL", " AND r.finished_at >= "]
                    .into_iter()
                    .enumerate()
                {
                    if index > 0 {
                        qb.push(" UNION ALL ");
                    }
                    qb.push("SELECT r.status FROM bulk_operation_runs r WHERE r.tenant_id = ");
                    qb.push_bind(tenant);
                    qb.push(condition);
                    if index > 0 {
                        qb.push_bind(cutoff);
                    }
                    push_run_filter(&mut qb, filter, false, <$store as SqlDialect>::BYTE_ORDER);
                }
                qb.push(") recent GROUP BY status");
                let recent = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
                for bucket in StatusBucket::ALL {
                    counts.add(bucket, recent.get(bucket));
                }
                Ok(counts)
            }
        }
    };
}
pub(crate) use impl_run_lists;
