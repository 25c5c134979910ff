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
use crate::server::store::sql::{finish_page, push_keyset, push_keyset_on, SqlDialect};
use crate::server::store::StoreResult;

impl Store {
    pub(super) async fn list_run_page(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RunSummary>> {
        let mut qb = Builder::new(format!("SELECT {RUN_SUMMARY_COLUMNS} FROM "));
        match filter.reason {
            None => {
                qb.push(
                    "bulk_operation_runs r JOIN users u ON u.id = r.user_id WHERE r.tenant_id = ",
                );
                qb.push_bind(tenant);
                push_run_filter(&mut qb, filter, true, <Store as SqlDialect>::BYTE_ORDER);
                push_keyset(&mut qb, "r", &page);
            }
            // The reason's runs newest first from its own index, the other
            // filters checked on each: a rare reason reads a few rows, not
            // the tenant's history.
            Some(reason) => {
                qb.push(
                    "run_failure_reasons fr JOIN bulk_operation_runs r ON r.id = fr.run_id \
                     JOIN users u ON u.id = r.user_id WHERE fr.tenant_id = ",
                );
                qb.push_bind(tenant);
                qb.push(" AND fr.reason_code = ");
                qb.push_bind(reason.as_str());
                qb.push(" AND r.tenant_id = ");
                qb.push_bind(tenant);
                let rest = RunFilter {
                    reason: None,
                    ..filter.clone()
                };
                push_run_filter(&mut qb, &rest, true, <Store as SqlDialect>::BYTE_ORDER);
                push_keyset_on(&mut qb, "fr.run_created_at", "fr.run_id", &page);
            }
        }
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
                let mut qb = Builder::new("SELECT r.status, COUNT(*) FROM ");
                let rest = match filter.reason {
                    None => {
                        qb.push("bulk_operation_runs r WHERE r.tenant_id = ");
                        qb.push_bind(tenant);
                        filter.clone()
                    }
                    // A reason's runs through its own index, as the list.
                    Some(reason) => {
                        qb.push(
                            "run_failure_reasons fr JOIN bulk_operation_runs r \
                             ON r.id = fr.run_id WHERE fr.tenant_id = ",
                        );
                        qb.push_bind(tenant);
                        qb.push(" AND fr.reason_code = ");
                        qb.push_bind(reason.as_str());
                        qb.push(" AND r.tenant_id = ");
                        qb.push_bind(tenant);
                        RunFilter {
                            reason: None,
                            ..filter.clone()
                        }
                    }
                };
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
