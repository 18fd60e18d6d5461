//! The Markdown report (`ion-plan report`, the demo's `*.report.md`): the summary first, a
//! table per gate, then samples and the decision log collapsed. It stays under GitHub's 1 MiB
//! step-summary limit (README, "CI"): past a budget, samples and evaluations are summarised per
//! stage, and `--format json` keeps every one.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::event::evaluation::{Outcome as Judged, show};
use crate::plan::metrics::LOAD_METRICS;
use crate::plan::units::{LiteralUnit, format_duration};
use crate::probe::Reading;
use crate::report::decision_log::{CheckLog, Log};
use crate::report::summary::Summary;

/// Past this many bytes, samples are shown per stage (min / median / max).
const SAMPLES_BUDGET: usize = 256 * 1024;
/// Past this many bytes, the decision log is shown per stage (counts, and what was not a pass).
const LOG_BUDGET: usize = 384 * 1024;
/// Evaluations other than passes listed per stage in the condensed log.
const LISTED_PER_STAGE: usize = 40;

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Outside text in the report: escaped for Markdown, on one line (see `report::escape`).
fn cell(text: &str) -> String {
    crate::report::escape::markdown(text)
}

/// A condition is plan text, checked by its grammar: it reads as code.
fn code(condition: &str) -> String {
    format!("`{}`", condition.replace('`', "'").replace('|', "\\|"))
}

/// The report.
pub fn render(log: &Log) -> String {
    let mut out = String::new();
    summary(&mut out, &log.summary);
    gates(&mut out, &log.summary);
    steps(&mut out, log);
    let units = metric_units(log);
    let mut samples = String::new();
    for (title, checks) in sections(log) {
        every_sample(&mut samples, &title, checks, &units);
    }
    if samples.len() > SAMPLES_BUDGET {
        samples.clear();
        for (title, checks) in sections(log) {
            per_stage_samples(&mut samples, &title, checks, &units);
        }
        let _ = writeln!(
            out,
            "<details><summary>Samples, per stage (min / median / max; every sample: <code>--format json</code>)</summary>\n\n{samples}</details>\n"
        );
    } else {
        let _ = writeln!(
            out,
            "<details><summary>Samples</summary>\n\n{samples}</details>\n"
        );
    }
    let mut evaluations = String::new();
    for (stage, title, checks) in sections_of(log) {
        every_evaluation(&mut evaluations, &title, checks);
        interruptions(&mut evaluations, &log.summary, stage);
    }
    if evaluations.len() > LOG_BUDGET {
        evaluations.clear();
        for (stage, title, checks) in sections_of(log) {
            per_stage_evaluations(&mut evaluations, &title, checks);
            interruptions(&mut evaluations, &log.summary, stage);
        }
        let _ = writeln!(
            out,
            "<details><summary>Decision log, per stage (every evaluation: <code>--format json</code>)</summary>\n\n{evaluations}</details>"
        );
    } else {
        let _ = writeln!(
            out,
            "<details><summary>Decision log</summary>\n\n{evaluations}</details>"
        );
    }
    out
}

fn summary(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "# Rollout report: `{}`\n", s.plan);
    let _ = writeln!(
        out,
        "**{}**: {}\n",
        s.outcome.replace('_', " ").to_uppercase(),
        cell(&s.decision.headline)
    );
    let _ = writeln!(out, "- outcome: **{}**", s.outcome.replace('_', " "));
    if let Some(reason) = &s.reason {
        let _ = writeln!(out, "- why: {}", cell(reason));
    }
    if let (Some(start), Some(end), Some(d)) = (s.started, s.ended, s.duration()) {
        let _ = writeln!(
            out,
            "- from {} to {} ({})",
            time(start),
            time(end),
            format_duration(d)
        );
    }
    let _ = writeln!(out, "- run: `{}`", s.run_id);
    let _ = writeln!(out, "- plan digest: `{}`\n", s.digest);
    if !s.stages.is_empty() {
        let _ = writeln!(
            out,
            "| stage | traffic | started | ended | checks |\n|---|---|---|---|---|"
        );
        for stage in &s.stages {
            let ended = match (stage.ended, stage.completed) {
                (Some(at), true) => time(at),
                (Some(at), false) => format!("{} (left)", time(at)),
                (None, _) => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {}% | {} | {ended} | {} |",
                cell(&stage.name),
                show(stage.traffic, LiteralUnit::Plain),
                time(stage.started),
                stage.checks
            );
        }
        out.push('\n');
    }
    if !s.interruptions.is_empty() {
        let _ = writeln!(
            out,
            "## Interruptions and people\n\n| time | stage | who | what |\n|---|---|---|---|"
        );
        for i in &s.interruptions {
            let what = match &i.detail {
                Some(d) => format!("{}: {}", i.what, cell(d)),
                None => i.what.clone(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {what} |",
                time(i.at),
                cell(i.stage.as_deref().unwrap_or("-")),
                cell(i.by.as_deref().unwrap_or("-")),
            );
        }
        out.push('\n');
    }
}

