use super::codec::JsonText;
use super::findings::FindingsQuery;
use super::AppError;
use crate::domain::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// What the hub page shows: one page of runs, the count per bucket, what
/// the filters offer, and (for operators) what can be started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubData {
    pub tenant: Tenant,
    pub runs: Page<RunSummary>,
    pub counts: BucketCounts,
    /// The tenant's members, for the initiator filter: names, never email
    /// addresses (viewers read this).
    pub initiators: Vec<Initiator>,
    /// Present for operators: the start forms' choices.
    pub start: Option<StartChoices>,
}

/// A member as the initiator filter offers them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator {
    pub id: UserId,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartChoices {
    /// Scopes with at least two completed syncs (drift needs two).
    pub scopes: Vec<String>,
    pub backup_sets: Vec<(BackupSetId, String)>,
    pub policies: Vec<(PolicyId, String)>,
}

/// Hub query as it appears in the URL; every field is optional text so a
/// shared link round-trips exactly. Invalid values are a 400, never ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubQuery {
    pub bucket: Option<String>,
    pub operation: Option<String>,
    /// Initiator's user id.
    pub initiator: Option<String>,
    /// Queued on or after this day or hour (UTC, `YYYY-MM-DD` or `YYYY-MM-DDTHH`).
    pub from: Option<String>,
    /// Queued on or before this day or hour (UTC, `YYYY-MM-DD` or `YYYY-MM-DDTHH`).
    pub to: Option<String>,
    /// A run id or an idempotency key.
    pub q: Option<String>,
    /// A failure reason code (`timeout`): runs that failed with it.
    pub reason: Option<String>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub limit: Option<String>,
}

/// A filter field's value; empty means "any".
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A UTC day (`YYYY-MM-DD`) or hour (`YYYY-MM-DDTHH`, as the Insights
/// page links): its start and its length.
fn period(text: &str, field: &str) -> Result<(Timestamp, i64), ParseError> {
    Timestamp::period(text).ok_or_else(|| {
        ParseError(format!(
            "`{field}` must be a date like 2026-11-27 or an hour like 2026-11-27T09"
        ))
    })
}

impl HubQuery {
    /// The fields by their names in the URL.
    fn fields(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("bucket", &self.bucket),
            ("operation", &self.operation),
            ("initiator", &self.initiator),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("reason", &self.reason),
            ("older", &self.older),
            ("newer", &self.newer),
            ("limit", &self.limit),
        ]
    }

    /// The query string of this query, for links (`?bucket=failed&limit=20`).
    pub fn to_query_string(&self) -> String {
        query_string(&self.fields())
    }

    /// Empty fields (a submitted filter form) mean "any". Every field has at
    /// most `MAX_SEARCH_CHARS` characters.
    pub fn parse(&self) -> Result<(RunFilter, PageRequest), ParseError> {
        bounded_fields(&self.fields())?;
        let search = given(&self.q);
        let filter = RunFilter {
            bucket: given(&self.bucket).map(StatusBucket::parse).transpose()?,
            operation: given(&self.operation)
                .map(OperationKind::parse)
                .transpose()?,
            initiator: given(&self.initiator).map(UserId::parse).transpose()?,
            created_from: given(&self.from)
                .map(|d| period(d, "from").map(|(start, _)| start))
                .transpose()?,
            // Inclusive: up to the end of the day or hour named.
            created_before: given(&self.to)
                .map(|d| period(d, "to").map(|(start, length)| Timestamp(start.0 + length)))
                .transpose()?,
            search: search.map(RunSearch::parse),
            reason: given(&self.reason).map(ReasonCode::parse).transpose()?,
        };
        let limit = match given(&self.limit) {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ParseError(format!(
                        "page size must be a whole number from 1 to {MAX_PAGE_SIZE}"
                    ))
                })?,
        };
        let page = match (&self.older, &self.newer) {
            (Some(_), Some(_)) => {
                return Err(ParseError("use either `older` or `newer`, not both".into()))
            }
            (Some(cursor), None) => PageRequest::older_than(Cursor::parse(cursor)?, limit),
            (None, Some(cursor)) => PageRequest::newer_than(Cursor::parse(cursor)?, limit),
            (None, None) => PageRequest::first(limit),
        };
        Ok((filter, page))
    }
}

