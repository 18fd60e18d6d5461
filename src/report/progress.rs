//! Progress of a run: one plain line per event (good in CI logs), or NDJSON with `--json`.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::event::Sink;
use crate::event::evaluation::{Outcome as Judged, show};
use crate::event::{Event, Phase, Record};
use crate::plan::model::Plan;
use crate::plan::units::{LiteralUnit, format_duration};
use crate::report::metric_view::MetricView;

/// How progress is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Json,
}

/// Prints each event as it happens.
pub struct Progress<W: Write + Send> {
    out: W,
    style: Style,
    start: Option<DateTime<Utc>>,
    view: MetricView,
}

impl<W: Write + Send> Progress<W> {
    pub fn new(out: W, style: Style) -> Self {
        Progress {
            out,
            style,
            start: None,
            view: MetricView::default(),
        }
    }

    /// Sample lines show what the plan's gates read, in their units.
    #[must_use]
    pub fn with_plan(mut self, plan: &Plan) -> Self {
        self.view = MetricView::of(plan);
        self
    }
}

impl<W: Write + Send> Sink for Progress<W> {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let result = match self.style {
            Style::Json => serde_json::to_writer(&mut self.out, record)
                .map_err(std::io::Error::other)
                .and_then(|()| self.out.write_all(b"\n")),
            Style::Plain => {
                let start = *self.start.get_or_insert(record.at);
                let since = (record.at - start).to_std().unwrap_or_default();
                // Outside text in the event (probe errors, output) is escaped: one line, no
                // control characters, no workflow command.
                let line = describe_with(
                    &crate::report::escape::terminal_record(record).event,
                    &self.view,
                );
                writeln!(
                    self.out,
                    "{} {:>8}  {line}",
                    record.at.format("%Y-%m-%d %H:%M:%SZ"),
                    format!("+{}", format_duration(round_seconds(since)))
                )
            }
        };
        // Progress is for people; a closed pipe must not stop the rollout.
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

fn round_seconds(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

/// One event as a line for people, every metric of a sample shown.
pub fn describe(event: &Event) -> String {
    describe_with(event, &MetricView::default())
}

/// One event as a line for people; a sample shows the metrics `view` picks, in their units.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per event: a table reads best in one place"
)]
pub fn describe_with(event: &Event, view: &MetricView) -> String {
    match event {
        Event::RunStarted {
            run_id,
            plan,
            mode,
            stages,
            ..
        } => format!(
            "run {run_id} of {plan} started ({}, {stages} stages)",
            match mode {
                crate::event::Mode::Live => "live",
                crate::event::Mode::DryRun => "dry run",
                crate::event::Mode::Scenario => "scenario",
            }
        ),
        Event::PreflightPassed { name } => format!("preflight `{name}`: passed"),
        Event::PreflightFailed { name, reason } => format!("preflight `{name}`: FAILED: {reason}"),
        Event::StageWaiting {
            stage,
            until,
            reason,
        } => format!(
            "{stage}: waiting until {} ({reason})",
            until.format("%Y-%m-%d %H:%M:%SZ")
        ),
        Event::StageStarted { stage, traffic, .. } => {
            format!(
                "{stage}: stage started, {}% traffic",
                show(*traffic, LiteralUnit::Plain)
            )
        }
        Event::StepStarted {
            phase,
            stage,
            index,
            command,
            attempt,
            name,
            ..
        } => {
            let place = match phase {
                Phase::Preflight => "preflight".to_owned(),
                Phase::Stage => stage.clone().unwrap_or_default(),
                Phase::Rollback => "rollback".to_owned(),
            };
            let retry = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let label = if name == command {
                String::new()
            } else {
                format!("{name}: ")
            };
            format!("{place}: step {}{retry}: {label}{command}", index + 1)
        }
        Event::StepFinished {
            ok, detail, index, ..
        } => {
            format!(
                "  step {} {}: {detail}",
                index + 1,
                if *ok { "ok" } else { "FAILED" }
            )
        }
        Event::CheckStarted {
            stage,
            number,
            offset,
            probes,
        } => format!(
            "{stage}: check {number} at +{}: {}",
            format_duration(
                std::time::Duration::from_secs_f64(offset.max(0.0))
                    .min(std::time::Duration::from_secs(u64::MAX / 4))
            ),
            probes.join(", ")
        ),
        Event::SampleTaken { sample, stage, .. } => match &sample.error {
            Some(error) => format!("  {}: ERROR {error}", sample.probe),
            None if sample.metrics.is_empty() => format!("  {}: no data", sample.probe),
            None => format!(
                "  {}: {}",
                sample.probe,
                view.line(stage.as_deref(), sample)
            ),
        },
        Event::Evaluated { evaluation, .. } => {
            let mark = match (&evaluation.outcome, evaluation.fired) {
                (_, true) => "✗",
                (Judged::Pass, _) => "✓",
                (Judged::Violation, _) => "!",
                (Judged::Insufficient, _) => "~",
                (Judged::Error(_), _) => "?",
            };
            format!("  {mark} {}: {}", evaluation.gate, evaluation.describe())
        }
        Event::GatePlanned {
            gate, conditions, ..
        } if conditions.is_empty() => format!("  {gate}: the probe must answer"),
        Event::GatePlanned {
            gate, conditions, ..
        } => {
            format!("  gate {gate}: {}", conditions.join("; "))
        }
        Event::GateFailed {
            gate,
            action,
            reason,
            ..
        } => format!("GATE {gate} FAILED → {action}: {reason}"),
        Event::ApprovalRequested { stage, deadline } => match deadline {
            Some(d) => format!(
                "{stage}: waiting for approval until {}",
                d.format("%Y-%m-%d %H:%M:%SZ")
            ),
            None => format!("{stage}: waiting for approval"),
        },
        Event::Approved { stage, by, .. } => format!("{stage}: approved by {by}"),
        Event::ApprovalTimedOut { stage, action } => {
            format!("{stage}: approval timed out → {action}")
        }
        Event::Paused { stage, reason } => format!("{stage}: PAUSED: {reason}"),
        Event::Resumed { stage, by, .. } => format!("{stage}: resumed by {by}"),
        Event::StageCompleted { stage } => format!("{stage}: stage completed"),
        Event::AbortRequested { by, reason, .. } => format!("ABORT by {by}: {reason}"),
        Event::RollbackStarted { reason } => format!("ROLLBACK: {reason}"),
        Event::RolledBack {} => "rolled back".to_owned(),
        Event::RollbackFailed { reason, left_to_do } => format!(
            "ROLLBACK FAILED: {reason}\n  left to do by hand:\n{}",
            left_to_do
                .iter()
                .map(|s| format!("    - {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Event::NotifyFailed { url, event, reason } => {
            format!("notification {event} to {url} failed: {reason}")
        }
        Event::RunResumed { run_id } => format!("run {run_id} resumed"),
        Event::Suspended {
            outcome,
            reason,
            next,
        } => match next {
            Some(next) => format!(
                "run suspended ({}): {reason}; next at {}",
                outcome.as_str(),
                next.format("%Y-%m-%d %H:%M:%SZ")
            ),
            None => format!("run suspended ({}): {reason}", outcome.as_str()),
        },
        Event::Superseded { by } => format!("run superseded by {by}"),
        Event::ChecksMissed {
            stage,
            count,
            first,
            last,
        } => format!(
            "{stage}: {count} check{} missed while no runner ran (not back-filled), due from {} to {} into the stage",
            if *count == 1 { "" } else { "s" },
            format_duration(Duration::from_secs_f64(first.max(0.0))),
            format_duration(Duration::from_secs_f64(last.max(0.0))),
        ),
        Event::StepStillRunning { index, pgid, .. } => format!(
            "  step {}: its process group {pgid} from the interrupted run still runs; waiting for it to end",
            index + 1
        ),
        Event::StepSkipped { name, index, .. } => {
            format!("  step {} skipped by the operator: {name}", index + 1)
        }
        Event::BakeEnded {
            stage,
            early: false,
        } => {
            format!("{stage}: bake over, end gates passed")
        }
        Event::BakeEnded { stage, early: true } => {
            format!("{stage}: bake ended early, end gates passed")
        }
        Event::BakeExtended {
            stage,
            until,
            reason,
        } => format!(
            "{stage}: extended until {}: waiting for evidence ({reason})",
            until.format("%Y-%m-%d %H:%M:%SZ")
        ),
        Event::Promoted {
            stage, by, reason, ..
        } => format!("{stage}: promoted by {by}: {reason}; the end gates judge what the stage has"),
        Event::EvidencePlanned {
            gate,
            condition,
            needed,
            gathered,
            per_check,
            checks,
            extension_checks,
            unit,
            ..
        } => evidence_line(
            gate,
            condition,
            *needed,
            *gathered,
            (*per_check, *checks, *extension_checks),
            unit,
        ),
        Event::RunEnded { outcome, reason } => match reason {
            Some(reason) => format!("run ended: {}: {reason}", outcome.as_str()),
            None => format!("run ended: {}", outcome.as_str()),
        },
    }
}

/// A dry run's evidence line: "evidence go `load.canary.error_rate <= 0.5%`: needs 765
/// requests, the stage gathers 600 (12 checks × 50) — short; `insufficient.extend` adds up to
/// 6 checks".
fn evidence_line(
    gate: &str,
    condition: &str,
    needed: Option<u64>,
    gathered: u64,
    (per_check, checks, extension_checks): (u64, u64, u64),
    unit: &str,
) -> String {
    let needs = needed.map_or_else(
        || "can never pass".to_owned(),
        |n| format!("needs {n} {unit}"),
    );
    let source = if checks == 1 {
        format!("one check gathers {gathered}")
    } else {
        format!("the stage gathers {gathered} ({checks} checks × {per_check})")
    };
    let verdict = match needed {
        Some(n) if n <= gathered => "enough".to_owned(),
        Some(n) if extension_checks > 0 => {
            let with = gathered.saturating_add(per_check.saturating_mul(extension_checks));
            if n <= with {
                format!("short; the extension ({extension_checks} more checks) can reach it")
            } else {
                format!("short, even with the extension's {extension_checks} more checks")
            }
        }
        _ => "short".to_owned(),
    };
    format!("  evidence {gate} `{condition}`: {needs}, {source}: {verdict}")
}
