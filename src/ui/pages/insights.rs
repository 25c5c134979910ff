use crate::api::insights::{load_insights, Chart, InsightsData, InsightsQuery};
use crate::api::runs::HubQuery;
use crate::domain::{
    format_millis, InsightBucket, Insights, InsightsWindow, OperationKind, Percentiles, RunStatus,
    Timestamp, OUTCOMES,
};
use crate::ui::components::ErrorView;
use crate::ui::live::{on_live, LiveMessage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// `/t/{tenant}/insights`: how the tenant's operations behave over a
/// window, charted on the server; it reloads as runs end.
#[component]
pub fn InsightsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let insights_query = move || {
        let q = query.read();
        InsightsQuery {
            window: q.get("window"),
            operation: q.get("operation"),
        }
    };
    // Runs that end change the figures: reload, at most every second
    // however many end.
    let reloads = RwSignal::new(0u32);
    let reload_due = StoredValue::new(false);
    on_live(move |message| {
        let ended = match &message {
            LiveMessage::Run(run) => run.status.is_terminal(),
            LiveMessage::Resync => true,
            LiveMessage::Unread(_) => false,
        };
        if !ended || reload_due.try_get_value() != Some(false) {
            return;
        }
        reload_due.set_value(true);
        set_timeout(
            move || {
                reload_due.try_set_value(false);
                reloads.try_update(|n| *n += 1);
            },
            std::time::Duration::from_secs(1),
        );
    });
    let data = Resource::new(
        move || {
            (
                params.read().get("tenant").unwrap_or_default(),
                insights_query(),
                reloads.get(),
            )
        },
        |(tenant, query, _)| load_insights(tenant, query),
    );
    view! {
        <Title text="Insights" />
        <Transition fallback=|| view! { <p class="loading">"Loading insights…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <InsightsView data /> }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH`, as the hub's `from`/`to` read them.
fn period_name(at: Timestamp, daily: bool) -> String {
    let (year, month, day, hour) = at.utc_date_hour();
    if daily {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}")
    }
}

/// The hub filtered to the runs a figure counts: queued in `[from, to)`,
/// of the chosen operation, in an outcome's bucket when one is given.
fn hub_link(
    slug: &str,
    insights: &Insights,
    from: Timestamp,
    to: Timestamp,
    outcome: Option<RunStatus>,
) -> String {
    let query = hub_query(insights, from, to, outcome);
    format!("/t/{slug}/operations{}", query.to_query_string())
}

/// The hub's query for the runs queued from `from` to `to` of the page's
/// operation, of one outcome or all.
fn hub_query(
    insights: &Insights,
    from: Timestamp,
    to: Timestamp,
    outcome: Option<RunStatus>,
) -> HubQuery {
    let daily = insights.window.bucket_hours() % 24 == 0;
    HubQuery {
        bucket: outcome.map(|o| o.bucket().as_str().to_string()),
        operation: insights.operation.map(|o| o.code().to_string()),
        from: Some(period_name(from, daily)),
        // The hub's `to` is inclusive: the last day or hour inside.
        to: Some(period_name(Timestamp(to.0 - 1), daily)),
        ..HubQuery::default()
    }
}

fn outcome_label(outcome: RunStatus) -> &'static str {
    match outcome {
        RunStatus::Completed => "Succeeded",
        RunStatus::CompletedWithErrors => "Partially succeeded",
        RunStatus::Failed => "Failed",
        _ => "Aborted",
    }
}

fn millis_or_dash(value: Option<i64>) -> String {
    value.map_or("—".to_string(), format_millis)
}

#[component]
fn InsightsView(data: InsightsData) -> impl IntoView {
    let slug = data.tenant.slug.clone();
    let insights = data.insights;
    let base = format!("/t/{slug}/insights");
    let window = insights.window.as_str();
    let operation = insights.operation.map(OperationKind::code).unwrap_or("");
    let (first, end) = insights.span();
    let totals = insights.totals.outcomes;
    let total_link = |outcome: Option<RunStatus>| hub_link(&slug, &insights, first, end, outcome);
    let summary = OUTCOMES
        .into_iter()
        .map(|outcome| {
            view! {
                <li><a href=total_link(Some(outcome)) data-testid=format!("total-{}", outcome.as_str())>
                    <strong>{totals.get(outcome)}</strong>" "{outcome_label(outcome).to_lowercase()}
                </a></li>
            }
        })
        .collect_view();
    let charts: Vec<(Chart, AnyView)> = data
        .charts
        .into_iter()
        .map(|chart| {
            let table = chart_table(&chart.id, &slug, &insights);
            (chart, table)
        })
        .collect();
    view! {
        <div class="page-head">
            <h1>{data.tenant.name.clone()}" · Insights"</h1>
            <a href=format!("/t/{slug}/operations")>"Operations"</a>
        </div>
        <form method="get" action=base class="form inline filters" data-testid="insights-filters">
            <label>"Window"
                <select name="window">
                    {InsightsWindow::ALL.into_iter().map(|w| view! {
                        <option value=w.as_str() selected=w.as_str() == window>{w.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Operation"
                <select name="operation">
                    <option value="" selected=operation.is_empty()>"all"</option>
                    {OperationKind::ALL.into_iter().map(|o| view! {
                        <option value=o.code() selected=o.code() == operation>{o.code()}</option>
                    }).collect_view()}
                </select>
            </label>
            <button type="submit" class="button">"Show"</button>
        </form>
        <p class="muted">
            "Runs queued in the last "{insights.window.label()}" that have ended (UTC). Each figure links to those runs."
        </p>
        <section aria-label="Totals" class="insight-totals" data-testid="insight-totals">
            <p>
                <a href=total_link(None) data-testid="total-ended"><strong>{totals.total()}</strong>
                    {if totals.total() == 1 { " run ended" } else { " runs ended" }}</a>
                {format!(
                    " · run time p50 {} / p95 {} · queue wait p50 {} / p95 {}",
                    millis_or_dash(insights.totals.run.p50_millis),
                    millis_or_dash(insights.totals.run.p95_millis),
                    millis_or_dash(insights.totals.queue.p50_millis),
                    millis_or_dash(insights.totals.queue.p95_millis),
                )}
            </p>
            <ul class="outcome-totals">{summary}</ul>
        </section>
        <div class="charts">
            {charts.into_iter().map(|(chart, table)| view! {
                <figure class="chart-figure" data-testid=format!("chart-{}", chart.id)>
                    <figcaption><h2>{chart.title.clone()}</h2></figcaption>
                    <div class="chart-box" inner_html=chart.svg></div>
                    <details>
                        <summary>{format!("{} as a table", chart.title)}</summary>
                        {table}
                    </details>
                </figure>
            }).collect_view()}
        </div>
    }
}

/// The figures of one chart as a table; every count links to its runs.
fn chart_table(id: &str, slug: &str, insights: &Insights) -> AnyView {
    let rows = insights
        .buckets
        .iter()
        .filter(|b| b.figures.outcomes.total() > 0);
    match id {
        "outcomes" => {
            let rows = rows
                .map(|bucket| {
                    let cells = OUTCOMES
                        .into_iter()
                        .map(|outcome| {
                            let runs = bucket.figures.outcomes.get(outcome);
                            let href =
                                hub_link(slug, insights, bucket.start, bucket.end, Some(outcome));
                            view! { <td><a href=href>{runs}</a></td> }
                        })
                        .collect_view();
                    view! {
                        <tr><th scope="row">{insights.window.bucket_label(bucket.start)}</th>{cells}</tr>
                    }
                })
                .collect_view();
            view! {
                <table class="entries chart-table">
                    <thead><tr><th scope="col">"Queued (UTC)"</th>
                        {OUTCOMES.into_iter().map(|o| view! { <th scope="col">{outcome_label(o)}</th> }).collect_view()}
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
        "run-time" | "queue-wait" => {
            let pick = |b: &InsightBucket| -> Percentiles {
                if id == "run-time" {
                    b.figures.run
                } else {
                    b.figures.queue
                }
            };
            let rows = rows
                .map(|bucket| {
                    let href = hub_link(slug, insights, bucket.start, bucket.end, None);
                    let p = pick(bucket);
                    view! {
                        <tr>
                            <th scope="row"><a href=href>{insights.window.bucket_label(bucket.start)}</a></th>
                            <td>{millis_or_dash(p.p50_millis)}</td>
                            <td>{millis_or_dash(p.p95_millis)}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table class="entries chart-table">
                    <thead><tr><th scope="col">"Queued (UTC)"</th><th scope="col">"p50"</th><th scope="col">"p95"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
        "throughput" => {
            let rows = rows
                .map(|bucket| {
                    let href = hub_link(slug, insights, bucket.start, bucket.end, None);
                    let rate = bucket
                        .figures
                        .items_per_second()
                        .map_or("—".to_string(), |r| format!("{r:.1}"));
                    view! {
                        <tr>
                            <th scope="row"><a href=href>{insights.window.bucket_label(bucket.start)}</a></th>
                            <td>{bucket.figures.items_processed}</td>
                            <td>{rate}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table class="entries chart-table">
                    <thead><tr><th scope="col">"Queued (UTC)"</th><th scope="col">"Items"</th><th scope="col">"Items/s"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
        _ => {
            let (first, end) = insights.span();
            let rows = insights
                .reasons
                .iter()
                .map(|reason| {
                    // The busiest bucket, for the trend in words.
                    let peak = reason
                        .per_bucket
                        .iter()
                        .enumerate()
                        .max_by_key(|(_, n)| **n)
                        .and_then(|(i, n)| Some((insights.buckets.get(i)?, *n)));
                    let peak = peak.map_or(String::new(), |(bucket, n)| {
                        format!("{n} ({})", insights.window.bucket_label(bucket.start))
                    });
                    let href = HubQuery {
                        reason: Some(reason.reason_code.as_str().to_string()),
                        ..hub_query(insights, first, end, None)
                    };
                    let href = format!("/t/{slug}/operations{}", href.to_query_string());
                    view! {
                        <tr>
                            <th scope="row"><code>{reason.reason_code.as_str()}</code></th>
                            <td><a href=href>{reason.total}</a></td>
                            <td>{peak}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table class="entries chart-table">
                    <thead><tr><th scope="col">"Reason code"</th><th scope="col">"Failures"</th><th scope="col">"Busiest"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
    }
}