#[server(endpoint = "runs/hub", input = Json, output = JsonText)]
pub async fn hub_runs(tenant: String, query: HubQuery) -> Result<HubData, AppError> {
    super::ssr::respond(hub_data(&tenant, &query).await)
}

#[cfg(feature = "ssr")]
async fn hub_data(tenant: &str, query: &HubQuery) -> Result<HubData, AppError> {
    let access = super::ssr::authorize(tenant, Role::Viewer).await?;
    let tenant = access.tenant.clone();
    let (filter, page) = query.parse()?;
    let store = super::ssr::store()?;
    let runs = store.list_runs(tenant.id, &filter, page).await?;
    let counts = tab_counts(store.as_ref(), tenant.id, filter).await?;
    let members = store.members(tenant.id).await?;
    let start = if access.role >= Role::Operator {
        Some(StartChoices {
            scopes: store
                .inventory_scopes(tenant.id)
                .await?
                .into_iter()
                // Scopes stored before keys were checked may carry what
                // the sanitiser hides; they cannot be started anyway.
                .filter(|scope| {
                    scope.completed_syncs >= 2 && is_clean_identifier(&scope.selection_hash)
                })
                .map(|scope| scope.selection_hash)
                .collect(),
            backup_sets: store
                .list_backup_sets(tenant.id)
                .await?
                .into_iter()
                .map(|set| (set.id, sanitize_reason(&set.name)))
                .collect(),
            policies: store
                .list_policies(tenant.id)
                .await?
                .into_iter()
                .map(|policy| (policy.id, sanitize_reason(&policy.name)))
                .collect(),
        })
    } else {
        None
    };
    Ok(HubData {
        tenant,
        runs,
        counts,
        initiators: members
            .into_iter()
            .map(|m| Initiator {
                id: m.user.id,
                display_name: m.user.display_name,
            })
            .collect(),
        start,
    })
}

/// The counts on the hub's tabs: every bucket under the other filters.
#[cfg(feature = "ssr")]
async fn tab_counts(
    store: &dyn crate::server::store::Store,
    tenant: TenantId,
    filter: RunFilter,
) -> Result<BucketCounts, AppError> {
    let filter = RunFilter {
        bucket: None,
        ..filter
    };
    Ok(store.count_runs_by_bucket(tenant, &filter).await?)
}

/// The hub's tab counts alone: a live hub reads them again when runs change.
#[server(endpoint = "runs/counts", input = Json, output = JsonText)]
pub async fn hub_counts(tenant: String, query: HubQuery) -> Result<BucketCounts, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let (filter, _) = query.parse()?;
            tab_counts(super::ssr::store()?.as_ref(), access.tenant.id, filter).await
        }
        .await,
    )
}

/// One run as the hub lists it: live pages catch up with it after their
/// stream (re)connects.
#[server(endpoint = "runs/summary", input = Json, output = JsonText)]
pub async fn current_run(tenant: String, run_id: String) -> Result<RunSummary, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let id = RunId::parse(&run_id).map_err(|_| AppError::NotFound)?;
            super::ssr::store()?
                .run_summaries(&[id])
                .await?
                .into_iter()
                // Another tenant's run is as missing as one that never was.
                .find(|run| run.tenant_id == access.tenant.id)
                .ok_or(AppError::NotFound)
        }
        .await,
    )
}

