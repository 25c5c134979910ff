use crate::api::findings::FindingsQuery;
use crate::api::operations::{AbortRun, RetryRun};
use crate::api::runs::{current_run, run_page, RunPageData, ScopeView, UnwatchRun, WatchRun};
use crate::domain::{
    audit_names, eta_seconds, failure_counts, format_duration, AttemptEnd, Counters, FailureEntry,
    FailureKind, Finding, ReasonCode, RunAttempt, RunStatus, RunSummary, Timestamp, TrailEntry,
};
use crate::ui::components::{ErrorView, LocalTime, Outcome, Progress, StalledBadge, StatusBadge};
use crate::ui::live::{follow_runs, runs_heard};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// Failure entries per page of the per-item table.
const ENTRIES_PER_PAGE: usize = 50;

/// `/t/{tenant}/operations/{run_id}`: everything about one run, with the
/// operator's actions on it.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let abort = ServerAction::<AbortRun>::new();
    let retry = ServerAction::<RetryRun>::new();
    let watch = ServerAction::<WatchRun>::new();
    let unwatch = ServerAction::<UnwatchRun>::new();
    // Bumped when the live stream says the run moved to another status:
    // the whole page (failures, findings, times) is read again.
    let reloads = RwSignal::new(0u32);
    let heard = runs_heard();
    let data = Resource::new(
        move || {
            let p = params.read();
            (
                p.get("tenant").unwrap_or_default(),
                p.get("run_id").unwrap_or_default(),
                abort.version().get(),
                watch.version().get(),
                unwatch.version().get(),
                reloads.get(),
            )
        },
        move |(tenant, run_id, ..)| {
            let heard_before = heard();
            async move { (heard_before, run_page(tenant, run_id).await) }
        },
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                let (heard_before, result) = data.await;
                match result {
                    Ok(page) => view! {
                        <RunView page abort retry watch unwatch reloads heard_before />
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

fn time_cell(value: Option<Timestamp>) -> AnyView {
    match value {
        Some(at) => view! { <LocalTime at /> }.into_any(),
        None => "—".into_any(),
    }
}

#[component]
fn RunView(
    page: RunPageData,
    abort: ServerAction<AbortRun>,
    retry: ServerAction<RetryRun>,
    watch: ServerAction<WatchRun>,
    unwatch: ServerAction<UnwatchRun>,
    reloads: RwSignal<u32>,
    heard_before: u64,
) -> impl IntoView {
    let query = use_query_map();
    let RunPageData {
        tenant,
        run,
        can_operate,
        scope,
        joins,
        attempts,
        retries,
        trail,
        findings,
        findings_query,
        comparison,
        item_names,
        eta_seconds,
        watching,
    } = page;
    let summary = run.summary.clone();
    let slug = tenant.slug.clone();
    let live = follow_live(&summary, &slug, reloads, heard_before);
    let counters = Signal::derive(move || live.read().counters);
    let eta = follow_rate(counters, eta_seconds);
    let running = move || live.read().status == RunStatus::Running;
    let base = format!("/t/{slug}/operations");
    let duration = summary
        .started_at
        .zip(summary.finished_at)
        .map(|(start, end)| format_duration(start, end))
        .unwrap_or_else(|| "—".into());
    let joined = query.read_untracked().get("joined").is_some();
    let action_error = move || {
        abort
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| retry.value().get().and_then(|r| r.err()))
            .or_else(|| watch.value().get().and_then(Result::err))
            .or_else(|| unwatch.value().get().and_then(Result::err))
            .map(|e| e.to_string())
    };
    let action_notice = move || abort.value().get().and_then(Result::ok);
    let actions = can_operate.then(|| {
        let id = summary.id.to_string();
        let abortable = summary.status.is_active();
        let retryable = summary.status.is_terminal() && summary.counters.failed > 0;
        let (abort_tenant, abort_id) = (slug.clone(), id.clone());
        let (retry_tenant, retry_id) = (slug.clone(), id);
        view! {
            <div class="actions">
                {abortable.then(|| view! {
                    <ActionForm action=abort attr:class="inline-form" attr:data-testid="abort-form">
                        <input type="hidden" name="tenant" value=abort_tenant.clone() />
                        <input type="hidden" name="run_id" value=abort_id.clone() />
                        <button type="submit" class="button danger">"Abort"</button>
                    </ActionForm>
                })}
                {retryable.then(|| view! {
                    <ActionForm action=retry attr:class="inline-form" attr:data-testid="retry-form">
                        <input type="hidden" name="tenant" value=retry_tenant.clone() />
                        <input type="hidden" name="run_id" value=retry_id.clone() />
                        <button type="submit" class="button">"Retry failed items"</button>
                    </ActionForm>
                })}
            </div>
        }
    });
    // Watching matters only until the run ends; any member may watch.
    let watch_control = summary.status.is_active().then(|| {
        let (watch_tenant, watch_id) = (slug.clone(), summary.id.to_string());
        let fields = move || {
            view! {
                <input type="hidden" name="tenant" value=watch_tenant.clone() />
                <input type="hidden" name="run_id" value=watch_id.clone() />
            }
        };
        let form = if watching {
            view! {
                <ActionForm action=unwatch attr:class="inline-form" attr:data-testid="watch-form">
                    {fields()}
                    <button type="submit" class="button" data-testid="watch" data-watching="true">
                        "Stop watching"
                    </button>
                </ActionForm>
            }
            .into_any()
        } else {
            view! {
                <ActionForm action=watch attr:class="inline-form" attr:data-testid="watch-form">
                    {fields()}
                    <button type="submit" class="button" data-testid="watch" data-watching="false">
                        "Watch"
                    </button>
                </ActionForm>
            }
            .into_any()
        };
        view! {
            <div class="actions">
                {form}
                {watching.then(|| view! {
                    <span class="muted" data-testid="watch-state">"You will be notified when it ends."</span>
                })}
            </div>
        }
    });
    let run_link = |other: &RunSummary| {
        view! {
            <li>
                <a href=format!("{base}/{}", other.id)>{other.operation.label()}</a>" "
                <StatusBadge status=other.status />" "
                <LocalTime at=other.created_at />
            </li>
        }
    };
    let retry_list = (!retries.is_empty()).then(|| {
        view! {
            <dt>"Retried by"</dt>
            <dd><ul class="plain" data-testid="retries">{retries.iter().map(run_link).collect_view()}</ul></dd>
        }
    });
    let join_list = if joins.is_empty() {
        view! { "none" }.into_any()
    } else {
        view! {
            <ul class="plain" data-testid="joins">
                {joins.into_iter().map(|join| view! {
                    <li>{join.user_name}" · "<LocalTime at=join.at /></li>
                }).collect_view()}
            </ul>
        }
        .into_any()
    };

    view! {
        <Title text=format!("{} · {}", summary.operation.label(), tenant.name) />
        <p class="crumbs"><a href=base.clone()>{tenant.name.clone()}" operations"</a></p>
        {joined.then(|| view! {
            <p class="notice" role="status" data-testid="joined-notice">
                "Already running — you joined it instead of starting another."
            </p>
        })}
        <div class="page-head">
            <h1>{summary.operation.label()}</h1>
            <StatusBadge status=Signal::derive(move || live.read().status) />
            <StalledBadge since=Signal::derive(move || live.read().stalled_since()) />
            {actions}
            {watch_control}
        </div>
        {move || action_error().map(|message| view! {
            <p class="form-error" role="alert" data-testid="action-error">{message}</p>
        })}
        {move || action_notice().map(|message| view! {
            <p class="notice" role="status" data-testid="action-notice">{message}</p>
        })}
        {move || live.read().stalled_since().map(|at| view! {
            <p class="notice warning" role="status" data-testid="stall-notice">
                "Stalled: no progress since "<LocalTime at />". Its worker still holds the run; \
                 this clears by itself when progress moves. Abort it if it does not."
            </p>
        })}
        <section class="card">
            <Progress counters />
            <p><Outcome counters />" (succeeded / failed / skipped)"</p>
        </section>
        <dl class="fields">
            <dt>"Run id"</dt><dd><code data-testid="run-id">{summary.id.to_string()}</code></dd>
            <dt>"Operation"</dt><dd>{summary.operation.label()}" "<code>{summary.operation.code()}</code></dd>
            <dt>"Status"</dt><dd>{summary.status.as_str()}" ("{summary.bucket().label()}")"</dd>
            <dt>"Items"</dt>
            <dd>{move || {
                let c = counters.get();
                format!(
                    "{} total · {} processed · {} succeeded · {} failed · {} skipped",
                    c.total, c.processed, c.succeeded, c.failed, c.skipped
                )
            }}</dd>
            <dt>"Initiator"</dt><dd>{summary.initiator_name.clone()}</dd>
            <dt>"Queued"</dt><dd>{time_cell(Some(summary.created_at))}</dd>
            <dt>"Started"</dt><dd>{time_cell(summary.started_at)}</dd>
            <dt>"Finished"</dt><dd>{time_cell(summary.finished_at)}</dd>
            {move || running().then(|| view! {
                <dt>"Time left"</dt>
                <dd data-testid="run-eta">{move || match eta.get() {
                    Some(secs) => format!("about {}", format_duration(Timestamp(0), Timestamp(secs * 1_000_000))),
                    None => "estimating…".to_string(),
                }}</dd>
            })}
            <dt>"Duration"</dt>
            <dd>{duration}" "
                {comparison.map(|c| view! {
                    <span class="muted" data-testid="run-comparison">{c.sentence()}</span>
                })}
            </dd>
            <dt>"Idempotency key"</dt>
            <dd>{match summary.idempotency_key.clone() {
                Some(key) => view! { <code>{key}</code> }.into_any(),
                None => view! { <span class="muted">"none (never joined)"</span> }.into_any(),
            }}</dd>
            <dt>"Attempt"</dt><dd>{format!("{} of {}", run.attempt, run.max_attempts)}</dd>
            <dt>"Worker"</dt><dd>{run.lease_owner.clone().unwrap_or_else(|| "—".into())}</dd>
            <dt>"Abort requested"</dt><dd>{time_cell(run.cancel_requested_at)}</dd>
            <dt>"Joined by"</dt><dd>{join_list}</dd>
            {run.retry_of.map(|of| view! {
                <dt>"Retry of"</dt>
                <dd><a data-testid="retry-of" href=format!("{base}/{of}")>{of.to_string()}</a></dd>
            })}
            {retry_list}
        </dl>
        <AttemptsView attempts />
        <ScopeSection scope item_ids=run.item_ids.clone() />
        <FailuresView failures=run.failures.clone() failed=summary.counters.failed
            skipped=summary.counters.skipped item_names />
        <TrailView trail />
        <FindingsView findings=findings.items more=findings.older.is_some() slug
            query=findings_query />
    }
}

/// Who did what to the run, and when, oldest first.
#[component]
fn TrailView(trail: Vec<TrailEntry>) -> impl IntoView {
    let entries = (!trail.is_empty()).then(|| {
        view! {
            <ol class="plain" data-testid="audit-trail">
                {trail.into_iter().map(|TrailEntry { entry, actor_name }| {
                    // Entries without an account are the engine's or
                    // the command line's.
                    let who = actor_name.unwrap_or_else(|| {
                        if audit_names::by_engine(&entry.action) { "The engine" } else { "The command line" }.into()
                    });
                    let what = match entry.action.as_str() {
                        audit_names::RUN_START => "started it",
                        audit_names::RUN_RETRY => "started it to retry failed items",
                        audit_names::RUN_JOIN => "asked for it again and joined it",
                        audit_names::RUN_ABORT => "aborted it",
                        audit_names::RUN_STALL => "flagged it stalled",
                        audit_names::RUN_STALL_CLEAR => "saw it move again",
                        _ => "acted on it",
                    };
                    let code = entry.action.clone();
                    view! {
                        <li data-testid="audit-entry" data-action=entry.action>
                            {who}" "{what}" · "<LocalTime at=entry.created_at />" "
                            <code>{code}</code>
                        </li>
                    }
                }).collect_view()}
            </ol>
        }
    });
    view! {
        <h2>"Audit trail"</h2>
        {match entries {
            Some(entries) => entries.into_any(),
            None => view! { <p class="muted">"No audit entries (imported or demo data)."</p> }.into_any(),
        }}
    }
}

/// The run as the live stream last told it: counters move in place; a new
/// status (or a reconnect that finds one) reloads the page.
fn follow_live(
    loaded: &RunSummary,
    slug: &str,
    reloads: RwSignal<u32>,
    heard_before: u64,
) -> RwSignal<RunSummary> {
    let live = RwSignal::new(loaded.clone());
    let (id, loaded_status, slug) = (loaded.id, loaded.status, slug.to_string());
    // `try_`: a catch-up read may return after the page moved on.
    let apply = move |run: RunSummary| {
        let moved = run.status != loaded_status;
        live.try_set(run);
        if moved {
            reloads.try_update(|n| *n += 1);
        }
    };
    let catch_up = move || {
        let slug = slug.clone();
        leptos::task::spawn_local(async move {
            if let Ok(run) = current_run(slug, id.to_string()).await {
                apply(run);
            }
        });
    };
    let on_run = move |run: RunSummary| {
        if run.id == id {
            apply(run);
        }
    };
    follow_runs(heard_before, on_run, catch_up);
    live
}

/// The time a running run has left at its recent rate: the items it did
/// over the last 30 s of live updates (the server's average since its
/// start until the page has heard two).
fn follow_rate(counters: Signal<Counters>, loaded: Option<i64>) -> RwSignal<Option<i64>> {
    let eta = RwSignal::new(loaded);
    let samples = StoredValue::new(std::collections::VecDeque::<(f64, i64)>::new());
    Effect::new(move |_| {
        let c = counters.get();
        let now = now_millis();
        let window = samples
            .try_update_value(|samples| {
                samples.push_back((now, c.processed));
                while samples.front().is_some_and(|(at, _)| now - at > 30_000.0) {
                    samples.pop_front();
                }
                samples.front().copied()
            })
            .flatten();
        if let Some((since, processed_then)) = window.filter(|(since, _)| now > *since) {
            let rate = eta_seconds(
                c.total - c.processed,
                c.processed - processed_then,
                (now - since) as i64,
            );
            if rate.is_some() || c.processed == c.total {
                eta.try_set(rate);
            }
        }
    });
    eta
}

#[cfg(feature = "hydrate")]
fn now_millis() -> f64 {
    js_sys::Date::now()
}

/// Effects run in the browser only; the server never asks.
#[cfg(not(feature = "hydrate"))]
fn now_millis() -> f64 {
    0.0
}

#[component]
fn ScopeSection(scope: ScopeView, item_ids: serde_json::Value) -> impl IntoView {
    let body = match scope {
        ScopeView::Drift {
            scope_key,
            baseline_run_id,
            current_run_id,
            subjects,
        } => view! {
            <dl class="fields">
                <dt>"Scope key"</dt><dd><code>{scope_key}</code></dd>
                <dt>"Baseline sync"</dt><dd><code>{baseline_run_id.to_string()}</code></dd>
                <dt>"Current sync"</dt><dd><code>{current_run_id.to_string()}</code></dd>
                <dt>"Subjects"</dt>
                <dd>{subjects.map_or_else(
                    || "every subject of either sync".to_string(),
                    |n| format!("{n} that failed before, compared again"),
                )}</dd>
            </dl>
        }
        .into_any(),
        ScopeView::AddPolicies {
            backup_set_id,
            backup_set_name,
            include_payload,
            policies,
        } => view! {
            <dl class="fields">
                <dt>"Backup set"</dt>
                <dd>{backup_set_name.unwrap_or_else(|| "(deleted)".into())}" "
                    <code>{backup_set_id.to_string()}</code></dd>
                <dt>"Snapshot"</dt>
                <dd>{if include_payload { "metadata and payload" } else { "metadata only" }}</dd>
                <dt>"Policies"</dt>
                <dd>
                    <ul class="plain" data-testid="scope-policies">
                        {policies.into_iter().map(|(id, name)| view! {
                            <li>{name}" "<code class="muted">{id}</code></li>
                        }).collect_view()}
                    </ul>
                </dd>
            </dl>
        }
        .into_any(),
        ScopeView::Unreadable => view! {
            <pre>{serde_json::to_string_pretty(&item_ids).unwrap_or_default()}</pre>
        }
        .into_any(),
    };
    view! { <h2>"Scope"</h2>{body} }
}

/// Failures grouped by reason code, then the per-item entries (paged,
/// filterable by reason code through the URL), skipped items apart.
#[component]
fn FailuresView(
    failures: Vec<FailureEntry>,
    failed: i64,
    skipped: i64,
    item_names: Vec<(String, String)>,
) -> impl IntoView {
    let names = StoredValue::new(item_names);
    let query = use_query_map();
    let location = leptos_router::hooks::use_location();
    let q = query.read_untracked();
    let reason = q.get("reason").and_then(|r| ReasonCode::parse(&r).ok());
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let path = location.pathname.get_untracked();
    let link = move |reason: Option<ReasonCode>, page: usize| {
        let mut params = Vec::new();
        if let Some(code) = reason {
            params.push(format!("reason={}", code.as_str()));
        }
        if page > 1 {
            params.push(format!("page={page}"));
        }
        if params.is_empty() {
            format!("{path}#failures")
        } else {
            format!("{path}?{}#failures", params.join("&"))
        }
    };
    let (skipped_entries, failed_entries): (Vec<_>, Vec<_>) = failures
        .into_iter()
        .partition(|f| f.kind == FailureKind::Skipped);
    let groups = failure_counts(&failed_entries);
    let shown: Vec<FailureEntry> = failed_entries
        .iter()
        .filter(|f| reason.is_none_or(|code| f.reason_code == code))
        .cloned()
        .collect();
    let pages = shown.len().div_ceil(ENTRIES_PER_PAGE).max(1);
    let page = page.min(pages);
    let rows: Vec<FailureEntry> = shown
        .into_iter()
        .skip((page - 1) * ENTRIES_PER_PAGE)
        .take(ENTRIES_PER_PAGE)
        .collect();
    let listed_note = (failed_entries.len() as i64) < failed;
    view! {
        <h2 id="failures">"Failures ("{failed}")"</h2>
        {(failed == 0).then(|| view! { <p class="muted">"No item failed."</p> })}
        <ul class="chips" data-testid="failure-groups">
            {(!groups.is_empty()).then(|| view! {
                <li><a class:active=reason.is_none() href=link(None, 1)>"All"</a></li>
            })}
            {groups.into_iter().map(|(code, n)| view! {
                <li data-testid="failure-group" data-reason=code.as_str()>
                    <a class:active=reason == Some(code) href=link(Some(code), 1)>
                        <code>{code.as_str()}</code>" "<span class="count">{n}</span>
                    </a>
                </li>
            }).collect_view()}
        </ul>
        {listed_note.then(|| view! {
            <p class="muted">{format!("The first {} failures are listed.", failed_entries.len())}</p>
        })}
        {(!rows.is_empty()).then(|| view! {
            <EntryTable entries=rows testid="failures-table" names />
        })}
        {(pages > 1).then(|| view! {
            <nav class="pager" aria-label="Failure pages">
                {(page > 1).then(|| view! { <a rel="prev" href=link(reason, page - 1)>"← Previous"</a> })}
                <span>{format!("Page {page} of {pages}")}</span>
                {(page < pages).then(|| view! { <a rel="next" href=link(reason, page + 1)>"Next →"</a> })}
            </nav>
        })}
        <h2>"Skipped ("{skipped}")"</h2>
        {if skipped_entries.is_empty() {
            view! { <p class="muted">"Nothing was skipped."</p> }.into_any()
        } else {
            view! { <EntryTable entries=skipped_entries testid="skipped-table" names /> }.into_any()
        }}
    }
}

#[component]
fn EntryTable(
    entries: Vec<FailureEntry>,
    testid: &'static str,
    names: StoredValue<Vec<(String, String)>>,
) -> impl IntoView {
    let name_of = move |id: &str| {
        names.with_value(|names| {
            names
                .iter()
                .find(|(known, _)| known == id)
                .map(|(_, name)| name.clone())
        })
    };
    view! {
        <table class="entries" data-testid=testid>
            <thead><tr>
                <th scope="col">"Item"</th><th scope="col">"Reason code"</th><th scope="col">"Reason"</th>
            </tr></thead>
            <tbody>
                {entries.into_iter().map(|f| view! {
                    <tr>
                        <td>{match f.item_id {
                            Some(id) => {
                                let name = name_of(&id);
                                view! {
                                    <code>{id}</code>
                                    {name.map(|name| view! { " "<span class="item-name" data-testid="item-name">{name}</span> })}
                                }.into_any()
                            }
                            None => view! { <span class="muted">"the run"</span> }.into_any(),
                        }}</td>
                        <td><code>{f.reason_code.as_str()}</code></td>
                        <td>{f.reason}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Every worker's go at the run: a run whose worker vanished stays running
/// while another takes over, and this is where that shows.
#[component]
fn AttemptsView(attempts: Vec<RunAttempt>) -> impl IntoView {
    (!attempts.is_empty()).then(|| {
        view! {
            <h2>"Attempts"</h2>
            <table class="entries" data-testid="run-attempts">
                <thead><tr>
                    <th scope="col">"Attempt"</th><th scope="col">"Worker"</th>
                    <th scope="col">"Started"</th><th scope="col">"Ended"</th><th scope="col">"Why it ended"</th>
                </tr></thead>
                <tbody>
                    {attempts.into_iter().map(|a| view! {
                        <tr data-testid="run-attempt" data-end=a.end.map_or("", AttemptEnd::as_str)>
                            <td>{a.attempt}</td>
                            <td><code>{a.worker}</code></td>
                            <td><LocalTime at=a.started_at /></td>
                            <td>{a.ended_at.map_or_else(|| view! { "—" }.into_any(), |at| view! { <LocalTime at /> }.into_any())}</td>
                            <td>{a.end.map_or("still working", AttemptEnd::label)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    })
}

#[component]
fn FindingsView(
    findings: Vec<Finding>,
    more: bool,
    slug: String,
    query: FindingsQuery,
) -> impl IntoView {
    let all = format!("/t/{slug}/findings{}", query.to_query_string());
    (!findings.is_empty()).then(|| {
        view! {
            <h2>"Findings produced"</h2>
            <ul class="plain" data-testid="run-findings">
                {findings.into_iter().map(|f| view! {
                    <li>
                        <span class=format!("badge finding-{}", f.change_kind.as_str())>
                            {f.change_kind.as_str()}
                        </span>" "
                        <code>{format!("{}:{}", f.subject_type, f.subject_external_id)}</code>
                    </li>
                }).collect_view()}
            </ul>
            <p><a data-testid="run-findings-link" href=all>
                {if more { "All findings of this comparison →" } else { "Open in findings →" }}
            </a></p>
        }
    })
}
