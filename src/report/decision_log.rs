//! The decision log of a run (`ion-plan report`): every sample, every evaluation, what fired and
//! why, who approved — as Markdown fit for a pull-request comment, or as JSON.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::evaluation::{Evaluation, Outcome as Judged, show};
use crate::event::{Event, Record};
use crate::journal::replay::Replay;
use crate::probe::{Reading, Sample};

#[derive(Debug, Serialize)]
pub struct Log {
    pub run_id: String,
    pub plan: String,
    pub digest: String,
    pub started: Option<DateTime<Utc>>,
    pub last_event: Option<DateTime<Utc>>,
    /// `completed`, `rolled_back`, … or `in_progress`/`waiting` while it goes on.
    pub outcome: String,
    pub reason: Option<String>,
    pub stages: Vec<StageLog>,
    pub preflight: Vec<CheckLog>,
    /// Gates that failed, and why.
    pub fired: Vec<Fired>,
    pub approvals: Vec<Approval>,
    pub aborts: Vec<Approval>,
    pub steps: Vec<StepLog>,
}

#[derive(Debug, Serialize)]
pub struct StageLog {
    pub name: String,
    pub traffic: f64,
    pub started: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    pub checks: Vec<CheckLog>,
}

#[derive(Debug, Serialize)]
pub struct CheckLog {
    pub number: u32,
    pub at: DateTime<Utc>,
    /// Seconds since the stage started.
    pub offset: f64,
    pub samples: Vec<Sample>,
    pub evaluations: Vec<Evaluation>,
}

#[derive(Debug, Serialize)]
pub struct Fired {
    pub at: DateTime<Utc>,
    pub stage: String,
    pub gate: String,
    pub action: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Approval {
    pub at: DateTime<Utc>,
    pub stage: Option<String>,
    pub by: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepLog {
    pub at: DateTime<Utc>,
    pub phase: String,
    pub stage: Option<String>,
    pub name: String,
    pub attempt: u32,
    pub ok: Option<bool>,
    pub detail: Option<String>,
}

/// Builds the log from a journal.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per event kind the log shows"
)]
pub fn build(replay: &Replay) -> Log {
    let mut log = Log {
        run_id: replay.header.run_id.clone(),
        plan: replay.header.plan.clone(),
        digest: replay.header.digest.clone(),
        started: None,
        last_event: replay.records.last().map(|r| r.at),
        outcome: "in_progress".to_owned(),
        reason: None,
        stages: Vec::new(),
        preflight: Vec::new(),
        fired: Vec::new(),
        approvals: Vec::new(),
        aborts: Vec::new(),
        steps: Vec::new(),
    };
    for Record { at, event, .. } in &replay.records {
        let at = *at;
        match event {
            Event::RunStarted { .. } => log.started = Some(at),
            Event::StageStarted { stage, traffic, .. } => {
                log.stages.push(StageLog {
                    name: stage.clone(),
                    traffic: *traffic,
                    started: at,
                    completed: None,
                    checks: Vec::new(),
                });
            }
            Event::StageCompleted { .. } => {
                if let Some(stage) = log.stages.last_mut() {
                    stage.completed = Some(at);
                }
            }
            Event::CheckStarted { number, offset, .. } => {
                if let Some(stage) = log.stages.last_mut() {
                    stage.checks.push(CheckLog {
                        number: *number,
                        at,
                        offset: *offset,
                        samples: Vec::new(),
                        evaluations: Vec::new(),
                    });
                }
            }
            Event::SampleTaken {
                sample,
                stage,
                check,
            } => {
                let list = if stage.is_some() {
                    log.stages.last_mut().map(|s| &mut s.checks)
                } else {
                    Some(&mut log.preflight)
                };
                if let Some(list) = list {
                    if list.last().is_none_or(|c| c.number != *check) {
                        list.push(CheckLog {
                            number: *check,
                            at,
                            offset: 0.0,
                            samples: Vec::new(),
                            evaluations: Vec::new(),
                        });
                    }
                    if let Some(last) = list.last_mut() {
                        last.samples.push(sample.clone());
                    }
                }
            }
            Event::Evaluated {
                evaluation, stage, ..
            } => {
                let list = if stage.is_some() {
                    log.stages.last_mut().map(|s| &mut s.checks)
                } else {
                    Some(&mut log.preflight)
                };
                if let Some(last) = list.and_then(|l| l.last_mut()) {
                    last.evaluations.push(evaluation.clone());
                }
            }
            Event::GateFailed {
                stage,
                gate,
                action,
                reason,
            } => log.fired.push(Fired {
                at,
                stage: stage.clone(),
                gate: gate.clone(),
                action: action.to_string(),
                reason: reason.clone(),
            }),
            Event::Approved { stage, by, .. } | Event::Resumed { stage, by, .. } => {
                log.approvals.push(Approval {
                    at,
                    stage: Some(stage.clone()),
                    by: by.clone(),
                    note: None,
                });
            }
            Event::AbortRequested { by, reason, .. } => log.aborts.push(Approval {
                at,
                stage: log.stages.last().map(|s| s.name.clone()),
                by: by.clone(),
                note: Some(reason.clone()),
            }),
            Event::StepStarted {
                phase,
                stage,
                name,
                attempt,
                ..
            } => log.steps.push(StepLog {
                at,
                phase: phase.to_string(),
                stage: stage.clone(),
                name: name.clone(),
                attempt: *attempt,
                ok: None,
                detail: None,
            }),
            Event::StepFinished { ok, detail, .. } => {
                if let Some(step) = log.steps.last_mut() {
                    step.ok = Some(*ok);
                    step.detail = Some(detail.clone());
                }
            }
            Event::RunEnded { outcome, reason } => {
                outcome.as_str().clone_into(&mut log.outcome);
                log.reason.clone_from(reason);
            }
            Event::Suspended {
                outcome, reason, ..
            } => {
                outcome.as_str().clone_into(&mut log.outcome);
                log.reason = Some(reason.clone());
            }
            Event::Superseded { by } => {
                "superseded".clone_into(&mut log.outcome);
                log.reason = Some(format!("replaced by run {by}"));
            }
            _ => {}
        }
    }
    log
}

