//! The Insights page's charts, drawn here as SVG markup so the browser
//! downloads no chart code. Every chart reads without colour: outcomes are
//! told apart by fill patterns and a labelled legend, lines by dashes and
//! marker shapes; each SVG is an image with a title and a description, and
//! the page puts a table of the same figures beside it. Colours come from
//! the stylesheet's classes, so light and dark mode both apply.

use crate::api::insights::Chart;
use crate::domain::*;
use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 24.0;

pub fn draw(insights: &Insights) -> Vec<Chart> {
    vec![
        outcomes(insights),
        durations(insights, Phase::Run),
        durations(insights, Phase::Queue),
        throughput(insights),
        reasons(insights),
    ]
}

/// Text for SVG content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The frame every time chart shares: the opening tag with its title and
/// description, the y axis (0 and `max`, labelled by `format`) and the
/// first, middle and last bucket's labels.
fn frame(
    id: &str,
    title: &str,
    summary: &str,
    insights: &Insights,
    max: f64,
    format: impl Fn(f64) -> String,
) -> String {
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-{id}-title chart-{id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="chart-{id}-title">{}</title><desc id="chart-{id}-desc">{}</desc>"#,
        escape(title),
        escape(summary)
    );
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/><line class="axis" x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{}" text-anchor="end">0</text>"#,
        WIDTH - RIGHT,
        LEFT - 6.0,
        TOP + 4.0,
        escape(&format(max)),
        LEFT - 6.0,
        bottom + 4.0,
    );
    let count = insights.buckets.len();
    for index in [0, count / 2, count.saturating_sub(1)] {
        if let Some(bucket) = insights.buckets.get(index) {
            let _ = write!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                slot_center(index, count),
                HEIGHT - 6.0,
                escape(&insights.window.bucket_label(bucket.start))
            );
        }
    }
    svg
}

fn slot_width(count: usize) -> f64 {
    (WIDTH - LEFT - RIGHT) / count.max(1) as f64
}

fn slot_center(index: usize, count: usize) -> f64 {
    LEFT + slot_width(count) * (index as f64 + 0.5)
}

/// The y coordinate of `value` on an axis from 0 to `max`.
fn y_of(value: f64, max: f64) -> f64 {
    let plot = HEIGHT - TOP - BOTTOM;
    HEIGHT - BOTTOM - plot * (value / max.max(f64::MIN_POSITIVE)).clamp(0.0, 1.0)
}

/// A legend entry: a swatch (`fill` or a line sample) and its label.
fn legend(svg: &mut String, position: usize, swatch: &str, label: &str) {
    let x = LEFT + position as f64 * 165.0;
    let _ = write!(
        svg,
        r#"<g transform="translate({x:.1} 6)">{swatch}<text class="legend" x="18" y="11">{}</text></g>"#,
        escape(label)
    );
}

/// An outcome's class and pattern: distinct fills that still differ in
/// grey (solid, diagonal hatch, cross-hatch, dots).
fn outcome_style(outcome: RunStatus) -> (&'static str, &'static str) {
    match outcome {
        RunStatus::Completed => ("seg-completed", "solid"),
        RunStatus::CompletedWithErrors => ("seg-partial", "hatch"),
        RunStatus::Failed => ("seg-failed", "cross"),
        _ => ("seg-aborted", "dots"),
    }
}

fn outcome_label(outcome: RunStatus) -> &'static str {
    match outcome {
        RunStatus::Completed => "succeeded",
        RunStatus::CompletedWithErrors => "partially succeeded",
        RunStatus::Failed => "failed",
        _ => "aborted",
    }
}

/// The fill patterns of the outcomes chart.
const PATTERNS: &str = r#"<defs><pattern id="fill-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect class="seg-partial" width="6" height="6"/><line class="pattern-line" x1="0" y1="0" x2="0" y2="6"/></pattern><pattern id="fill-cross" width="6" height="6" patternUnits="userSpaceOnUse"><rect class="seg-failed" width="6" height="6"/><path class="pattern-line" d="M0 0L6 6M6 0L0 6"/></pattern><pattern id="fill-dots" width="6" height="6" patternUnits="userSpaceOnUse"><rect class="seg-aborted" width="6" height="6"/><circle class="pattern-dot" cx="3" cy="3" r="1.3"/></pattern></defs>"#;