/// Everything the run detail page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub tenant: Tenant,
    pub run: RunDetail,
    /// Whether the viewer may abort or retry (operator or admin).
    pub can_operate: bool,
    pub scope: ScopeView,
    /// Starts that found this run active and joined it.
    pub joins: Vec<RunJoin>,
    /// Every worker's go at it, first first.
    pub attempts: Vec<RunAttempt>,
    /// Runs retrying this run's failed items.
    pub retries: Vec<RunSummary>,
    /// Every audit entry about the run (its start or retry, joins, abort),
    /// oldest first; the run's `audit_log_id` names the first.
    pub trail: Vec<TrailEntry>,
    /// The first findings of this run's comparison (drift), newest first.
    pub findings: Page<Finding>,
    /// The findings page's query listing all of them.
    pub findings_query: FindingsQuery,
    /// How its run time compares with its operation's week in the tenant;
    /// `None` before it started or without ended runs to compare with.
    pub comparison: Option<RunComparison>,
    /// The names of the items its failure and skipped entries name (policy
    /// or inventory item), by item id, where they still exist.
    pub item_names: Vec<(String, String)>,
    /// While it runs: seconds left at its average rate so far (the page
    /// then follows its recent rate).
    pub eta_seconds: Option<i64>,
    /// Whether the viewer watches the run (hears when it ends).
    pub watching: bool,
}

/// What a run works on (its `item_ids`), as the run page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ScopeView {
    Drift {
        scope_key: String,
        baseline_run_id: InventorySyncRunId,
        current_run_id: InventorySyncRunId,
        /// A retry compares only these subjects again.
        subjects: Option<usize>,
    },
    AddPolicies {
        backup_set_id: BackupSetId,
        /// None once the set is gone.
        backup_set_name: Option<String>,
        include_payload: bool,
        /// The run's policies by name, where they still exist.
        policies: Vec<(String, String)>,
    },
    /// `item_ids` this version cannot read (shown raw instead).
    Unreadable,
}

/// How many produced findings the run page lists before linking onwards.
pub const RUN_PAGE_FINDINGS: u32 = 10;

#[server(endpoint = "runs/detail", input = Json, output = JsonText)]
pub async fn run_page(tenant: String, run_id: String) -> Result<RunPageData, AppError> {
    super::ssr::respond(run_page_data(&tenant, &run_id).await)
}

