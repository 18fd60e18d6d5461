//! Where a run stands (`ion-plan status`): stage, traffic, time in stage, the next action and
//! when, the last value of every condition against its threshold, streaks, pending decisions.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::gates::{Outcome as Judged, Streak};
use crate::engine::schedule::StartRule;
use crate::engine::timeline;
use crate::event::Outcome;
use crate::event::evaluation::show;
use crate::event::state::RunState;
use crate::journal::inbox::{Entry, Request};
use crate::plan::model::Plan;
use crate::plan::units::format_duration;

#[derive(Debug, Serialize)]
pub struct Status {
    pub run_id: String,
    /// `running` (a runner holds the plan), `interrupted` (unfinished, no runner), `waiting`,
    /// `in_progress` (`--once` stopped), `superseded`, or how it ended.
    pub state: String,
    pub reason: Option<String>,
    /// Who runs it now (the lock's holder), if anyone.
    pub runner: Option<String>,
    /// The stage in progress; for an ended run, the stage it was in when it ended.
    pub stage: Option<String>,
    /// The canary's traffic share now, as far as the journal knows: the stage's while it runs,
    /// 0 after a rollback or a failed preflight, unknown (`null`) while rolling back or after a
    /// failed rollback.
    pub traffic: Option<f64>,
    pub stage_started: Option<DateTime<Utc>>,
    /// Only while the run is unfinished.
    pub time_in_stage: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stages_completed: Vec<String>,
    pub next: Option<Next>,
    pub conditions: Vec<ConditionStatus>,
    pub approval: Option<PendingApproval>,
    pub requests: Vec<PendingRequest>,
}

#[derive(Debug, Serialize)]
pub struct Next {
    pub action: String,
    pub at: Option<DateTime<Utc>>,
    /// Its time has passed and no runner runs the plan: it happens when `run` runs again.
    pub overdue: bool,
}

