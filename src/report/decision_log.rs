//! The decision log of a run (`ion-plan report`): every sample, every evaluation, what fired and
//! why, who approved — as Markdown fit for a pull-request comment, or as JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::evaluation::Evaluation;
use crate::event::{Event, Record};
use crate::journal::replay::Replay;
use crate::probe::Sample;
use crate::report::summary::Summary;

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
    /// What the run came to, as both report formats lead with it.
    pub summary: Summary,
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
        summary: crate::report::summary::summarize(replay),
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

/// The log as Markdown: the summary first, a table per gate, samples and evaluations collapsed
/// (`report::markdown`).
pub fn markdown(log: &Log) -> String {
    crate::report::markdown::render(log)
}