fn outcome_fill(outcome: RunStatus) -> String {
    match outcome_style(outcome) {
        (class, "solid") => format!(r#"class="{class}""#),
        (_, pattern) => format!(r#"fill="url(#fill-{pattern})""#),
    }
}

fn outcomes(insights: &Insights) -> Chart {
    let totals = insights.totals.outcomes;
    let summary = format!(
        "Runs queued in each {} that have ended, stacked by outcome: {} succeeded, {} partially succeeded, {} failed, {} aborted.",
        bucket_name(insights.window),
        totals.completed,
        totals.completed_with_errors,
        totals.failed,
        totals.aborted
    );
    let title = "Runs by outcome";
    let max = insights
        .buckets
        .iter()
        .map(|b| b.figures.outcomes.total())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = frame("outcomes", title, &summary, insights, max, |v| {
        format!("{v:.0}")
    });
    svg.push_str(PATTERNS);
    for (position, outcome) in OUTCOMES.into_iter().enumerate() {
        let swatch = format!(
            r#"<rect {} x="0" y="0" width="14" height="14" stroke="currentColor" stroke-width="0.5"/>"#,
            outcome_fill(outcome)
        );
        legend(
            &mut svg,
            position,
            &swatch,
            &format!("{} ({})", outcome_label(outcome), totals.get(outcome)),
        );
    }
    let count = insights.buckets.len();
    let width = slot_width(count) * 0.8;
    for (index, bucket) in insights.buckets.iter().enumerate() {
        let x = slot_center(index, count) - width / 2.0;
        let mut below = 0i64;
        for outcome in OUTCOMES {
            let runs = bucket.figures.outcomes.get(outcome);
            if runs == 0 {
                continue;
            }
            let top = y_of((below + runs) as f64, max);
            let bottom = y_of(below as f64, max);
            let _ = write!(
                svg,
                r#"<rect {} x="{x:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}"><title>{}: {runs} {}</title></rect>"#,
                outcome_fill(outcome),
                bottom - top,
                escape(&insights.window.bucket_label(bucket.start)),
                outcome_label(outcome)
            );
            below += runs;
        }
    }
    svg.push_str("</svg>");
    Chart {
        id: "outcomes".into(),
        title: title.into(),
        summary,
        svg,
    }
}

fn bucket_name(window: InsightsWindow) -> &'static str {
    match window.bucket_hours() {
        1 => "hour",
        24 => "day",
        _ => "six hours",
    }
}

/// p50 (solid line, round markers) and p95 (dashed line, square markers)
/// of one phase per bucket; buckets without runs leave a gap.
fn durations(insights: &Insights, phase: Phase) -> Chart {
    let (id, title, what) = match phase {
        Phase::Run => ("run-time", "Run time", "run time (first claimed to ended)"),
        Phase::Queue => (
            "queue-wait",
            "Queue wait",
            "queue wait (queued to first claimed)",
        ),
    };
    let of = |figures: &InsightFigures| match phase {
        Phase::Run => figures.run,
        Phase::Queue => figures.queue,
    };
    let totals = of(&insights.totals);
    let summary = format!(
        "The {what} of ended runs per {}, median (p50) and 95th percentile (p95); over the window p50 {} and p95 {}.",
        bucket_name(insights.window),
        totals.p50_millis.map_or("—".into(), format_millis),
        totals.p95_millis.map_or("—".into(), format_millis),
    );
    let max = insights
        .buckets
        .iter()
        .filter_map(|b| of(&b.figures).p95_millis)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = frame(id, title, &summary, insights, max, |v| {
        format_millis(v as i64)
    });
    legend(
        &mut svg,
        0,
        r#"<line class="series" x1="0" y1="7" x2="14" y2="7"/><circle class="marker" cx="7" cy="7" r="3"/>"#,
        "p50 (median)",
    );
    legend(
        &mut svg,
        1,
        r#"<line class="series dashed" x1="0" y1="7" x2="14" y2="7"/><rect class="marker" x="4" y="4" width="6" height="6"/>"#,
        "p95",
    );
    let count = insights.buckets.len();
    let p50: fn(Percentiles) -> Option<i64> = |p| p.p50_millis;
    let p95: fn(Percentiles) -> Option<i64> = |p| p.p95_millis;
    for (pick, dashed) in [(p50, false), (p95, true)] {
        let points: Vec<Option<(f64, f64)>> = insights
            .buckets
            .iter()
            .enumerate()
            .map(|(index, bucket)| {
                pick(of(&bucket.figures))
                    .map(|ms| (slot_center(index, count), y_of(ms as f64, max)))
            })
            .collect();
        // One polyline per run of consecutive buckets with data.
        for segment in points.split(Option::is_none) {
            let coords: Vec<String> = segment
                .iter()
                .flatten()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            if coords.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline class="series{}" points="{}"/>"#,
                    if dashed { " dashed" } else { "" },
                    coords.join(" ")
                );
            }
        }
        for (index, point) in points.iter().enumerate() {
            let Some((x, y)) = point else { continue };
            let label = format!(
                "{}: {} {}",
                insights.window.bucket_label(insights.buckets[index].start),
                if dashed { "p95" } else { "p50" },
                pick(of(&insights.buckets[index].figures)).map_or(String::new(), format_millis)
            );
            let marker = if dashed {
                format!(
                    r#"<rect class="marker" x="{:.1}" y="{:.1}" width="6" height="6">"#,
                    x - 3.0,
                    y - 3.0
                )
            } else {
                format!(r#"<circle class="marker" cx="{x:.1}" cy="{y:.1}" r="3">"#)
            };
            let close = if dashed { "</rect>" } else { "</circle>" };
            let _ = write!(svg, "{marker}<title>{}</title>{close}", escape(&label));
        }
    }
    svg.push_str("</svg>");
    Chart {
        id: id.into(),
        title: title.into(),
        summary,
        svg,
    }
}

