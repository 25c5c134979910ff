use crate::api::runs::{run_page, RunPageData};
use crate::domain::{format_duration, FailureKind, Timestamp};
use crate::ui::components::{ErrorView, Outcome, Progress, StatusBadge};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// `/t/{tenant}/operations/{run_id}`: every field of one run.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(
        move || {
            let p = params.read();
            (
                p.get("tenant").unwrap_or_default(),
                p.get("run_id").unwrap_or_default(),
            )
        },
        |(tenant, run_id)| run_page(tenant, run_id),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(page) => view! { <RunView page /> }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn time_cell(value: Option<Timestamp>) -> AnyView {
    match value {
        Some(t) => view! { <time datetime=t.to_rfc3339()>{t.to_rfc3339()}</time> }.into_any(),
        None => "—".into_any(),
    }
}

#[component]
fn RunView(page: RunPageData) -> impl IntoView {
    let RunPageData { tenant, run } = page;
    let summary = run.summary.clone();
    let hub = format!("/t/{}/operations", tenant.slug);
    let duration = summary
        .started_at
        .zip(summary.finished_at)
        .map(|(start, end)| format_duration(start, end))
        .unwrap_or_else(|| "—".into());
    let (skipped, failed): (Vec<_>, Vec<_>) = run
        .failures
        .iter()
        .cloned()
        .partition(|f| f.kind == FailureKind::Skipped);
    let params = serde_json::to_string_pretty(&run.params).unwrap_or_default();
    let entry_rows = |entries: Vec<crate::domain::FailureEntry>| {
        entries
            .into_iter()
            .map(|f| {
                view! {
                    <tr>
                        <td><code>{f.item_id.unwrap_or_else(|| "—".into())}</code></td>
                        <td><code>{f.reason_code.as_str()}</code></td>
                        <td>{f.reason}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <Title text=format!("{} · {}", summary.operation.label(), tenant.name) />
        <p class="crumbs"><a href=hub>{tenant.name.clone()}" operations"</a></p>
        <div class="page-head">
            <h1>{summary.operation.label()}</h1>
            <StatusBadge status=summary.status />
        </div>
        <section class="card">
            <Progress counters=summary.counters />
            <p><Outcome counters=summary.counters />" (succeeded / failed / skipped)"</p>
        </section>
        <dl class="fields">
            <dt>"Run id"</dt><dd><code data-testid="run-id">{summary.id.to_string()}</code></dd>
            <dt>"Operation"</dt><dd><code>{summary.operation.code()}</code></dd>
            <dt>"Status"</dt><dd>{summary.status.as_str()}" ("{summary.bucket().label()}")"</dd>
            <dt>"Total items"</dt><dd>{summary.counters.total}</dd>
            <dt>"Processed"</dt><dd>{summary.counters.processed}</dd>
            <dt>"Succeeded"</dt><dd>{summary.counters.succeeded}</dd>
            <dt>"Failed"</dt><dd>{summary.counters.failed}</dd>
            <dt>"Skipped"</dt><dd>{summary.counters.skipped}</dd>
            <dt>"Initiator"</dt><dd>{summary.initiator_name.clone()}</dd>
            <dt>"Idempotency key"</dt><dd><code>{summary.idempotency_key.clone()}</code></dd>
            <dt>"Queued"</dt><dd>{time_cell(Some(summary.created_at))}</dd>
            <dt>"Started"</dt><dd>{time_cell(summary.started_at)}</dd>
            <dt>"Finished"</dt><dd>{time_cell(summary.finished_at)}</dd>
            <dt>"Duration"</dt><dd>{duration}</dd>
            <dt>"Updated"</dt><dd>{time_cell(Some(run.updated_at))}</dd>
            <dt>"Attempt"</dt><dd>{format!("{} of {}", run.attempt, run.max_attempts)}</dd>
            <dt>"Lease"</dt><dd>{run.lease_owner.clone().unwrap_or_else(|| "—".into())}" "{time_cell(run.lease_expires_at)}</dd>
            <dt>"Heartbeat"</dt><dd>{time_cell(run.heartbeat_at)}</dd>
            <dt>"Abort requested"</dt><dd>{time_cell(run.cancel_requested_at)}</dd>
            <dt>"Audit entry"</dt><dd>{run.audit_log_id.map_or_else(|| "—".to_string(), |id| id.to_string())}</dd>
            <dt>"Parameters"</dt><dd><pre>{params}</pre></dd>
            <dt>"Items"</dt><dd>{format!("{} in scope", run.item_ids.len())}</dd>
        </dl>
        <h2>"Failures ("{failed.len()}")"</h2>
        <table class="entries" data-testid="failures-table">
            <thead><tr><th scope="col">"Item"</th><th scope="col">"Reason code"</th><th scope="col">"Reason"</th></tr></thead>
            <tbody>{entry_rows(failed)}</tbody>
        </table>
        <h2>"Skipped ("{skipped.len()}")"</h2>
        <table class="entries" data-testid="skipped-table">
            <thead><tr><th scope="col">"Item"</th><th scope="col">"Reason code"</th><th scope="col">"Reason"</th></tr></thead>
            <tbody>{entry_rows(skipped)}</tbody>
        </table>
    }
}
