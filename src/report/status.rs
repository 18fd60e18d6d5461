//! Where a run stands (`ion-plan status`): stage, traffic, time in stage, the next action and
//! when, the last value of every condition against its threshold, streaks, pending decisions.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::gates::{Outcome as Judged, Streak};
use crate::engine::run::check_offsets;
use crate::engine::schedule::StartRule;
use crate::journal::inbox::{Entry, Request};
use crate::journal::state::RunState;
use crate::plan::model::Plan;
use crate::plan::units::format_duration;

#[derive(Debug, Serialize)]
pub struct Status {
    pub run_id: String,
    /// `running`, `waiting`, `in_progress`, or how it ended.
    pub state: String,
    pub reason: Option<String>,
    pub stage: Option<String>,
    pub traffic: Option<f64>,
    pub stage_started: Option<DateTime<Utc>>,
    pub time_in_stage: Option<String>,
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
}

#[derive(Debug, Serialize)]
pub struct ConditionStatus {
    pub gate: String,
    pub condition: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
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

/// The status of a run of `plan`, as of `now`.
#[expect(
    clippy::too_many_lines,
    reason = "one field after another of the status"
)]
pub fn build(plan: &Plan, run: &RunState, pending: &[Entry], now: DateTime<Utc>) -> Status {
    let defaults = plan.defaults.as_ref();
    let (state, reason) = match (&run.ended, &run.suspended, run.superseded) {
        (_, _, true) => ("superseded".to_owned(), None),
        (Some((outcome, reason)), _, _) => (outcome.as_str().to_owned(), reason.clone()),
        (None, Some((outcome, reason, _)), _) => {
            (outcome.as_str().to_owned(), Some(reason.clone()))
        }
        (None, None, false) => ("running".to_owned(), None),
    };
    let stage_model = run
        .stage
        .as_ref()
        .and_then(|p| plan.stages.iter().find(|s| s.name == p.name));
    let next = if run.ended.is_some() || run.superseded {
        None
    } else if let Some(rollback) = &run.rollback {
        Some(Next {
            action: format!("finish the rollback ({})", rollback.reason),
            at: None,
        })
    } else if let (Some(progress), Some(stage)) = (&run.stage, stage_model) {
        if let Some((_, reason)) = &progress.paused {
            Some(Next {
                action: format!(
                    "paused ({reason}): waiting for `ion-plan approve` or `ion-plan abort`"
                ),
                at: None,
            })
        } else if let Some((_, deadline)) = progress.approval {
            Some(Next {
                action: format!("waiting for approval of `{}`", stage.name),
                at: deadline,
            })
        } else {
            let done = progress.checks.last().map(|c| c.offset);
            let next_offset = check_offsets(stage, defaults)
                .into_iter()
                .find(|o| done.is_none_or(|d| o.as_secs_f64() > d + 1e-3));
            let bake_end = progress.started
                + chrono::Duration::from_std(stage.bake.as_duration()).unwrap_or_default();
            Some(match next_offset {
                Some(offset) => Next {
                    action: format!("check of `{}`", stage.name),
                    at: Some(
                        progress.started + chrono::Duration::from_std(offset).unwrap_or_default(),
                    ),
                },
                None => Next {
                    action: format!("end of `{}`'s bake: the `at: end` gates", stage.name),
                    at: Some(bake_end),
                },
            })
        }
    } else {
        plan.stages.get(run.stages_completed.len()).map(|stage| {
            let at = StartRule::new(plan.schedule.as_ref())
                .map(|r| r.next_start(now).0)
                .ok();
            Next {
                action: format!("start stage `{}` ({}% traffic)", stage.name, stage.traffic),
                at,
            }
        })
    };
    Status {
        run_id: run.run_id.clone(),
        state,
        reason,
        stage: run.stage.as_ref().map(|s| s.name.clone()),
        traffic: run.stage.as_ref().map(|s| s.traffic),
        stage_started: run.stage.as_ref().map(|s| s.started),
        time_in_stage: run
            .stage
            .as_ref()
            .map(|s| format_duration(round((now - s.started).to_std().unwrap_or_default()))),
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
                outcome: match &e.outcome {
                    Judged::Pass => "pass".to_owned(),
                    Judged::Violation => "violation".to_owned(),
                    Judged::Error(err) => format!("error: {err}"),
                },
                streak: e.streak,
                at: *at,
            })
            .collect(),
        approval: run.stage.as_ref().and_then(|p| {
            let paused = p.paused.as_ref().map(|(_, r)| r.clone());
            match (p.approval, &paused) {
                (Some((requested, deadline)), _) => Some(PendingApproval {
                    stage: p.name.clone(),
                    requested,
                    deadline,
                    paused,
                }),
                (None, Some(_)) => Some(PendingApproval {
                    stage: p.name.clone(),
                    requested: p.paused.as_ref().map_or(p.started, |(t, _)| *t),
                    deadline: None,
                    paused,
                }),
                (None, None) => None,
            }
        }),
        requests: pending
            .iter()
            .map(|e| PendingRequest {
                by: e.by.clone(),
                at: e.at,
                request: match &e.request {
                    Request::Approve { stage: Some(s) } => format!("approve `{s}`"),
                    Request::Approve { stage: None } => "approve".to_owned(),
                    Request::Abort { reason } => format!("abort: {reason}"),
                },
            })
            .collect(),
    }
}

fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
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
    if let (Some(stage), Some(traffic)) = (&status.stage, status.traffic) {
        let _ = writeln!(
            out,
            "stage {}: {traffic}% traffic, for {}",
            t(stage),
            status.time_in_stage.as_deref().unwrap_or("?")
        );
    }
    if !status.stages_completed.is_empty() {
        let _ = writeln!(out, "completed: {}", t(&status.stages_completed.join(", ")));
    }
    if let Some(next) = &status.next {
        match next.at {
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
            let value = c
                .value
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
            let threshold = c
                .threshold
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
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