fn throughput(insights: &Insights) -> Chart {
    let title = "Items per second";
    let summary = format!(
        "Items processed per second of run time, per {}; over the window {}.",
        bucket_name(insights.window),
        insights
            .totals
            .items_per_second()
            .map_or("—".into(), |rate| format!("{rate:.1} items/s"))
    );
    let max = insights
        .buckets
        .iter()
        .filter_map(|b| b.figures.items_per_second())
        .fold(0.0, f64::max)
        .max(1.0);
    let mut svg = frame("throughput", title, &summary, insights, max, |v| {
        format!("{v:.0}/s")
    });
    let count = insights.buckets.len();
    let width = slot_width(count) * 0.8;
    for (index, bucket) in insights.buckets.iter().enumerate() {
        let Some(rate) = bucket.figures.items_per_second() else {
            continue;
        };
        let top = y_of(rate, max);
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}"><title>{}: {rate:.1} items/s</title></rect>"#,
            slot_center(index, count) - width / 2.0,
            HEIGHT - BOTTOM - top,
            escape(&insights.window.bucket_label(bucket.start)),
        );
    }
    svg.push_str("</svg>");
    Chart {
        id: "throughput".into(),
        title: title.into(),
        summary,
        svg,
    }
}

/// One row per top reason code: its name and total as text, its trend as
/// small bars on a shared scale.
fn reasons(insights: &Insights) -> Chart {
    let title = "Top failure reasons";
    let summary = if insights.reasons.is_empty() {
        "No failures in this window.".to_string()
    } else {
        let listed: Vec<String> = insights
            .reasons
            .iter()
            .map(|r| format!("{} {}", r.reason_code.as_str(), r.total))
            .collect();
        format!(
            "Failed items and run failures by reason code, most frequent first, with their trend per {}: {}.",
            bucket_name(insights.window),
            listed.join(", ")
        )
    };
    let row = 34.0;
    let height = (insights.reasons.len().max(1) as f64) * row + 8.0;
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-reasons-title chart-reasons-desc" xmlns="http://www.w3.org/2000/svg"><title id="chart-reasons-title">{title}</title><desc id="chart-reasons-desc">{}</desc>"#,
        escape(&summary)
    );
    if insights.reasons.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="legend" x="{LEFT}" y="24">No failures in this window.</text>"#
        );
    }
    let max = insights
        .reasons
        .iter()
        .flat_map(|r| r.per_bucket.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let spark_left = 260.0;
    let count = insights.buckets.len().max(1);
    let slot = (WIDTH - spark_left - RIGHT) / count as f64;
    for (line, reason) in insights.reasons.iter().enumerate() {
        let base = 8.0 + row * (line as f64 + 1.0) - 6.0;
        let _ = write!(
            svg,
            r#"<text class="legend" x="0" y="{:.1}">{} ({})</text><line class="axis" x1="{spark_left}" y1="{base:.1}" x2="{}" y2="{base:.1}"/>"#,
            base - 6.0,
            escape(reason.reason_code.as_str()),
            reason.total,
            WIDTH - RIGHT,
        );
        for (index, failures) in reason.per_bucket.iter().enumerate() {
            if *failures == 0 {
                continue;
            }
            let bar = (row - 10.0) * *failures as f64 / max;
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bar:.1}"><title>{}: {failures}</title></rect>"#,
                spark_left + slot * index as f64 + slot * 0.1,
                base - bar,
                slot * 0.8,
                escape(&insights.window.bucket_label(insights.buckets[index].start)),
            );
        }
    }
    svg.push_str("</svg>");
    Chart {
        id: "reasons".into(),
        title: title.into(),
        summary,
        svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Insights {
        let now = Timestamp::start_of_day("2026-12-05")
            .unwrap()
            .plus_millis(13 * 3_600_000);
        let hour = Timestamp(now.0 - MICROS_PER_HOUR);
        let rollups = Rollups {
            outcomes: vec![OutcomeRollup {
                hour,
                operation: OperationKind::DriftGenerate,
                outcome: RunStatus::CompletedWithErrors,
                runs: 2,
                items_processed: 20,
                items_succeeded: 18,
                items_failed: 2,
                items_skipped: 0,
                started_runs: 2,
                queue_millis: 10,
                run_millis: 4_000,
            }],
            durations: vec![DurationRollup {
                hour,
                operation: OperationKind::DriftGenerate,
                phase: Phase::Run,
                bucket: duration_buckets::of(2_000),
                runs: 2,
            }],
            reasons: vec![ReasonRollup {
                hour,
                operation: OperationKind::DriftGenerate,
                reason_code: ReasonCode::Timeout,
                failures: 2,
            }],
        };
        Insights::from_rollups(InsightsWindow::Day, None, now, &rollups)
    }

    #[test]
    fn every_chart_is_a_titled_described_image() {
        for chart in draw(&sample()) {
            let svg = &chart.svg;
            assert!(svg.starts_with("<svg class=\"chart\""), "{}", chart.id);
            assert!(svg.ends_with("</svg>"), "{}", chart.id);
            assert!(svg.contains(r#"role="img""#), "{}", chart.id);
            assert!(
                svg.contains(&format!("<title id=\"chart-{}-title\">", chart.id)),
                "{}",
                chart.id
            );
            assert!(svg.contains(&escape(&chart.summary)), "{}", chart.id);
            // Balanced: every opened element is closed.
            for tag in ["svg", "title", "desc", "g", "pattern", "defs"] {
                let opened = svg.matches(&format!("<{tag} ")).count()
                    + svg.matches(&format!("<{tag}>")).count();
                assert_eq!(
                    opened,
                    svg.matches(&format!("</{tag}>")).count(),
                    "{} <{tag}>",
                    chart.id
                );
            }
        }
    }

    #[test]
    fn outcomes_are_told_apart_without_colour() {
        let outcomes = &draw(&sample())[0];
        assert!(outcomes.summary.contains("2 partially succeeded"));
        // The partial runs' bar is hatched, and the legend says what hatch means.
        assert!(outcomes.svg.contains(r#"fill="url(#fill-hatch)" x="#));
        assert!(outcomes.svg.contains("partially succeeded (2)"));
        assert!(outcomes.svg.contains("12-05 12:00: 2 partially succeeded"));
    }

    #[test]
    fn reasons_and_rates_are_in_the_words() {
        let charts = draw(&sample());
        let throughput = charts.iter().find(|c| c.id == "throughput").unwrap();
        assert!(
            throughput.summary.contains("5.0 items/s"),
            "{}",
            throughput.summary
        );
        let reasons = charts.iter().find(|c| c.id == "reasons").unwrap();
        assert!(reasons.summary.contains("timeout 2"), "{}", reasons.summary);
        assert!(reasons.svg.contains("timeout (2)"));
    }
}
