use crate::api::findings::{list_findings, AcknowledgeFindings, FindingsData, FindingsQuery};
use crate::domain::{Finding, FindingStatus, MAX_SEARCH_CHARS};
use crate::ui::components::{ErrorView, LocalTime};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/t/{tenant}/findings`: drift findings, filtered through the URL.
#[component]
pub fn FindingsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let acknowledge = ServerAction::<AcknowledgeFindings>::new();
    let findings_query = move || {
        let q = query.read();
        FindingsQuery {
            status: q.get("status"),
            scope: q.get("scope"),
            subject_type: q.get("subject_type"),
            baseline: q.get("baseline"),
            current: q.get("current"),
            run: q.get("run"),
            older: q.get("older"),
            newer: q.get("newer"),
        }
    };
    let data = Resource::new(
        move || {
            (
                params.read().get("tenant").unwrap_or_default(),
                findings_query(),
                acknowledge.version().get(),
            )
        },
        |(tenant, query, _)| list_findings(tenant, query),
    );
    view! {
        <Title text="Findings" />
        <Transition fallback=|| view! { <p class="loading">"Loading findings…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! {
                        <FindingsView data query=findings_query() acknowledge />
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn FindingsView(
    data: FindingsData,
    query: FindingsQuery,
    acknowledge: ServerAction<AcknowledgeFindings>,
) -> impl IntoView {
    let slug = data.tenant.slug.clone();
    let base = format!("/t/{slug}/findings");
    let page_link = |older: Option<String>, newer: Option<String>| {
        let target = FindingsQuery {
            older,
            newer,
            ..query.clone()
        };
        format!("{base}{}", target.to_query_string())
    };
    let newer = data
        .findings
        .newer
        .map(|c| page_link(None, Some(c.to_string())));
    let older = data
        .findings
        .older
        .map(|c| page_link(Some(c.to_string()), None));
    let open_ids: Vec<String> = data
        .findings
        .items
        .iter()
        .filter(|f| f.status == FindingStatus::New)
        .map(|f| f.id.to_string())
        .collect();
    let can_ack = data.can_acknowledge;
    let error = move || {
        acknowledge
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string())
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let status = value(&query.status);
    view! {
        <div class="page-head">
            <h1>{data.tenant.name.clone()}" · Findings"</h1>
            <a href=format!("/t/{slug}/operations")>"Operations"</a>
        </div>
        // A GET form: the filters become the URL, shareable and back-button safe.
        <form method="get" action=base.clone() class="form inline filters" data-testid="findings-filters">
            <label>"Status"
                <select name="status">
                    <option value="" selected=status.is_empty()>"any"</option>
                    <option value="new" selected=status == "new">"new"</option>
                    <option value="acknowledged" selected=status == "acknowledged">"acknowledged"</option>
                </select>
            </label>
            <label>"Scope" <input type="text" name="scope" value=value(&query.scope) maxlength=MAX_SEARCH_CHARS /></label>
            <label>"Subject type" <input type="text" name="subject_type" value=value(&query.subject_type) maxlength=MAX_SEARCH_CHARS /></label>
            <label>"Baseline sync" <input type="text" name="baseline" value=value(&query.baseline) size="36" /></label>
            <label>"Current sync" <input type="text" name="current" value=value(&query.current) size="36" /></label>
            <label>"Produced by run" <input type="text" name="run" value=value(&query.run) size="36" /></label>
            <button type="submit" class="button">"Filter"</button>
            <a href=base.clone()>"Clear"</a>
        </form>
        {move || error().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        {(can_ack && open_ids.len() > 1).then(|| {
            let (slug, ids) = (slug.clone(), open_ids.join(","));
            view! {
                <ActionForm action=acknowledge attr:class="inline-form">
                    <input type="hidden" name="tenant" value=slug.clone() />
                    <input type="hidden" name="ids" value=ids.clone() />
                    <button type="submit" class="button" data-testid="acknowledge-all">
                        {format!("Acknowledge all {} new on this page", open_ids.len())}
                    </button>
                </ActionForm>
            }
        })}
        {data.findings.items.is_empty().then(|| view! { <p class="empty-state">"No findings match."</p> })}
        <table class="entries" data-testid="findings-table">
            <thead><tr>
                <th scope="col">"Change"</th><th scope="col">"Subject"</th><th scope="col">"Scope"</th>
                <th scope="col">"Evidence"</th><th scope="col">"Found"</th><th scope="col">"Status"</th>
            </tr></thead>
            <tbody>
                {data.findings.items.into_iter().map(|finding| view! {
                    <FindingRow finding slug=slug.clone() can_ack acknowledge />
                }).collect_view()}
            </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            {newer.map(|href| view! { <a rel="prev" href=href>"← Newer"</a> })}
            {older.map(|href| view! { <a rel="next" href=href>"Older →"</a> })}
        </nav>
    }
}

#[component]
fn FindingRow(
    finding: Finding,
    slug: String,
    can_ack: bool,
    acknowledge: ServerAction<AcknowledgeFindings>,
) -> impl IntoView {
    let evidence = serde_json::to_string_pretty(&finding.evidence).unwrap_or_default();
    let id = finding.id.to_string();
    let run_link = finding
        .produced_by_run_id
        .map(|run| view! { <a href=format!("/t/{slug}/operations/{run}")>"run"</a> });
    let status_cell = match finding.status {
        FindingStatus::Acknowledged => view! { <span class="muted">"acknowledged"</span> }.into_any(),
        FindingStatus::New if can_ack => view! {
            <ActionForm action=acknowledge attr:class="inline-form">
                <input type="hidden" name="tenant" value=slug.clone() />
                <input type="hidden" name="ids" value=id.clone() />
                <button type="submit" class="button" data-testid="acknowledge">"Acknowledge"</button>
            </ActionForm>
        }
        .into_any(),
        FindingStatus::New => view! { <span>"new"</span> }.into_any(),
    };
    view! {
        <tr data-testid="finding-row" data-status=finding.status.as_str()>
            <td><span class=format!("badge finding-{}", finding.change_kind.as_str())>
                {finding.change_kind.as_str()}
            </span></td>
            <td><code>{format!("{}:{}", finding.subject_type, finding.subject_external_id)}</code></td>
            <td><code>{finding.scope_key}</code></td>
            <td><details><summary>"Evidence"</summary><pre>{evidence}</pre></details></td>
            <td><LocalTime at=finding.created_at />" "{run_link}</td>
            <td>{status_cell}</td>
        </tr>
    }
}
