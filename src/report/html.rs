//! The HTML report (`ion-plan report PLAN --format html`): one self-contained file — inline CSS
//! and SVG, no script, no font, nothing fetched — that a person deciding GO or NO-GO looks at.
//! Summary first, then one chart per gate condition (the metric over time in the condition's
//! unit, its threshold, stage bands, each evaluation a point coloured by its outcome, markers
//! where a gate fired, a person approved, a rollback began), then the steps, then the whole
//! decision log, collapsed.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::event::evaluation::{Evaluation, Outcome, show, show_signed};
use crate::plan::units::{LiteralUnit, format_duration};
use crate::report::decision_log::Log;
use crate::report::escape::html as esc;

/// A chart's size in SVG units; it scales to the page's width.
const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 260.0;
/// The plot area's margins: left for the y labels, bottom for the stage labels.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;

const STYLE: &str = r"
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1b1f24;
  max-width: 1240px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 18px 0 4px; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #d0d7de;
  padding: 3px 8px; text-align: left; vertical-align: top; } th { background: #f6f8fa; }
code { font-family: ui-monospace, monospace; font-size: 13px; }
.outcome { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
  font-weight: 600; } .completed { background: #1a7f37; } .rolled_back, .failed, .aborted
  { background: #cf222e; } .other { background: #9a6700; }
.why { margin: 8px 0; padding: 8px 12px; background: #fff8c5; border-left: 4px solid #d4a72c; }
svg.chart { width: 100%; height: auto; display: block; border: 1px solid #d0d7de; }
.band-0 { fill: #f6f8fa; } .band-1 { fill: #ffffff; } .band-label { font-size: 11px; fill: #57606a; }
.axis { stroke: #8c959f; stroke-width: 1; } .tick { font-size: 11px; fill: #57606a; }
.threshold { stroke: #cf222e; stroke-width: 1.5; stroke-dasharray: 6 4; fill: none; }
.value { stroke: #0969da; stroke-width: 1.2; fill: none; opacity: 0.5; }
.whisker { stroke: #0969da; stroke-width: 2; }
.point { stroke: #fff; stroke-width: 1; } .pass { fill: #1a7f37; } .violation { fill: #bc4c00; }
.insufficient { fill: #8c959f; } .error { fill: #8250df; } .fired { fill: #cf222e; stroke: #1b1f24; }
.marker-fired { stroke: #cf222e; } .marker-approved { stroke: #0969da; }
.marker-rollback { stroke: #1b1f24; } .marker { stroke-width: 1.5; stroke-dasharray: 2 3; }
.legend span { margin-right: 14px; font-size: 12px; } .dot { display: inline-block; width: 10px;
  height: 10px; border-radius: 5px; margin-right: 4px; vertical-align: -1px; }
.dot.pass { background: #1a7f37; } .dot.violation { background: #bc4c00; }
.dot.insufficient { background: #8c959f; } .dot.error { background: #8250df; }
.dot.fired { background: #cf222e; }
.thinned { font-size: 12px; color: #57606a; margin: 2px 0 0; }
details { margin: 12px 0; } summary { cursor: pointer; font-weight: 600; }
@media print { body { max-width: none; margin: 0; } details { display: block; }
  .chart-block { break-inside: avoid; } }
";

/// The whole report.
pub fn render(log: &Log) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rollout report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&log.plan)
    );
    summary(&mut out, log);
    let span = Span::of(log);
    let charts = charts(log);
    let _ = writeln!(out, "<h2>Gate conditions</h2>");
    legend(&mut out);
    if charts.is_empty() {
        let _ = writeln!(out, "<p>No condition was evaluated.</p>");
    }
    for chart in &charts {
        chart.render(&mut out, log, span);
    }
    steps(&mut out, log);
    decision_log(&mut out, log);
    out.push_str("</body>\n</html>\n");
    out
}

fn summary(out: &mut String, log: &Log) {
    let class = match log.outcome.as_str() {
        "completed" | "rolled_back" | "failed" | "aborted" => log.outcome.as_str(),
        _ => "other",
    };
    let _ = writeln!(
        out,
        "<h1>Rollout report: <code>{}</code></h1>\n<p><span class=\"outcome {class}\" \
         id=\"outcome\">{}</span> run <code>{}</code></p>",
        esc(&log.plan),
        esc(&log.outcome.replace('_', " ")),
        esc(&log.run_id)
    );
    if let Some(reason) = &log.reason {
        let _ = writeln!(out, "<div class=\"why\" id=\"why\">{}</div>", esc(reason));
    }
    let decision = &log.summary.decision;
    if !decision.headline.is_empty() {
        let _ = writeln!(
            out,
            "<p id=\"decision\"><strong>Decided by:</strong> {}</p>",
            esc(&decision.headline)
        );
    }
    if let (Some(start), Some(end)) = (log.started, log.last_event) {
        let _ = writeln!(
            out,
            "<p>From {} to {} ({}).</p>",
            time(start),
            time(end),
            format_duration((end - start).to_std().unwrap_or_default())
        );
    }
    if log.stages.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<table><tr><th>stage</th><th>traffic</th><th>started</th><th>ended</th><th>checks</th></tr>"
    );
    for stage in &log.stages {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}%</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&stage.name),
            stage.traffic,
            time(stage.started),
            stage.completed.map_or_else(|| "—".to_owned(), time),
            stage.checks.len()
        );
    }
    out.push_str("</table>\n");
    interruptions(out, log);
}

/// Resumes, missed checks, and what people did: who, and when.
fn interruptions(out: &mut String, log: &Log) {
    let all = &log.summary.interruptions;
    if all.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Interruptions and people</h2>\n<table><tr><th>time</th><th>stage</th><th>what</th>\
         <th>who</th><th>detail</th></tr>\n",
    );
    for i in all {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(i.at),
            esc(i.stage.as_deref().unwrap_or("")),
            esc(&i.what),
            esc(i.by.as_deref().unwrap_or("")),
            esc(i.detail.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
}

fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for (class, label) in [
        ("pass", "pass"),
        ("violation", "violation"),
        ("insufficient", "insufficient"),
        ("error", "error"),
        ("fired", "fired (the gate acted)"),
    ] {
        let _ = write!(out, "<span><i class=\"dot {class}\"></i>{label}</span>");
    }
    out.push_str(
        "<span>– – threshold (compare: margin)</span><span>┆ markers: gate fired (red), \
         approved (blue), rollback (black)</span></p>\n",
    );
}

/// The time the run spans, for every chart's x axis.
#[derive(Clone, Copy)]
struct Span {
    start: DateTime<Utc>,
    seconds: f64,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "milliseconds of a run, far below 2^52"
)]
impl Span {
    fn of(log: &Log) -> Span {
        let start = log
            .started
            .or_else(|| log.stages.first().map(|s| s.started))
            .unwrap_or_default();
        let end = log.last_event.unwrap_or(start);
        Span {
            start,
            seconds: ((end - start).num_milliseconds() as f64 / 1000.0).max(1.0),
        }
    }

    /// The column of [`COLUMN`] units a moment falls in, for thinning a long chart.
    #[expect(clippy::cast_possible_truncation, reason = "an x within the chart")]
    fn column(self, at: DateTime<Utc>) -> i64 {
        (self.x(at) / COLUMN).floor() as i64
    }

    /// The x of a moment in the plot area.
    fn x(self, at: DateTime<Utc>) -> f64 {
        let t = (at - self.start).num_milliseconds() as f64 / 1000.0;
        LEFT + (t / self.seconds).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

/// A chart with more evaluations than this shows, per column of [`COLUMN`] SVG units, its lowest
/// and highest passing value and every other outcome (what a person must see); the rest would
/// be points drawn on top of each other. Phase4's 22 days are 5,764 checks a condition.
const MAX_POINTS: usize = 600;
const COLUMN: f64 = 2.0;
/// About how wide a character of a stage label is, in SVG units (11 px system-ui).
const LABEL_CHAR: f64 = 6.2;

/// One evaluation on a chart.
struct Point {
    at: DateTime<Utc>,
    stage: String,
    evaluation: Evaluation,
}

/// Every evaluation of one gate condition, in time order.
struct Chart {
    gate: String,
    condition: String,
    points: Vec<Point>,
}

fn charts(log: &Log) -> Vec<Chart> {
    let mut charts: Vec<Chart> = Vec::new();
    let checks = log.stages.iter().flat_map(|stage| {
        stage
            .checks
            .iter()
            .map(move |check| (stage.name.as_str(), check))
    });
    for (stage, check) in checks {
        for evaluation in &check.evaluations {
            let point = Point {
                at: check.at,
                stage: stage.to_owned(),
                evaluation: evaluation.clone(),
            };
            match charts
                .iter_mut()
                .find(|c| c.gate == evaluation.gate && c.condition == evaluation.condition)
            {
                Some(chart) => chart.points.push(point),
                None => charts.push(Chart {
                    gate: evaluation.gate.clone(),
                    condition: evaluation.condition.clone(),
                    points: vec![point],
                }),
            }
        }
    }
    charts
}

impl Chart {
    fn unit(&self) -> LiteralUnit {
        self.points
            .first()
            .map_or(LiteralUnit::Plain, |p| p.evaluation.unit())
    }

    /// The evaluations drawn: all of them, or for a long run per column the lowest and the
    /// highest passing value and every evaluation that did not simply pass.
    fn shown(&self, span: Span) -> Vec<&Point> {
        if self.points.len() <= MAX_POINTS {
            return self.points.iter().collect();
        }
        let plain =
            |p: &Point| matches!(p.evaluation.outcome, Outcome::Pass) && !p.evaluation.fired;
        let value = |p: &Point| p.evaluation.value.filter(|v| v.is_finite());
        let mut kept = vec![false; self.points.len()];
        // Per column: the indices of its lowest and highest passing value.
        let mut columns: std::collections::BTreeMap<i64, (usize, usize)> =
            std::collections::BTreeMap::new();
        for (i, p) in self.points.iter().enumerate() {
            if !plain(p) || value(p).is_none() {
                kept[i] = true;
                continue;
            }
            let column = span.column(p.at);
            let at = |j: usize| value(&self.points[j]).unwrap_or(0.0);
            let v = at(i);
            columns
                .entry(column)
                .and_modify(|(low, high)| {
                    if v < at(*low) {
                        *low = i;
                    }
                    if v > at(*high) {
                        *high = i;
                    }
                })
                .or_insert((i, i));
        }
        for (low, high) in columns.into_values() {
            kept[low] = true;
            kept[high] = true;
        }
        self.points
            .iter()
            .zip(kept)
            .filter_map(|(p, keep)| keep.then_some(p))
            .collect()
    }

    fn compared(&self) -> bool {
        self.points.iter().any(|p| p.evaluation.compare.is_some())
    }

    /// Every value the y axis must show: values (a comparison's interval), thresholds, 0.
    fn y_range(&self) -> (f64, f64) {
        let mut values = vec![0.0];
        for p in &self.points {
            let e = &p.evaluation;
            values.extend(e.value);
            values.extend(e.threshold);
            if let Some(c) = &e.compare {
                values.extend(c.lower);
                values.extend(c.upper);
                if self.direction_counts_decrease() {
                    values.push(-c.margin);
                }
            }
        }
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let hi = if hi > lo {
            hi
        } else {
            lo + 1e-9_f64.max(lo.abs())
        };
        // Round to a tick step of 1, 2, 2.5 or 5 × 10^k, four or so ticks high.
        let step = nice_step((hi - lo) / 4.0);
        ((lo / step).floor() * step, (hi * 1.04 / step).ceil() * step)
    }

    /// The y axis's tick step over `lo..hi`.
    fn ticks(lo: f64, hi: f64) -> Vec<f64> {
        let step = nice_step((hi - lo) / 4.0);
        let first = (lo / step).ceil();
        (0..12)
            .map(|k| (first + f64::from(k)) * step)
            .take_while(|v| *v <= hi + step * 1e-9)
            .collect()
    }

    /// A comparison whose violations were `lower`: its margin is drawn below zero too.
    fn direction_counts_decrease(&self) -> bool {
        self.points.iter().any(|p| {
            p.evaluation
                .compare
                .is_some_and(|c| c.shift == Some(crate::event::ShiftWay::Lower))
        })
    }

    fn render(&self, out: &mut String, log: &Log, span: Span) {
        let unit = self.unit();
        let (lo, hi) = self.y_range();
        let y = |v: f64| TOP + (1.0 - (v - lo) / (hi - lo)) * (HEIGHT - TOP - BOTTOM);
        let title = if self.compared() {
            format!("{} — shift canary − baseline", self.condition)
        } else {
            self.condition.clone()
        };
        let _ = writeln!(
            out,
            "<div class=\"chart-block\"><h3>{}: {}</h3>\n<svg class=\"chart\" role=\"img\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" data-gate=\"{}\" data-condition=\"{}\" \
             aria-label=\"{}\">",
            esc(&self.gate),
            esc(&title),
            esc(&self.gate),
            esc(&self.condition),
            esc(&title),
        );
        bands(out, log, span);
        // Axes and y ticks, in the condition's unit.
        let bottom = HEIGHT - BOTTOM;
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>\
             <line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>",
            WIDTH - RIGHT
        );
        for v in Chart::ticks(lo, hi) {
            let _ = writeln!(
                out,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                y(v) + 4.0,
                esc(&show(v, unit))
            );
        }
        self.threshold(out, span, &y);
        let shown = self.shown(span);
        Chart::values(out, &shown, span, &y);
        markers(out, log, span);
        out.push_str("</svg>");
        if shown.len() < self.points.len() {
            let _ = write!(
                out,
                "<p class=\"thinned\">{} evaluations; {} drawn: in each column its lowest and \
                 highest passing value and every one that did not simply pass (the decision log \
                 below has them all).</p>",
                self.points.len(),
                shown.len()
            );
        }
        out.push_str("</div>\n");
    }

    /// The threshold (a comparison's margin, mirrored below zero where a decrease counts) as
    /// a step line across the evaluations.
    fn threshold(&self, out: &mut String, span: Span, y: &impl Fn(f64) -> f64) {
        let steps = |sign: f64| -> String {
            let mut d = String::new();
            let mut last_x = None;
            let mut last_t = None;
            for p in &self.points {
                let Some(t) = p.evaluation.threshold.filter(|t| t.is_finite()) else {
                    continue;
                };
                let x = span.x(p.at);
                if last_x.is_none() {
                    // A lone evaluation still shows its threshold, as a short segment.
                    let _ = write!(d, "M{:.1},{:.1} ", x - 6.0, y(sign * t));
                } else if last_t == Some(t) {
                    // The same level: the segment runs on (drawn up to the next change).
                    last_x = Some(x);
                    continue;
                } else {
                    let _ = write!(d, "H{x:.1} ");
                }
                let _ = write!(d, "V{:.1} ", y(sign * t));
                last_x = Some(x);
                last_t = Some(t);
            }
            if let Some(x) = last_x {
                let _ = write!(d, "H{:.1}", x + 6.0);
            }
            d
        };
        let mut paths = vec![steps(1.0)];
        if self.compared() && self.direction_counts_decrease() {
            paths.push(steps(-1.0));
        }
        for d in paths.iter().filter(|d| !d.is_empty()) {
            let _ = writeln!(out, "<path class=\"threshold\" d=\"{}\"/>", d.trim());
        }
    }

    /// The values as a faint line and a point per evaluation (a comparison: its estimate with
    /// the interval as a whisker); each point's title gives its reading.
    fn values(out: &mut String, shown: &[&Point], span: Span, y: &impl Fn(f64) -> f64) {
        let line: Vec<String> = shown
            .iter()
            .filter_map(|p| {
                let v = p.evaluation.value.filter(|v| v.is_finite())?;
                Some(format!("{:.1},{:.1}", span.x(p.at), y(v)))
            })
            .collect();
        if line.len() > 1 {
            let _ = writeln!(
                out,
                "<polyline class=\"value\" points=\"{}\"/>",
                line.join(" ")
            );
        }
        let bottom = HEIGHT - BOTTOM;
        for p in shown {
            let e = &p.evaluation;
            let x = span.x(p.at);
            if let Some((lower, upper)) = e.compare.and_then(|c| c.lower.zip(c.upper)) {
                let _ = writeln!(
                    out,
                    "<line class=\"whisker\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
                    y(lower),
                    y(upper)
                );
            }
            let class = match (&e.outcome, e.fired) {
                (_, true) => "fired",
                (Outcome::Pass, _) => "pass",
                (Outcome::Violation, _) => "violation",
                (Outcome::Insufficient, _) => "insufficient",
                (Outcome::Error(_), _) => "error",
            };
            // An evaluation without a value (an error) sits on the axis.
            let cy = e.value.filter(|v| v.is_finite()).map_or(bottom, y);
            let r = if e.fired { 6.0 } else { 4.0 };
            let reading = match e.compare.and_then(|c| c.estimate) {
                Some(estimate) if e.compare.is_some() => show_signed(estimate, e.unit()),
                _ => e
                    .value
                    .map_or_else(|| "-".to_owned(), |v| show(v, e.unit())),
            };
            let _ = writeln!(
                out,
                "<circle class=\"point {class}\" cx=\"{x:.1}\" cy=\"{cy:.1}\" r=\"{r}\" \
                 data-outcome=\"{class}\" data-value=\"{}\"><title>{} · {} · {}</title></circle>",
                esc(&reading),
                time(p.at),
                esc(&p.stage),
                esc(&e.describe())
            );
        }
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// Stage bands, alternating, labelled with the stage and its traffic.
fn bands(out: &mut String, log: &Log, span: Span) {
    let bottom = HEIGHT - BOTTOM;
    let mut label_end = f64::NEG_INFINITY;
    for (k, stage) in log.stages.iter().enumerate() {
        let x0 = span.x(stage.started);
        let x1 = log
            .stages
            .get(k + 1)
            .map(|next| next.started)
            .or(stage.completed)
            .or(log.last_event)
            .map_or(WIDTH - RIGHT, |end| span.x(end));
        let label = format!("{} {}%", stage.name, stage.traffic);
        let _ = write!(
            out,
            "<rect class=\"band band-{}\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" \
             height=\"{:.1}\"><title>{}</title></rect>",
            k % 2,
            (x1 - x0).max(0.0),
            bottom - TOP,
            esc(&label),
        );
        // A label that would run into the one before it (a one-hour stage in a 22-day run)
        // is left to the band's hover title.
        if x0 + 3.0 >= label_end {
            let _ = write!(
                out,
                "<text class=\"band-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x0 + 3.0,
                HEIGHT - 12.0,
                esc(&label)
            );
            #[expect(clippy::cast_precision_loss, reason = "a short label")]
            let width = label.chars().count() as f64 * LABEL_CHAR;
            label_end = x0 + 3.0 + width + 8.0;
        }
        out.push('\n');
    }
}

/// Vertical markers: a gate fired, a person approved, the rollback began.
fn markers(out: &mut String, log: &Log, span: Span) {
    let rollback = log
        .steps
        .iter()
        .find(|s| s.phase == "rollback")
        .map(|s| s.at);
    let marks = log
        .fired
        .iter()
        .map(|f| {
            (
                f.at,
                "fired",
                format!("gate {} fired: {}", f.gate, f.action),
            )
        })
        .chain(
            log.approvals
                .iter()
                .map(|a| (a.at, "approved", format!("approved by {}", a.by))),
        )
        .chain(rollback.map(|at| (at, "rollback", "rollback began".to_owned())));
    for (at, class, label) in marks {
        let x = span.x(at);
        let _ = writeln!(
            out,
            "<line class=\"marker marker-{class}\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" \
             y2=\"{:.1}\"><title>{}</title></line>",
            HEIGHT - BOTTOM,
            esc(&label)
        );
    }
}

fn steps(out: &mut String, log: &Log) {
    if log.steps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Steps</h2>\n<table><tr><th>time</th><th>phase</th><th>stage</th><th>step</th>\
         <th>attempt</th><th>result</th></tr>"
    );
    for s in &log.steps {
        let result = match s.ok {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "unfinished",
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}{}</td></tr>",
            time(s.at),
            esc(&s.phase),
            esc(s.stage.as_deref().unwrap_or("")),
            esc(&s.name),
            s.attempt,
            s.detail
                .as_deref()
                .map_or_else(String::new, |d| format!(": {}", esc(d)))
        );
    }
    out.push_str("</table>\n");
}

/// Every check's evaluations, collapsed.
fn decision_log(out: &mut String, log: &Log) {
    out.push_str("<details><summary>Decision log: every evaluation</summary>\n<table>\n");
    out.push_str("<tr><th>time</th><th>stage</th><th>check</th><th>evaluation</th></tr>\n");
    for stage in &log.stages {
        for check in &stage.checks {
            for e in &check.evaluations {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}: {}{}</td></tr>",
                    time(check.at),
                    esc(&stage.name),
                    check.number,
                    esc(&e.gate),
                    esc(&e.describe()),
                    if e.fired { " — fired" } else { "" }
                );
            }
        }
    }
    out.push_str("</table></details>\n");
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::evaluation::Streak;
    use crate::report::decision_log::{CheckLog, StageLog};

    /// A long run's chart draws a point a column or two, yet every evaluation that did not
    /// simply pass, and the lowest and highest passing value of each column: nothing a
    /// person must see is thinned away.
    #[test]
    fn a_long_charts_points_are_thinned_but_no_violation_and_no_extreme_is_lost() {
        let start = DateTime::<Utc>::default();
        let evaluation = |value: f64, outcome: Outcome| Evaluation {
            gate: "guard".to_owned(),
            condition: "app.error_rate <= 1%".to_owned(),
            outcome,
            value: Some(value),
            threshold: Some(0.01),
            streak: Streak {
                count: 0,
                needed: 1,
                window: None,
            },
            fired: false,
            evidence: None,
            unit: None,
            compare: None,
        };
        let n: u32 = 6000;
        let points: Vec<Point> = (0..n)
            .map(|i| {
                let value = f64::from((i * 7919) % 1000) / 1e5;
                let outcome = if i % 997 == 0 {
                    Outcome::Violation
                } else if i % 1499 == 0 {
                    Outcome::Error("no data".to_owned())
                } else {
                    Outcome::Pass
                };
                Point {
                    at: start + chrono::Duration::minutes(i64::from(i)),
                    stage: "full".to_owned(),
                    evaluation: evaluation(value, outcome),
                }
            })
            .collect();
        let span = Span {
            start,
            seconds: f64::from(n) * 60.0,
        };
        let chart = Chart {
            gate: "guard".to_owned(),
            condition: "app.error_rate <= 1%".to_owned(),
            points,
        };
        let shown = chart.shown(span);
        let column = |p: &Point| span.column(p.at);
        let columns = chart
            .points
            .iter()
            .map(column)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert!(shown.len() <= 2 * columns + 12, "{} drawn", shown.len());
        assert!(
            shown.len() < chart.points.len() / 4,
            "{} drawn",
            shown.len()
        );
        let not_pass = |p: &Point| !matches!(p.evaluation.outcome, Outcome::Pass);
        assert_eq!(
            shown.iter().filter(|p| not_pass(p)).count(),
            chart.points.iter().filter(|p| not_pass(p)).count()
        );
        // Per column, the lowest and highest passing value of all of it are among those drawn.
        let mut extremes = std::collections::BTreeMap::<i64, (f64, f64)>::new();
        for p in chart
            .points
            .iter()
            .filter(|p| matches!(p.evaluation.outcome, Outcome::Pass))
        {
            let v = p.evaluation.value.unwrap();
            let e = extremes.entry(column(p)).or_insert((v, v));
            e.0 = e.0.min(v);
            e.1 = e.1.max(v);
        }
        for (c, (low, high)) in extremes {
            let drawn: Vec<f64> = shown
                .iter()
                .filter(|p| column(p) == c && matches!(p.evaluation.outcome, Outcome::Pass))
                .map(|p| p.evaluation.value.unwrap())
                .collect();
            assert!(drawn.contains(&low) && drawn.contains(&high), "column {c}");
        }
        // Times stay in order, for the line through them.
        assert!(shown.windows(2).all(|w| w[0].at <= w[1].at));
        // A short chart keeps every point.
        let short = Chart {
            points: chart.points.into_iter().take(MAX_POINTS).collect(),
            ..chart
        };
        assert_eq!(short.shown(span).len(), MAX_POINTS);
    }

    /// Text from outside (a probe's error, a metric name from a command, a person's reason)
    /// shows as text: no element or attribute it spells takes effect.
    #[test]
    fn outside_text_is_escaped_everywhere() {
        let hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
        let at = DateTime::<Utc>::default();
        let evaluation = Evaluation {
            gate: hostile.to_owned(),
            condition: format!("app.{hostile} <= 1"),
            outcome: Outcome::Error(hostile.to_owned()),
            value: Some(2.0),
            threshold: Some(1.0),
            streak: Streak {
                count: 1,
                needed: 1,
                window: None,
            },
            fired: true,
            evidence: None,
            unit: None,
            compare: None,
        };
        let log = Log {
            run_id: hostile.to_owned(),
            plan: hostile.to_owned(),
            digest: String::new(),
            started: Some(at),
            last_event: Some(at),
            outcome: hostile.to_owned(),
            reason: Some(hostile.to_owned()),
            stages: vec![StageLog {
                name: hostile.to_owned(),
                traffic: 5.0,
                started: at,
                completed: None,
                checks: vec![CheckLog {
                    number: 1,
                    at,
                    offset: 0.0,
                    samples: Vec::new(),
                    evaluations: vec![evaluation],
                }],
            }],
            preflight: Vec::new(),
            fired: Vec::new(),
            approvals: Vec::new(),
            aborts: Vec::new(),
            steps: Vec::new(),
            summary: crate::report::summary::summarize_records(hostile, hostile, "", &[]),
        };
        let html = render(&log);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("\"'>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 1);
    }

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert!((nice_step(0.0337) - 0.05).abs() < 1e-12);
        assert!((nice_step(1.0) - 1.0).abs() < 1e-12);
        assert!((nice_step(2.2) - 2.5).abs() < 1e-12);
        let labels: Vec<String> = Chart::ticks(0.0, 0.1)
            .into_iter()
            .map(|v| show(v, LiteralUnit::Percent))
            .collect();
        assert_eq!(labels, ["0%", "2.5%", "5%", "7.5%", "10%"]);
    }
}
