//! Run lists and per-bucket counts: the hub's filters, keyset pages, and
//! counts that remember what settled long ago (`settled.rs`).
//!
//! Here: `list_run_page` and `count_by_bucket`, behind
//! `RunRepository::list_runs` and `count_runs_by_bucket`; the filter
//! (`push_run_filter`) and `bucket_counts` need no database type and are in
//! `sql/run_lists.rs`.

use super::{Builder, Store};
use crate::domain::*;
use crate::server::store::rows::{RunSummaryRow, RUN_SUMMARY_COLUMNS};
use crate::server::store::settled::settled_cutoff;
use crate::server::store::sql::run_lists::{bucket_counts, push_run_filter};
use crate::server::store::sql::{finish_page, push_keyset_on, SqlDialect};
use crate::server::store::StoreResult;

impl Store {
    pub(super) async fn list_run_page(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RunSummary>> {
        let mut qb = Builder::new(format!("SELECT {RUN_SUMMARY_COLUMNS}"));
        let (rest, [created_at, id]) = push_tenant_runs(&mut qb, tenant, filter, true);
        push_run_filter(&mut qb, &rest, true, <Store as SqlDialect>::BYTE_ORDER);
        push_keyset_on(&mut qb, created_at, id, &page);
        // A search's range (of run ids or keys) may match one run or all of
        // them, so it is planned with its values every time (an unnamed
        // statement): PostgreSQL's generic plan for a cached one guesses,
        // and walked a 500,000-run tenant in date order to find one run.
        let rows: Vec<RunSummaryRow> = qb
            .build_query_as()
            .persistent(filter.search.is_none())
            .fetch_all(&self.pool)
            .await?;
        let runs = rows
            .into_iter()
            .map(RunSummaryRow::into_domain)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(finish_page(runs, &page, |run| Cursor {
            at: run.created_at,
            id: run.id.0,
        }))
    }

    pub(super) async fn count_by_bucket(
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
                let mut qb = Builder::new("SELECT r.status, COUNT(*)");
                let (rest, _) = push_tenant_runs(&mut qb, tenant, filter, false);
                qb.push(" AND r.finished_at < ");
                qb.push_bind(cutoff);
                push_run_filter(&mut qb, &rest, false, <Store as SqlDialect>::BYTE_ORDER);
                qb.push(" GROUP BY r.status");
                let settled = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
                self.settled_counts
                    .remember(tenant, cutoff, filter, settled);
                settled
            }
        };
        // Not ended, or ended since the cutoff: a few runs, found through
        // the (tenant, finished_at) index and only then filtered. The CTE is
        // materialized so the planner cannot walk a filter's own index
        // (initiator, operation) through the tenant's whole history instead.
        let mut qb = Builder::new("WITH recent AS MATERIALIZED (");
        for (index, condition) in [" AND r.finished_at IS NULL", " AND r.finished_at >= "]
            .into_iter()
            .enumerate()
        {
            if index > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push(
                "SELECT r.id, r.tenant_id, r.user_id, r.resource, r.action, r.idempotency_key, \
                 r.status, r.created_at FROM bulk_operation_runs r WHERE r.tenant_id = ",
            );
            qb.push_bind(tenant);
            qb.push(condition);
            if index > 0 {
                qb.push_bind(cutoff);
            }
        }
        qb.push(") SELECT r.status, COUNT(*) FROM recent r WHERE r.tenant_id = ");
        qb.push_bind(tenant);
        push_run_filter(&mut qb, filter, false, <Store as SqlDialect>::BYTE_ORDER);
        qb.push(" GROUP BY r.status");
        let recent = bucket_counts(qb.build_query_as().fetch_all(&self.pool).await?)?;
        for bucket in StatusBucket::ALL {
            counts.add(bucket, recent.get(bucket));
        }
        Ok(counts)
    }
}

/// ` FROM … WHERE` the tenant's runs `r` (with their initiator `u` when
/// `with_initiator`). Under a reason filter they are the reason's runs, read
/// newest first from its own index (`run_failure_reasons fr`), so a rare
/// reason reads a few rows, not the tenant's history. Returns the filter
/// left to apply and the columns that order the runs (created at, id).
fn push_tenant_runs(
    qb: &mut Builder<'_>,
    tenant: TenantId,
    filter: &RunFilter,
    with_initiator: bool,
) -> (RunFilter, [&'static str; 2]) {
    let initiator = if with_initiator {
        " JOIN users u ON u.id = r.user_id"
    } else {
        ""
    };
    match filter.reason {
        None => {
            qb.push(format!(
                " FROM bulk_operation_runs r{initiator} WHERE r.tenant_id = "
            ));
            qb.push_bind(tenant);
            (filter.clone(), ["r.created_at", "r.id"])
        }
        Some(reason) => {
            qb.push(format!(
                " FROM run_failure_reasons fr JOIN bulk_operation_runs r ON r.id = fr.run_id\
                 {initiator} WHERE fr.tenant_id = "
            ));
            qb.push_bind(tenant);
            qb.push(" AND fr.reason_code = ");
            qb.push_bind(reason.as_str());
            qb.push(" AND r.tenant_id = ");
            qb.push_bind(tenant);
            let rest = RunFilter {
                reason: None,
                ..filter.clone()
            };
            (rest, ["fr.run_created_at", "fr.run_id"])
        }
    }
}