#[derive(Debug, Serialize)]
pub struct ConditionStatus {
    pub gate: String,
    pub condition: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// The unit values are shown in (the JSON keeps base units).
    #[serde(skip)]
    pub unit: crate::plan::units::LiteralUnit,
    pub outcome: String,
    pub streak: Streak,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct PendingApproval {
    pub stage: String,
    pub requested: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    pub paused: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PendingRequest {
    pub by: String,
    pub at: DateTime<Utc>,
    pub request: String,
}

/// Where the run stands and why, from its journal and whether a runner holds the plan.
fn state_of(run: &RunState, runner: Option<&String>) -> (String, Option<String>) {
    match (&run.ended, &run.suspended, run.superseded) {
        (_, _, true) => ("superseded".to_owned(), None),
        (Some((outcome, reason)), _, _) => (outcome.as_str().to_owned(), reason.clone()),
        (None, _, false) if runner.is_some() => ("running".to_owned(), None),
        (None, Some((outcome, reason, _)), false) => {
            (outcome.as_str().to_owned(), Some(reason.clone()))
        }
        (None, None, false) => (
            "interrupted".to_owned(),
            Some(
                "no runner is running it: it stopped without ending (a crash, Ctrl-C, a lost machine); `ion-plan run` resumes it"
                    .to_owned(),
            ),
        ),
    }
}

/// The canary's traffic share as far as the journal knows.
fn traffic_of(plan: &Plan, run: &RunState) -> Option<f64> {
    match &run.ended {
        Some((Outcome::Completed, _)) => plan.stages.last().map(|s| s.traffic),
        Some((Outcome::RolledBack | Outcome::Aborted | Outcome::PreflightFailed, _)) => Some(0.0),
        Some(_) => None,
        None if run.rollback.is_some() => None,
        None => Some(run.stage.as_ref().map_or_else(
            || {
                run.stages_completed
                    .last()
                    .and_then(|name| plan.stages.iter().find(|s| &s.name == name))
                    .map_or(0.0, |s| s.traffic)
            },
            |s| s.traffic,
        )),
    }
}

/// What the run does next, and when.
fn next_of(
    plan: &Plan,
    run: &RunState,
    now: DateTime<Utc>,
) -> Option<(String, Option<DateTime<Utc>>)> {
    let defaults = plan.defaults.as_ref();
    if !run.unfinished() {
        return None;
    }
    if let Some(rollback) = &run.rollback {
        return Some((format!("finish the rollback ({})", rollback.reason), None));
    }
    let stage_model = run
        .stage
        .as_ref()
        .and_then(|p| plan.stages.iter().find(|s| s.name == p.name));
    if let (Some(progress), Some(stage)) = (&run.stage, stage_model) {
        if let Some((_, reason)) = &progress.paused {
            return Some((
                format!("paused ({reason}): waiting for `ion-plan approve` or `ion-plan abort`"),
                None,
            ));
        }
        if let Some((_, deadline)) = progress.approval {
            return Some((
                format!("waiting for approval of `{}`", stage.name),
                deadline,
            ));
        }
        let done = progress.checks.last().map(|c| c.offset);
        let at =
            |offset: std::time::Duration| crate::engine::clock::after(progress.started, offset);
        if let Some(until) = progress.extended_until.filter(|_| !progress.bake_ended) {
            return Some((
                format!(
                    "extended: waiting for evidence ({}) until {}",
                    evidence_of(plan, run),
                    until.format("%Y-%m-%d %H:%M:%SZ")
                ),
                Some(until),
            ));
        }
        return Some(match timeline::next_check(stage, defaults, done) {
            Some(offset) => (format!("check of `{}`", stage.name), Some(at(offset))),
            None => (
                format!("end of `{}`'s bake: the `at: end` gates", stage.name),
                Some(at(stage.bake.as_duration())),
            ),
        });
    }
    plan.stages.get(run.stages_completed.len()).map(|stage| {
        let at = StartRule::new(plan.schedule.as_ref())
            .map(|r| r.next_start(now).0)
            .ok();
        (
            format!("start stage `{}` ({}% traffic)", stage.name, stage.traffic),
            at,
        )
    })
}

/// How far each end condition short of evidence is: "`load.canary.error_rate <= 0.5%`: 700
/// of 765 requests".
fn evidence_of(plan: &Plan, run: &RunState) -> String {
    let parts: Vec<String> = run
        .evaluations
        .values()
        .filter(|(_, e)| e.outcome == Judged::Insufficient)
        .filter_map(|(_, e)| {
            if let Some(comparison) = &e.compare {
                let needed = compare_min_points(plan, &e.gate, &e.condition)
                    .map_or_else(String::new, |n| format!(" of {n}"));
                return Some(format!(
                    "`{}`: {}/{} values{needed}",
                    e.condition, comparison.nx, comparison.ny
                ));
            }
            let evidence = e.evidence?;
            let needed = needed_for(plan, &e.gate, &e.condition, evidence.confidence)
                .map(|(needed, unit)| match needed {
                    crate::stats::Needed::Count(n) => format!(" of {n} {unit}"),
                    crate::stats::Needed::Never => " (no amount will do)".to_owned(),
                })
                .unwrap_or_default();
            Some(format!("`{}`: {}{needed}", e.condition, evidence.n))
        })
        .collect();
    if parts.is_empty() {
        "no insufficient condition recorded yet".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The values each side of a gate's `compare:` entry needs (its label, "CANARY vs BASELINE").
fn compare_min_points(plan: &Plan, gate: &str, label: &str) -> Option<u32> {
    let gate = plan.gates.get(gate)?;
    let entry = gate.compare.iter().find(|c| c.label() == label)?;
    Some(crate::engine::compare::CompiledCompare::compile(entry, Some(plan)).min_points)
}

/// What a gate's condition needs before it can pass, with no errors, and in what.
fn needed_for(
    plan: &Plan,
    gate: &str,
    check: &str,
    confidence: f64,
) -> Option<(crate::stats::Needed, &'static str)> {
    use crate::plan::evidence::IntervalKind;
    let condition = plan
        .gates
        .get(gate)?
        .require
        .iter()
        .find(|c| c.check() == check)?;
    let expr = crate::plan::expr::parse(check).ok()?;
    let crate::plan::expr::Rhs::Quantity { value, .. } = expr.rhs else {
        return None;
    };
    Some(
        match crate::plan::evidence::interval_kind(plan, condition)? {
            IntervalKind::Wilson { .. } => (
                crate::stats::ratio_needed(expr.op, value, confidence),
                "requests",
            ),
            IntervalKind::Percentile { p } => (
                crate::stats::percentile_needed(expr.op, p, confidence),
                "latencies",
            ),
        },
    )
}

/// The status of a run of `plan`, as of `now`; `runner`: who holds the plan's lock, if anyone.
pub fn build(
    plan: &Plan,
    run: &RunState,
    pending: &[Entry],
    runner: Option<String>,
    now: DateTime<Utc>,
) -> Status {
    let (state, reason) = state_of(run, runner.as_ref());
    let unfinished = run.unfinished();
    let next = next_of(plan, run, now).map(|(action, at)| Next {
        overdue: runner.is_none() && at.is_some_and(|t| t < now),
        action,
        at,
    });
    let waiting = run.waiting_for_person();
    Status {
        run_id: run.run_id.clone(),
        state,
        reason,
        runner,
        stage: run.stage.as_ref().map(|s| s.name.clone()),
        traffic: traffic_of(plan, run),
        stage_started: run.stage.as_ref().map(|s| s.started),
        time_in_stage: run
            .stage
            .as_ref()
            .filter(|_| unfinished)
            .map(|s| format_duration(round((now - s.started).to_std().unwrap_or_default()))),
        ended_at: run.ended_at,
        stages_completed: run.stages_completed.clone(),
        next,
        conditions: run
            .evaluations
            .values()
            .map(|(at, e)| ConditionStatus {
                gate: e.gate.clone(),
                condition: e.condition.clone(),
                value: e.value,
                threshold: e.threshold,
                unit: e.unit(),
                outcome: match &e.outcome {
                    Judged::Pass => "pass".to_owned(),
                    Judged::Violation => "violation".to_owned(),
                    Judged::Insufficient => "insufficient".to_owned(),
                    Judged::Error(err) => format!("error: {err}"),
                },
                streak: e.streak,
                at: *at,
            })
            .collect(),
        approval: run
            .stage
            .as_ref()
            .filter(|p| waiting == Some(p.name.as_str()))
            .map(|p| PendingApproval {
                stage: p.name.clone(),
                requested: p
                    .paused
                    .as_ref()
                    .map(|(t, _)| *t)
                    .or(p.approval.map(|(t, _)| t))
                    .unwrap_or(p.started),
                deadline: p.approval.and_then(|(_, d)| d),
                paused: p.paused.as_ref().map(|(_, r)| r.clone()),
            }),
        requests: pending
            .iter()
            // A promotion of a bake that is over, or that a pause interrupted, is never taken.
            .filter(|e| match &e.request {
                Request::Promote { stage, bake, .. } => run.stage.as_ref().is_some_and(|p| {
                    &p.name == stage && *bake == p.started_seq.max(p.paused_seq) && !p.bake_ended
                }),
                _ => true,
            })
            .map(|e| PendingRequest {
                by: e.by.clone(),
                at: e.at,
                request: match &e.request {
                    Request::Approve {
                        stage: Some(s),
                        ahead: true,
                        ..
                    } => format!("approve `{s}` when it asks"),
                    Request::Approve { stage: Some(s), .. } => format!("approve `{s}`"),
                    Request::Approve { stage: None, .. } => "approve".to_owned(),
                    Request::Abort { reason } => format!("abort: {reason}"),
                    Request::Promote { stage, reason, .. } => {
                        format!("promote `{stage}`: {reason}")
                    }
                },
            })
            .collect(),
    }
}

fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

/// Where traffic stands: the stage and how long it has run, or, once the run is over, when it
/// ended and where traffic was left.
fn stage_lines(out: &mut String, status: &Status) {
    match (&status.stage, status.traffic, &status.time_in_stage) {
        (Some(stage), Some(traffic), Some(time)) => {
            let stage = crate::report::escape::terminal(stage);
            let _ = writeln!(out, "stage {stage}: {traffic}% traffic, for {time}");
        }
        (stage, traffic, _) => {
            if let Some(ended) = status.ended_at {
                let _ = writeln!(out, "ended at {}", ended.format("%Y-%m-%d %H:%M:%SZ"));
            }
            let traffic = traffic.map_or_else(
                || "unknown (a rollback is under way or failed: check by hand)".to_owned(),
                |t| format!("{t}%"),
            );
            match stage {
                Some(stage) => {
                    let _ = writeln!(
                        out,
                        "traffic: {traffic} (last stage: {})",
                        crate::report::escape::terminal(stage)
                    );
                }
                None => {
                    let _ = writeln!(out, "traffic: {traffic}");
                }
            }
        }
    }
}

/// The status for people.
pub fn text(status: &Status) -> String {
    // Outside text (probe errors, reasons, names) on one line, without control characters.
    let t = crate::report::escape::terminal;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}: {}",
        t(&status.run_id),
        status.state.replace('_', " ")
    );
    if let Some(reason) = &status.reason {
        let _ = writeln!(out, "  {}", t(reason));
    }
    if let Some(runner) = &status.runner {
        let _ = writeln!(out, "runner: {}", crate::report::escape::terminal(runner));
    }
    stage_lines(&mut out, status);
    if !status.stages_completed.is_empty() {
        let _ = writeln!(out, "completed: {}", t(&status.stages_completed.join(", ")));
    }
    if let Some(next) = &status.next {
        match next.at {
            Some(at) if next.overdue => {
                let _ = writeln!(
                    out,
                    "next: {} was due at {} (overdue: it happens when `ion-plan run` runs again)",
                    next.action,
                    at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
            Some(at) => {
                let _ = writeln!(
                    out,
                    "next: {} at {}",
                    t(&next.action),
                    at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
            None => {
                let _ = writeln!(out, "next: {}", t(&next.action));
            }
        }
    }
    if let Some(approval) = &status.approval {
        let deadline = approval.deadline.map_or_else(
            || "no deadline".to_owned(),
            |d| format!("deadline {}", d.format("%Y-%m-%d %H:%M:%SZ")),
        );
        let _ = writeln!(
            out,
            "waiting for a person on {} since {} ({deadline})",
            t(&approval.stage),
            approval.requested.format("%Y-%m-%d %H:%M:%SZ")
        );
    }
    for request in &status.requests {
        let _ = writeln!(
            out,
            "pending request: {} by {} at {}",
            t(&request.request),
            t(&request.by),
            request.at.format("%Y-%m-%d %H:%M:%SZ")
        );
    }
    if !status.conditions.is_empty() {
        let _ = writeln!(out, "last evaluation of each condition:");
        for c in &status.conditions {
            let value = c.value.map_or_else(|| "-".to_owned(), |v| show(v, c.unit));
            let threshold = c
                .threshold
                .map_or_else(|| "-".to_owned(), |v| show(v, c.unit));
            let streak = if c.streak.needed > 1 {
                format!(" streak {}/{}", c.streak.count, c.streak.needed)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<8} {:<45} value {value:<10} threshold {threshold:<10} {}{streak}",
                t(&c.gate),
                t(&c.condition),
                t(&c.outcome)
            );
        }
    }
    out
}