#[cfg(feature = "ssr")]
async fn run_page_data(tenant: &str, run_id: &str) -> Result<RunPageData, AppError> {
    let access = super::ssr::authorize(tenant, Role::Viewer).await?;
    let tenant = access.tenant;
    // A malformed id is just another run that does not exist.
    let id = RunId::parse(run_id).map_err(|_| AppError::NotFound)?;
    let store = super::ssr::store()?;
    let run = store.run(tenant.id, id).await?.ok_or(AppError::NotFound)?;

    let scope = match RunScope::parse(run.summary.operation, &run.item_ids) {
        Ok(RunScope::Drift(drift)) => ScopeView::Drift {
            scope_key: drift.scope_key,
            baseline_run_id: drift.baseline_run_id,
            current_run_id: drift.current_run_id,
            subjects: drift.subjects.map(|subjects| subjects.len()),
        },
        Ok(RunScope::AddPolicies(add)) => {
            let policies = store
                .policies_by_ids(tenant.id, &add.policy_ids)
                .await?
                .into_iter()
                .map(|policy| (policy.id.to_string(), sanitize_reason(&policy.name)))
                .collect();
            let set = store.backup_set(tenant.id, add.backup_set_id).await?;
            ScopeView::AddPolicies {
                backup_set_id: add.backup_set_id,
                backup_set_name: set.map(|set| sanitize_reason(&set.name)),
                include_payload: add.options.include_payload,
                policies,
            }
        }
        Err(_) => ScopeView::Unreadable,
    };
    // The spec's Phase 1 link: a drift run's findings are its comparison's
    // (scope key + baseline + current), whichever run first found them.
    let (filter, findings_query) = match &scope {
        ScopeView::Drift {
            scope_key,
            baseline_run_id,
            current_run_id,
            ..
        } => (
            FindingFilter {
                scope_key: Some(scope_key.clone()),
                baseline: Some(*baseline_run_id),
                current: Some(*current_run_id),
                ..FindingFilter::default()
            },
            FindingsQuery {
                scope: Some(scope_key.clone()),
                baseline: Some(baseline_run_id.to_string()),
                current: Some(current_run_id.to_string()),
                ..FindingsQuery::default()
            },
        ),
        _ => (
            FindingFilter {
                produced_by: Some(id),
                ..FindingFilter::default()
            },
            FindingsQuery {
                run: Some(id.to_string()),
                ..FindingsQuery::default()
            },
        ),
    };
    let findings = store
        .list_findings(tenant.id, &filter, PageRequest::first(RUN_PAGE_FINDINGS))
        .await?;
    let entry_ids: Vec<String> = run
        .failures
        .iter()
        .filter_map(|entry| entry.item_id.clone())
        .collect();
    let item_names = match (&scope, entry_ids.is_empty()) {
        (_, true) | (ScopeView::Unreadable, _) => Vec::new(),
        (ScopeView::AddPolicies { .. }, false) => {
            let ids: Vec<PolicyId> = entry_ids
                .iter()
                .filter_map(|id| PolicyId::parse(id).ok())
                .collect();
            store
                .policies_by_ids(tenant.id, &ids)
                .await?
                .into_iter()
                .map(|policy| (policy.id.to_string(), sanitize_reason(&policy.name)))
                .collect()
        }
        (
            ScopeView::Drift {
                baseline_run_id,
                current_run_id,
                ..
            },
            false,
        ) => store
            .inventory_item_names(tenant.id, [*current_run_id, *baseline_run_id], &entry_ids)
            .await?
            .into_iter()
            .map(|(key, name)| (key, sanitize_reason(&name)))
            .collect(),
    };
    let comparison = match run.summary.started_at {
        Some(started) => {
            let now = Timestamp::now();
            let week = store
                .rollups(tenant.id, a_week_before(now), Some(run.summary.operation))
                .await?;
            let ran = run.summary.finished_at.unwrap_or(now).0 - started.0;
            RunComparison::against(ran / 1_000, &week.run_times())
        }
        None => None,
    };
    let eta_seconds = match (run.summary.status, run.summary.started_at) {
        (RunStatus::Running, Some(started)) => {
            let c = run.summary.counters;
            eta_seconds(
                c.total - c.processed,
                c.processed,
                (Timestamp::now().0 - started.0) / 1_000,
            )
        }
        _ => None,
    };
    Ok(RunPageData {
        eta_seconds,
        comparison,
        item_names,
        joins: store.run_joins(tenant.id, id).await?,
        attempts: store.run_attempts(tenant.id, id).await?,
        retries: store.retries_of(tenant.id, id).await?,
        trail: store.run_audit_trail(tenant.id, id).await?,
        watching: store.is_watching(tenant.id, id, access.user.id).await?,
        can_operate: access.role >= Role::Operator,
        tenant,
        run,
        scope,
        findings,
        findings_query,
    })
}

/// Watches the run: the viewer gets its "completed" notice when it ends,
/// once, with its initiator and joiners. Any member may; watching twice is
/// watching. A form post, so it works without JavaScript; returns whether
/// the viewer now watches.
#[server(endpoint = "runs/watch", output = JsonText)]
pub async fn watch_run(tenant: String, run_id: String) -> Result<bool, AppError> {
    super::ssr::respond(set_watching(&tenant, &run_id, true).await)
}

/// Stops watching the run (nothing happens for a run not watched).
#[server(endpoint = "runs/unwatch", output = JsonText)]
pub async fn unwatch_run(tenant: String, run_id: String) -> Result<bool, AppError> {
    super::ssr::respond(set_watching(&tenant, &run_id, false).await)
}

#[cfg(feature = "ssr")]
async fn set_watching(tenant: &str, run_id: &str, watch: bool) -> Result<bool, AppError> {
    let access = super::ssr::authorize(tenant, Role::Viewer).await?;
    // A malformed id is just another run that does not exist.
    let run = RunId::parse(run_id).map_err(|_| AppError::NotFound)?;
    let store = super::ssr::store()?;
    let (tenant, user) = (access.tenant.id, access.user.id);
    if watch {
        store.watch_run(tenant, run, user).await?;
    } else {
        store.unwatch_run(tenant, run, user).await?;
    }
    Ok(watch)
}