fn reading(r: &Reading) -> String {
    match r {
        Reading::Value(v) => format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
        Reading::NoData => "no data".to_owned(),
        Reading::Error(e) => format!("error: {e}"),
    }
}

/// Outside text in the report: escaped for Markdown, on one line (see `report::escape`).
fn cell(text: &str) -> String {
    crate::report::escape::markdown(text)
}

/// The log as Markdown.
#[expect(
    clippy::too_many_lines,
    reason = "the report's sections in reading order"
)]
pub fn markdown(log: &Log) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Rollout report: `{}`\n", log.plan);
    let _ = writeln!(out, "- run: `{}`", log.run_id);
    let _ = writeln!(out, "- outcome: **{}**", log.outcome.replace('_', " "));
    if let Some(reason) = &log.reason {
        let _ = writeln!(out, "- why: {}", cell(reason));
    }
    if let (Some(start), Some(end)) = (log.started, log.last_event) {
        let _ = writeln!(
            out,
            "- from {} to {} ({})",
            start.format("%Y-%m-%d %H:%M:%SZ"),
            end.format("%Y-%m-%d %H:%M:%SZ"),
            crate::plan::units::format_duration((end - start).to_std().unwrap_or_default())
        );
    }
    let _ = writeln!(out, "- plan digest: `{}`\n", log.digest);
    if !log.fired.is_empty() {
        let _ = writeln!(
            out,
            "## What fired\n\n| time | stage | gate | action | why |\n|---|---|---|---|---|"
        );
        for f in &log.fired {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.at.format("%Y-%m-%d %H:%M:%SZ"),
                cell(&f.stage),
                cell(&f.gate),
                f.action,
                cell(&f.reason)
            );
        }
        out.push('\n');
    }
    if !log.approvals.is_empty() || !log.aborts.is_empty() {
        let _ = writeln!(
            out,
            "## People\n\n| time | stage | who | decision |\n|---|---|---|---|"
        );
        for a in &log.approvals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | approved |",
                a.at.format("%Y-%m-%d %H:%M:%SZ"),
                cell(a.stage.as_deref().unwrap_or("-")),
                cell(&a.by)
            );
        }
        for a in &log.aborts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | aborted: {} |",
                a.at.format("%Y-%m-%d %H:%M:%SZ"),
                cell(a.stage.as_deref().unwrap_or("-")),
                cell(&a.by),
                cell(a.note.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
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
            s.at.format("%Y-%m-%d %H:%M:%SZ"),
            cell(&place),
            cell(&s.name),
            s.attempt
        );
    }
    out.push('\n');
    let section = |out: &mut String, title: &str, checks: &[CheckLog]| {
        if checks.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### {title}\n\n| check | time | samples | evaluations |\n|---|---|---|---|"
        );
        for c in checks {
            let samples: Vec<String> = c
                .samples
                .iter()
                .map(|s| match &s.error {
                    Some(e) => format!("{}: error: {}", cell(&s.probe), cell(e)),
                    None => format!(
                        "{}: {}",
                        cell(&s.probe),
                        s.metrics
                            .iter()
                            .map(|(k, v)| format!("{}={}", cell(k), cell(&reading(v))))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
                .collect();
            let evaluations: Vec<String> = c
                .evaluations
                .iter()
                .map(|e| {
                    let mark = match (&e.outcome, e.fired) {
                        (_, true) => "✗ FIRED",
                        (Judged::Pass, _) => "✓",
                        (Judged::Violation, _) => "violation",
                        (Judged::Insufficient, _) => "insufficient",
                        (Judged::Error(_), _) => "error",
                    };
                    if e.compare.is_some() {
                        // "`canary` +12ms [+8ms, +16ms] vs `baseline`, 98%, …: higher".
                        return format!("{}: {} {mark}", cell(&e.gate), cell(&e.describe()));
                    }
                    let mut value = e
                        .value
                        .map_or_else(String::new, |v| format!(" = {}", show(v, e.unit())));
                    if let Some(evidence) = &e.evidence {
                        value = format!("{value} {}", cell(&evidence.describe(e.unit())));
                    }
                    let streak = if e.streak.needed > 1 {
                        format!(" ({}/{})", e.streak.count, e.streak.needed)
                    } else {
                        String::new()
                    };
                    // The condition is plan text, checked by its grammar: it reads as code.
                    format!(
                        "{}: `{}`{value} {mark}{streak}",
                        cell(&e.gate),
                        e.condition.replace('`', "'").replace('|', "\\|")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} (+{}) | {} | {} |",
                c.number,
                c.at.format("%Y-%m-%d %H:%M:%SZ"),
                crate::plan::units::format_duration(std::time::Duration::from_secs_f64(
                    c.offset.max(0.0)
                )),
                samples.join("; "),
                evaluations.join("; ")
            );
        }
        out.push('\n');
    };
    let _ = writeln!(out, "## Decision log\n");
    section(&mut out, "Preflight", &log.preflight);
    for stage in &log.stages {
        section(
            &mut out,
            &format!("Stage `{}` ({}% traffic)", stage.name, stage.traffic),
            &stage.checks,
        );
    }
    out
}
