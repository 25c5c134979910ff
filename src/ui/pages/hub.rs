use crate::api::operations::{StartAddPolicies, StartDrift};
use crate::api::runs::{hub_counts, hub_runs, HubData, HubQuery, Initiator, StartChoices};
use crate::domain::{
    format_duration, BucketCounts, OperationKind, ReasonCode, RunId, RunSummary, StatusBucket,
    MAX_PAGE_SIZE, MAX_SEARCH_CHARS,
};
use crate::ui::components::{
    bucket_tab_label, ErrorView, LocalTime, Outcome, Progress, StalledBadge, StatusBadge,
};
use crate::ui::live::{follow_runs, runs_heard};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use std::collections::{HashMap, HashSet};

/// `/t/{tenant}/operations`: the tenant's runs, newest first.
#[component]
pub fn HubPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let tenant = move || params.read().get("tenant").unwrap_or_default();
    let hub_query = move || {
        let q = query.read();
        HubQuery {
            bucket: q.get("bucket"),
            operation: q.get("operation"),
            initiator: q.get("initiator"),
            from: q.get("from"),
            to: q.get("to"),
            q: q.get("q"),
            reason: q.get("reason"),
            older: q.get("older"),
            newer: q.get("newer"),
            limit: q.get("limit"),
        }
    };
    // Bumped by the refresh button; part of the resource key so a click
    // re-fetches, and echoed on the table once that data has arrived.
    let refreshes = RwSignal::new(0u32);
    let heard = runs_heard();
    let data = Resource::new(
        move || (tenant(), hub_query(), refreshes.get()),
        move |(tenant, query, refresh)| {
            let heard_before = heard();
            async move { (refresh, heard_before, hub_runs(tenant, query).await) }
        },
    );
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading runs…"</p> }>
            {move || Suspend::new(async move {
                let (refresh, heard_before, result) = data.await;
                match result {
                    Ok(hub) => view! {
                        <HubView hub query=hub_query() refresh refreshes hydrated heard_before />
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn HubView(
    hub: HubData,
    query: HubQuery,
    refresh: u32,
    refreshes: RwSignal<u32>,
    hydrated: RwSignal<bool>,
    heard_before: u64,
) -> impl IntoView {
    let slug = hub.tenant.slug.clone();
    let base = format!("/t/{slug}/operations");
    let live = follow_live(&hub, &query, heard_before);
    let counts = live.counts;
    let tab = |bucket: Option<StatusBucket>| {
        let count = move || {
            let counts = counts.get();
            bucket.map_or(counts.total(), |b| counts.get(b))
        };
        let target = HubQuery {
            bucket: bucket.map(|b| b.as_str().to_string()),
            older: None,
            newer: None,
            ..query.clone()
        };
        let current = query.bucket.as_deref() == bucket.map(StatusBucket::as_str);
        view! {
            <a class="tab" class:active=current aria-current=current.then_some("page")
                href=format!("{base}{}", target.to_query_string())>
                {bucket_tab_label(bucket)}" "<span class="count">{count}</span>
            </a>
        }
    };
    let tabs: Vec<_> = std::iter::once(None)
        .chain(StatusBucket::ALL.into_iter().map(Some))
        .map(tab)
        .collect();
    let page_link = |older: Option<String>, newer: Option<String>| {
        let target = HubQuery {
            older,
            newer,
            ..query.clone()
        };
        format!("{base}{}", target.to_query_string())
    };
    let newer_href = hub.runs.newer.map(|c| page_link(None, Some(c.to_string())));
    let older_href = hub.runs.older.map(|c| page_link(Some(c.to_string()), None));
    let empty = live.rows.is_empty();

    view! {
        <Title text=format!("{} operations", hub.tenant.name) />
        <div class="page-head">
            <h1>{hub.tenant.name.clone()}" · Operations"</h1>
            <button type="button" class="button" data-testid="refresh-runs"
                disabled=move || !hydrated.get()
                on:click=move |_| refreshes.update(|n| *n += 1)>
                "Refresh"
            </button>
        </div>
        {hub.start.map(|choices| view! { <StartForms slug=slug.clone() choices /> })}
        <nav class="tabs" aria-label="Status">{tabs}</nav>
        <Filters base=base.clone() query=query.clone() initiators=hub.initiators />
        // New runs wait here; rows never move under the reader's cursor.
        <div class="live-region" role="status" aria-live="polite">
            {move || {
                let n = live.fresh.read().len();
                (n > 0).then(|| view! {
                    <button type="button" class="button new-runs" data-testid="new-runs"
                        on:click=move |_| refreshes.update(|r| *r += 1)>
                        {if n == 1 { "1 new run — show".to_string() } else { format!("{n} new runs — show") }}
                    </button>
                })
            }}
        </div>
        <table class="runs" data-testid="runs-table"
            data-refreshed-at=(refresh > 0).then(|| refresh.to_string())>
            <thead>
                <tr>
                    <th scope="col">"Operation"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Progress"</th>
                    <th scope="col">"OK / failed / skipped"</th>
                    <th scope="col">"Initiator"</th>
                    <th scope="col">"Queued"</th>
                    <th scope="col">"Duration"</th>
                </tr>
            </thead>
            <tbody>
                {live.rows.iter().map(|run| view! { <RunRow run=*run slug=slug.clone() /> }).collect_view()}
            </tbody>
        </table>
        {empty.then(|| view! { <p class="empty-state">"No runs match."</p> })}
        <nav class="pager" aria-label="Pages">
            {newer_href.map(|href| view! { <a rel="prev" href=href>"← Newer"</a> })}
            {older_href.map(|href| view! { <a rel="next" href=href>"Older →"</a> })}
        </nav>
    }
}

/// What the hub shows, kept live: rows update in place, runs that would
/// belong at the top of this page are counted for the "new runs" banner,
/// and a reconnect catches up by reading the page again.
#[derive(Clone)]
struct LiveHub {
    rows: Vec<RwSignal<RunSummary>>,
    fresh: RwSignal<HashSet<RunId>>,
    counts: RwSignal<BucketCounts>,
}

fn follow_live(hub: &HubData, query: &HubQuery, heard_before: u64) -> LiveHub {
    let rows: Vec<_> = hub.runs.items.iter().cloned().map(RwSignal::new).collect();
    let by_id: HashMap<RunId, RwSignal<RunSummary>> = hub
        .runs
        .items
        .iter()
        .map(|run| run.id)
        .zip(rows.iter().copied())
        .collect();
    let live = LiveHub {
        rows,
        fresh: RwSignal::new(HashSet::new()),
        counts: RwSignal::new(hub.counts),
    };
    // Only the first page grows at the top; later pages just update.
    let first_page = query.older.is_none() && query.newer.is_none();
    let filter = query.parse().map(|(filter, _)| filter).ok();
    let newest = hub.runs.items.first().map(|run| (run.created_at, run.id));
    let (fresh, counts) = (live.fresh, live.counts);
    let (slug, query) = (hub.tenant.slug.clone(), query.clone());
    let recount = recount_later(slug.clone(), query.clone(), counts);
    // `try_`: a catch-up read may return after the page moved on.
    let apply = move |run: RunSummary| match by_id.get(&run.id) {
        Some(row) => {
            let moved = row
                .try_with_untracked(|shown| shown.status.bucket() != run.status.bucket())
                .unwrap_or(false);
            row.try_set(run);
            if moved {
                recount();
            }
        }
        None => {
            let newer = newest.is_none_or(|top| (run.created_at, run.id) > top);
            if first_page && newer && filter.as_ref().is_some_and(|f| f.matches(&run)) {
                fresh.try_update(|ids| ids.insert(run.id));
            }
            // A run not on this page may have joined or left a tab.
            recount();
        }
    };
    let catch_up = {
        let apply = apply.clone();
        move || {
            let (slug, query, apply) = (slug.clone(), query.clone(), apply.clone());
            leptos::task::spawn_local(async move {
                if let Ok(latest) = hub_runs(slug, query).await {
                    counts.try_set(latest.counts);
                    latest.runs.items.into_iter().for_each(apply);
                }
            });
        }
    };
    follow_runs(heard_before, apply, catch_up);
    live
}

/// Reads the tab counts again soon: at most once per half second, however
/// many runs change meanwhile.
fn recount_later(
    slug: String,
    query: HubQuery,
    counts: RwSignal<BucketCounts>,
) -> impl Fn() + Clone + Send + Sync + 'static {
    let pending = StoredValue::new(false);
    move || {
        if pending.try_get_value() != Some(false) {
            return;
        }
        pending.set_value(true);
        let (slug, query) = (slug.clone(), query.clone());
        set_timeout(
            move || {
                leptos::task::spawn_local(async move {
                    if let Ok(latest) = hub_counts(slug, query).await {
                        counts.try_set(latest);
                    }
                    pending.try_update_value(|pending| *pending = false);
                });
            },
            std::time::Duration::from_millis(500),
        );
    }
}

#[component]
fn RunRow(run: RwSignal<RunSummary>, slug: String) -> impl IntoView {
    let fixed = run.get_untracked();
    let href = format!("/t/{slug}/operations/{}", fixed.id);
    let duration = move || {
        let run = run.read();
        run.started_at
            .zip(run.finished_at)
            .map(|(start, end)| format_duration(start, end))
            .unwrap_or_else(|| "—".to_string())
    };
    let counters = Signal::derive(move || run.read().counters);
    view! {
        <tr data-testid="run-row" data-run-id=fixed.id.to_string()
            data-status=move || run.read().status.as_str()>
            <td><a data-testid="run-link" href=href>{fixed.operation.label()}</a></td>
            <td>
                <StatusBadge status=Signal::derive(move || run.read().status) />
                <StalledBadge since=Signal::derive(move || run.read().stalled_since()) />
            </td>
            <td class="progress-cell"><Progress counters /></td>
            <td><Outcome counters /></td>
            <td>{fixed.initiator_name}</td>
            <td><LocalTime at=fixed.created_at /></td>
            <td>{duration}</td>
        </tr>
    }
}

/// The hub's filters as a GET form: submitting it makes the URL, so every
/// filtered view is a shareable link and the back button works.
#[component]
fn Filters(base: String, query: HubQuery, initiators: Vec<Initiator>) -> impl IntoView {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let (operation, initiator, reason, limit) = (
        value(&query.operation),
        value(&query.initiator),
        value(&query.reason),
        value(&query.limit),
    );
    view! {
        <form method="get" action=base.clone() class="form inline filters" data-testid="hub-filters">
            {query.bucket.clone().map(|bucket| view! { <input type="hidden" name="bucket" value=bucket /> })}
            <label>"Operation"
                <select name="operation">
                    <option value="" selected=operation.is_empty()>"any"</option>
                    {[OperationKind::DriftGenerate, OperationKind::BackupSetAddPolicies].into_iter().map(|kind| view! {
                        <option value=kind.code() selected=operation == kind.code()>{kind.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Initiator"
                <select name="initiator">
                    <option value="" selected=initiator.is_empty()>"anyone"</option>
                    {initiators.into_iter().map(|user| {
                        let id = user.id.to_string();
                        view! { <option value=id.clone() selected=initiator == id>{user.display_name}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Queued from (UTC)" <PeriodInput name="from" value=value(&query.from) /></label>
            <label>"to" <PeriodInput name="to" value=value(&query.to) /></label>
            <label>"Run id or idempotency key (or its start)"
                <input type="search" name="q" value=value(&query.q) size="30"
                    maxlength=MAX_SEARCH_CHARS />
            </label>
            <label>"Failure reason"
                <select name="reason">
                    <option value="" selected=reason.is_empty()>"any"</option>
                    {ReasonCode::ALL.into_iter().map(|code| view! {
                        <option value=code.as_str() selected=reason == code.as_str()>{code.as_str()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Per page"
                <select name="limit">
                    {[20u32, 50, 100, MAX_PAGE_SIZE].into_iter().map(|n| {
                        let selected = limit == n.to_string() || (limit.is_empty() && n == 50);
                        view! { <option value=n.to_string() selected=selected>{n}</option> }
                    }).collect_view()}
                </select>
            </label>
            <button type="submit" class="button">"Apply"</button>
            <a href=base.clone()>"Clear"</a>
        </form>
    }
}

/// Operators start runs here. Plain forms: they post and land on the run
/// (saying so when the start joined a run already active).
#[component]
fn StartForms(slug: String, choices: StartChoices) -> impl IntoView {
    let drift = ServerAction::<StartDrift>::new();
    let add = ServerAction::<StartAddPolicies>::new();
    let error = move || {
        drift
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| add.value().get().and_then(Result::err))
            .map(|e| e.to_string())
    };
    let (drift_slug, add_slug) = (slug.clone(), slug);
    view! {
        <section class="start card" data-testid="start-forms">
            <details>
                <summary>"Generate drift"</summary>
                <ActionForm action=drift attr:class="form inline" attr:data-testid="start-drift-form">
                    <input type="hidden" name="tenant" value=drift_slug.clone() />
                    <label>"Scope"
                        <select name="scope_key" required>
                            {choices.scopes.iter().map(|scope| view! {
                                <option value=scope.clone()>{scope.clone()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <button type="submit" class="button primary">"Generate drift"</button>
                </ActionForm>
            </details>
            <details>
                <summary>"Add policies to backup set"</summary>
                <ActionForm action=add attr:class="form" attr:data-testid="start-add-policies-form">
                    <input type="hidden" name="tenant" value=add_slug.clone() />
                    <label>"Backup set"
                        <select name="backup_set_id" required>
                            {choices.backup_sets.iter().map(|(id, name)| view! {
                                <option value=id.to_string()>{name.clone()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <label>"Policies (choose one or more)"
                        <select name="policy_ids[]" multiple required size="6">
                            {choices.policies.iter().map(|(id, name)| view! {
                                <option value=id.to_string()>{name.clone()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <label>"Snapshot"
                        <select name="include_payload">
                            <option value="">"metadata only"</option>
                            <option value="true">"metadata and payload"</option>
                        </select>
                    </label>
                    <button type="submit" class="button primary">"Add policies"</button>
                </ActionForm>
            </details>
            {move || error().map(|message| view! {
                <p class="form-error" role="alert" data-testid="start-error">{message}</p>
            })}
        </section>
    }
}

/// A day filter; an hour (`2026-11-27T09`, from the Insights page's links)
/// stays as typed text, which a date field would blank.
#[component]
fn PeriodInput(name: &'static str, value: String) -> impl IntoView {
    let kind = if value.contains('T') { "text" } else { "date" };
    view! { <input type=kind name=name value=value size="13" placeholder="YYYY-MM-DD" /> }
}