fn gates(out: &mut String, s: &Summary) {
    if s.gates.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Gates\n");
    for gate in &s.gates {
        let _ = writeln!(
            out,
            "### `{}`\n\n| condition | last value | worst value | threshold | violations | longest streak | outcome |\n|---|---|---|---|---|---|---|",
            cell(&gate.gate)
        );
        for c in &gate.conditions {
            let outcome = if c.fired {
                "**fired**".to_owned()
            } else {
                c.outcome()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} of {} | {}/{} | {outcome} |",
                code(&c.condition),
                cell(&c.last_value()),
                c.worst_value(),
                c.threshold(),
                c.violations,
                c.evaluations,
                c.longest_streak,
                c.needed,
            );
        }
        out.push('\n');
    }
}

/// The stage's interruptions, under its part of the decision log.
fn interruptions(out: &mut String, s: &Summary, stage: Option<&str>) {
    let mut any = false;
    for i in s
        .interruptions
        .iter()
        .filter(|i| i.stage.as_deref() == stage)
    {
        any = true;
        let by =
            i.by.as_deref()
                .map_or_else(String::new, |b| format!(" by {}", cell(b)));
        let detail = i
            .detail
            .as_deref()
            .map_or_else(String::new, |d| format!(": {}", cell(d)));
        let _ = writeln!(out, "- {}: {}{by}{detail}", time(i.at), i.what);
    }
    if any {
        out.push('\n');
    }
}

fn steps(out: &mut String, log: &Log) {
    if log.steps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Steps\n\n| time | where | step | attempt | result |\n|---|---|---|---|---|"
    );
    for s in &log.steps {
        let place = s.stage.clone().unwrap_or_else(|| s.phase.clone());
        let result = match (s.ok, &s.detail) {
            (Some(true), Some(d)) => format!("ok: {}", cell(d)),
            (Some(false), Some(d)) => format!("**failed**: {}", cell(d)),
            _ => "interrupted".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {result} |",
            time(s.at),
            cell(&place),
            cell(&s.name),
            s.attempt
        );
    }
    out.push('\n');
}

fn sections(log: &Log) -> Vec<(String, &[CheckLog])> {
    sections_of(log)
        .into_iter()
        .map(|(_, title, checks)| (title, checks))
        .collect()
}

/// Preflight and each stage (its name), with their checks.
fn sections_of(log: &Log) -> Vec<(Option<&str>, String, &[CheckLog])> {
    let mut list = vec![(None, "Preflight".to_owned(), log.preflight.as_slice())];
    for stage in &log.stages {
        list.push((
            Some(stage.name.as_str()),
            format!(
                "Stage `{}` ({}% traffic)",
                stage.name,
                show(stage.traffic, LiteralUnit::Plain)
            ),
            stage.checks.as_slice(),
        ));
    }
    list.retain(|(_, _, checks)| !checks.is_empty());
    list
}

/// The unit each metric (`probe.name`) is shown in: as the conditions that read it write their
/// thresholds, else, for a load probe's metrics, as their kind says (seconds as ms).
fn metric_units(log: &Log) -> HashMap<String, LiteralUnit> {
    let mut units = HashMap::new();
    for c in log.summary.gates.iter().flat_map(|g| &g.conditions) {
        let names: Vec<String> = match crate::plan::expr::parse(&c.condition) {
            Ok(expr) => expr.metrics().map(|m| m.name.clone()).collect(),
            Err(_) => c
                .condition
                .split(" vs ")
                .map(|s| s.trim().to_owned())
                .collect(),
        };
        for name in names {
            if c.unit != LiteralUnit::Plain {
                units.insert(name, c.unit);
            }
        }
    }
    units
}

fn unit_of(
    units: &HashMap<String, LiteralUnit>,
    sample: &crate::probe::Sample,
    metric: &str,
) -> LiteralUnit {
    let full = format!("{}.{metric}", sample.probe);
    if let Some(unit) = units.get(&full) {
        return *unit;
    }
    // A load probe's metric names say their kind.
    let load = crate::report::summary::load_shaped(sample);
    let kind = metric.rsplit('.').next().unwrap_or(metric);
    match LOAD_METRICS.iter().find(|(m, _)| *m == kind) {
        Some((_, unit)) if load => unit.shown_as(),
        _ => LiteralUnit::Plain,
    }
}

fn reading(r: &Reading, unit: LiteralUnit) -> String {
    match r {
        Reading::Value(v) => show(*v, unit),
        Reading::NoData => "no data".to_owned(),
        Reading::Error(e) => format!("error: {e}"),
    }
}

