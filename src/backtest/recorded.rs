//! What a run's records say, as a backtest reads them: the samples of each check, the
//! decisions taken on them, the answers people gave, and how the run ended. The journal of a
//! past run and the records of its re-judged run are read the same way, so they compare.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::evaluation::{self, Evaluation};
use crate::event::{Event, Outcome, Record};
use crate::plan::model::Action;
use crate::probe::Sample;

/// Where a check belongs: a stage by name, or preflight (`None`).
pub type StageKey = Option<String>;

/// One condition judged at one check, placed by stage and by the check's position in it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub stage: StageKey,
    /// 1-based position of the check within its stage (preflight: within preflight).
    pub check: usize,
    /// Seconds since the stage started, when the check said so.
    pub offset: Option<f64>,
    pub evaluation: Evaluation,
}

/// How a run ended, as the backtest compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// `completed`, `rolled_back`, `aborted`, `preflight_failed`, `failed`, `paused`
    /// (a gate paused it and nobody resumed), `waiting` (for an approval), `in_progress`,
    /// `incomplete` (the journal stops before any ending), or `undecided` (a backtest ran out
    /// of recorded samples).
    pub outcome: String,
    /// A gate's decision ended it (a rollback or a pause a gate took).
    pub by_gate: bool,
    /// The stage it ended in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Ending {
    /// The outcome as one word and, when known, where and why.
    pub fn describe(&self) -> String {
        let mut text = self.outcome.clone();
        if let Some(stage) = self
            .stage
            .as_ref()
            .filter(|_| !matches!(self.outcome.as_str(), "completed" | "undecided"))
        {
            text.push_str(" in `");
            text.push_str(stage);
            text.push('`');
        }
        if let Some(reason) = &self.reason {
            text.push_str(": ");
            text.push_str(reason);
        }
        text
    }
}

/// A run's records, sorted for a backtest.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Samples by stage and probe, in check order.
    pub samples: HashMap<(StageKey, String), Vec<Sample>>,
    /// Stages in the order they started.
    pub stages: Vec<String>,
    /// Each stage's checks: number and offset, in order.
    pub checks: HashMap<String, Vec<(u32, f64)>>,
    pub decisions: Vec<Decision>,
    /// For each stage, how long after each wait for a person (approval or pause) a person
    /// answered it, in order.
    pub answers: HashMap<String, VecDeque<Duration>>,
    /// The run ended `completed`.
    pub completed: bool,
}

impl Recorded {
    pub fn read(records: &[Record]) -> Recorded {
        let mut recorded = Recorded::default();
        let mut preflight_checks: HashMap<String, usize> = HashMap::new();
        let mut asked: HashMap<String, DateTime<Utc>> = HashMap::new();
        // Stages seen so far: a journal may name many, and a list search for each was quadratic.
        let mut started: HashSet<&str> = HashSet::new();
        // The newest check of each stage and number so far: its position (1-based) and offset.
        let mut newest: HashMap<(&str, u32), (usize, f64)> = HashMap::new();
        for record in records {
            match &record.event {
                Event::StageStarted { stage, .. } if started.insert(stage) => {
                    recorded.stages.push(stage.clone());
                }
                Event::CheckStarted {
                    stage,
                    number,
                    offset,
                    ..
                } => {
                    let checks = recorded.checks.entry(stage.clone()).or_default();
                    checks.push((*number, *offset));
                    newest.insert((stage, *number), (checks.len(), *offset));
                }
                Event::SampleTaken { stage, sample, .. } => recorded
                    .samples
                    .entry((stage.clone(), sample.probe.clone()))
                    .or_default()
                    .push(sample.clone()),
                Event::Evaluated {
                    stage,
                    check,
                    evaluation,
                } => {
                    let (check, offset) = if let Some(name) = stage {
                        // Looked up, not searched: a search for each was quadratic.
                        newest
                            .get(&(name.as_str(), *check))
                            .map_or((0, None), |(at, offset)| (*at, Some(*offset)))
                    } else {
                        let seen = preflight_checks.entry(evaluation.gate.clone()).or_default();
                        *seen += 1;
                        (*seen, None)
                    };
                    recorded.decisions.push(Decision {
                        stage: stage.clone(),
                        check,
                        offset,
                        evaluation: evaluation.clone(),
                    });
                }
                Event::ApprovalRequested { stage, .. } | Event::Paused { stage, .. } => {
                    asked.insert(stage.clone(), record.at);
                }
                Event::Approved { stage, .. } | Event::Resumed { stage, .. } => {
                    if let Some(at) = asked.remove(stage) {
                        let after = (record.at - at).to_std().unwrap_or_default();
                        recorded
                            .answers
                            .entry(stage.clone())
                            .or_default()
                            .push_back(after);
                    }
                }
                Event::RunEnded {
                    outcome: Outcome::Completed,
                    ..
                } => recorded.completed = true,
                _ => {}
            }
        }
        recorded
    }
}

/// How the records end: the outcome, and whether a gate's decision caused it.
pub fn ending(records: &[Record]) -> Ending {
    let mut stage = None;
    let mut gate_failed: Option<(Action, String)> = None;
    let mut paused = false;
    let mut suspended = None;
    for record in records {
        match &record.event {
            Event::StageStarted { stage: name, .. } => stage = Some(name.clone()),
            Event::GateFailed {
                action: action @ (Action::Rollback | Action::Pause),
                reason,
                ..
            } => gate_failed = Some((*action, reason.clone())),
            Event::Paused { .. } => paused = true,
            Event::Resumed { .. } => {
                paused = false;
                gate_failed = None;
            }
            Event::AbortRequested { .. } | Event::StepFinished { ok: false, .. } => {
                gate_failed = None;
            }
            Event::Suspended {
                outcome, reason, ..
            } => {
                suspended = Some((*outcome, reason.clone()));
            }
            Event::RunEnded { outcome, reason } => {
                // A failed rollback step does not change who decided to roll back.
                let by_gate = matches!(outcome, Outcome::RolledBack | Outcome::Failed)
                    && matches!(gate_failed, Some((Action::Rollback, _)));
                let reason = if by_gate {
                    gate_failed.map(|(_, why)| why)
                } else {
                    reason.clone()
                };
                return Ending {
                    outcome: outcome.as_str().to_owned(),
                    by_gate,
                    stage,
                    reason,
                };
            }
            _ => {}
        }
    }
    if paused && let Some((Action::Pause, why)) = gate_failed {
        return Ending {
            outcome: "paused".to_owned(),
            by_gate: true,
            stage,
            reason: Some(why),
        };
    }
    let (outcome, reason) = match suspended {
        Some((outcome, reason)) => (outcome.as_str().to_owned(), Some(reason)),
        None => ("incomplete".to_owned(), None),
    };
    Ending {
        outcome,
        by_gate: false,
        stage,
        reason,
    }
}

/// An evaluation's outcome as one word.
pub fn outcome_word(outcome: &evaluation::Outcome) -> &'static str {
    match outcome {
        evaluation::Outcome::Pass => "pass",
        evaluation::Outcome::Violation => "violation",
        evaluation::Outcome::Insufficient => "insufficient",
        evaluation::Outcome::Error(_) => "error",
    }
}