fn every_sample(
    out: &mut String,
    title: &str,
    checks: &[CheckLog],
    units: &HashMap<String, LiteralUnit>,
) {
    let _ = writeln!(
        out,
        "#### {title}\n\n| check | time | probe | values |\n|---|---|---|---|"
    );
    for c in checks {
        for s in &c.samples {
            let values = match &s.error {
                Some(e) => format!("error: {}", cell(e)),
                None => s
                    .metrics
                    .iter()
                    .map(|(k, v)| {
                        format!("{}={}", cell(k), cell(&reading(v, unit_of(units, s, k))))
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {values} |",
                c.number,
                time(c.at),
                cell(&s.probe)
            );
        }
    }
    out.push('\n');
}

fn per_stage_samples(
    out: &mut String,
    title: &str,
    checks: &[CheckLog],
    units: &HashMap<String, LiteralUnit>,
) {
    let mut values: BTreeMap<String, (LiteralUnit, Vec<f64>, u32)> = BTreeMap::new();
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    for s in checks.iter().flat_map(|c| &c.samples) {
        if s.error.is_some() {
            *errors.entry(s.probe.clone()).or_default() += 1;
            continue;
        }
        for (k, v) in &s.metrics {
            let entry = values
                .entry(format!("{}.{k}", s.probe))
                .or_insert_with(|| (unit_of(units, s, k), Vec::new(), 0));
            match v {
                Reading::Value(v) => entry.1.push(*v),
                _ => entry.2 += 1,
            }
        }
    }
    let _ = writeln!(
        out,
        "#### {title}: {} checks\n\n| metric | values | min | median | max | no data or error |\n|---|---|---|---|---|---|",
        checks.len()
    );
    for (name, (unit, mut list, missing)) in values {
        list.sort_by(f64::total_cmp);
        let at = |i: usize| {
            list.get(i)
                .map_or_else(|| "-".to_owned(), |v| show(*v, unit))
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {missing} |",
            cell(&name),
            list.len(),
            at(0),
            at(list.len() / 2),
            at(list.len().saturating_sub(1)),
        );
    }
    for (probe, n) in errors {
        let _ = writeln!(out, "| `{}` | failed samples | | | | {n} |", cell(&probe));
    }
    out.push('\n');
}

fn mark(e: &crate::event::Evaluation) -> &'static str {
    match (&e.outcome, e.fired) {
        (_, true) => "✗ FIRED",
        (Judged::Pass, _) => "✓",
        (Judged::Violation, _) => "violation",
        (Judged::Insufficient, _) => "insufficient",
        (Judged::Error(_), _) => "error",
    }
}

fn evaluation(e: &crate::event::Evaluation) -> String {
    format!("{}: {} {}", cell(&e.gate), cell(&e.describe()), mark(e))
}

fn every_evaluation(out: &mut String, title: &str, checks: &[CheckLog]) {
    let _ = writeln!(
        out,
        "#### {title}\n\n| check | time | evaluations |\n|---|---|---|"
    );
    for c in checks {
        if c.evaluations.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} (+{}) | {} |",
            c.number,
            time(c.at),
            format_duration(std::time::Duration::from_secs_f64(c.offset.max(0.0))),
            c.evaluations
                .iter()
                .map(evaluation)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out.push('\n');
}

fn per_stage_evaluations(out: &mut String, title: &str, checks: &[CheckLog]) {
    let mut counts: Vec<(String, String, [u32; 5])> = Vec::new();
    let mut listed = Vec::new();
    let mut unlisted = 0_usize;
    for c in checks {
        for e in &c.evaluations {
            let i = counts
                .iter()
                .position(|(g, k, _)| *g == e.gate && *k == e.condition)
                .unwrap_or_else(|| {
                    counts.push((e.gate.clone(), e.condition.clone(), [0; 5]));
                    counts.len() - 1
                });
            let slot = match e.outcome {
                Judged::Pass => 0,
                Judged::Violation => 1,
                Judged::Insufficient => 2,
                Judged::Error(_) => 3,
            };
            counts[i].2[slot] += 1;
            if e.fired {
                counts[i].2[4] += 1;
            }
            if e.outcome != Judged::Pass || e.fired {
                if listed.len() < LISTED_PER_STAGE {
                    listed.push((c.number, c.at, evaluation(e)));
                } else {
                    unlisted += 1;
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "#### {title}: {} checks\n\n| gate | condition | pass | violation | insufficient | error | fired |\n|---|---|---|---|---|---|---|",
        checks.len()
    );
    for (gate, condition, [pass, violation, insufficient, error, fired]) in &counts {
        let _ = writeln!(
            out,
            "| {} | {} | {pass} | {violation} | {insufficient} | {error} | {fired} |",
            cell(gate),
            code(condition)
        );
    }
    out.push('\n');
    for (number, at, text) in listed {
        let _ = writeln!(out, "- check {number}, {}: {text}", time(at));
    }
    if unlisted > 0 {
        let _ = writeln!(out, "- … and {unlisted} more that were not a pass");
    }
    out.push('\n');
}
