//! The state of a run: the fold of its journal's events. What resume, `status` and `report`
//! start from.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::event::control::WaitFor;
use crate::event::{Evaluation, Event, Outcome, Phase, Record};
use crate::probe::Sample;

/// One step's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepStatus {
    pub name: String,
    pub command: String,
    pub started: Option<DateTime<Utc>>,
    /// `Some(true)` once an attempt succeeded.
    pub ok: Option<bool>,
    pub attempts: u32,
    pub skipped: bool,
    /// The process group of the newest attempt.
    pub group: Option<crate::process::GroupRecord>,
}

impl StepStatus {
    /// Done: succeeded or skipped.
    pub fn done(&self) -> bool {
        self.ok == Some(true) || self.skipped
    }

    /// Started and never finished: a crash interrupted it.
    pub fn interrupted(&self) -> bool {
        self.started.is_some() && self.ok.is_none() && !self.skipped
    }
}

/// One check of the current stage, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub number: u32,
    /// Seconds since the stage started.
    pub offset: f64,
    pub samples: HashMap<String, Sample>,
}

/// The stage in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StageProgress {
    pub index: usize,
    pub name: String,
    pub traffic: f64,
    pub started: DateTime<Utc>,
    pub steps: BTreeMap<usize, StepStatus>,
    pub checks: Vec<CheckRecord>,
    pub bake_ended: bool,
    /// When approval was asked for, and its deadline.
    pub approval: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Paused since, and why.
    pub paused: Option<(DateTime<Utc>, String)>,
    /// A person approved the stage.
    pub approved: bool,
    /// The sequence numbers of the events that opened its waits (`approval_requested`,
    /// the newest `paused`): requests name the wait they answer.
    pub approval_seq: u64,
    pub paused_seq: u64,
    /// The sequence number of its `stage_started`: a promotion names the bake it ends.
    pub started_seq: u64,
    /// The bake was extended for evidence, until then.
    pub extended_until: Option<DateTime<Utc>>,
    /// A person promoted the stage: its bake is over, whatever the clock says.
    pub promoted: bool,
    /// The gate whose failure paused the stage last: an `at: end` gate's pause comes after
    /// the bake, and its approval ends the bake.
    pub paused_by: Option<String>,
}

/// A rollback in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackProgress {
    pub reason: String,
    pub aborted: bool,
    pub steps: BTreeMap<usize, StepStatus>,
}

/// Everything the journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub run_id: String,
    pub plan: String,
    pub digest: String,
    pub started: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    /// Set when the run is over.
    pub ended: Option<(Outcome, Option<String>)>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The last suspension, while nothing happened since.
    pub suspended: Option<(Outcome, String, Option<DateTime<Utc>>)>,
    pub superseded: bool,
    pub preflight_passed: HashSet<String>,
    pub preflight_steps: BTreeMap<usize, StepStatus>,
    pub stages_completed: Vec<String>,
    pub stage: Option<StageProgress>,
    pub rollback: Option<RollbackProgress>,
    pub last_seq: u64,
    pub checks: u32,
    /// Control requests already taken (by id).
    pub taken: HashSet<String>,
    /// Abort requested (rolling back because of it).
    pub aborted: bool,
    /// The newest sample of each probe.
    pub samples: BTreeMap<String, (DateTime<Utc>, Sample)>,
    /// The newest evaluation of each condition, by (gate, condition).
    pub evaluations: BTreeMap<(String, String), (DateTime<Utc>, Evaluation)>,
    /// Approvals and who gave them.
    pub approvals: Vec<(String, String, DateTime<Utc>)>,
    /// The next stage waits for its window (or `not_before`) until then.
    pub next_start: Option<(String, DateTime<Utc>)>,
}

impl RunState {
    /// Whether the run can go on.
    pub fn unfinished(&self) -> bool {
        self.ended.is_none() && !self.superseded
    }

    /// Steps that started and never finished, wherever they are (preflight, stage, rollback).
    pub fn interrupted_steps(&self) -> impl Iterator<Item = (usize, &StepStatus)> {
        self.preflight_steps
            .iter()
            .chain(self.stage.iter().flat_map(|s| s.steps.iter()))
            .chain(self.rollback.iter().flat_map(|r| r.steps.iter()))
            .filter(|(_, step)| step.interrupted())
            .map(|(index, step)| (*index, step))
    }

    /// The stage that waits for a person now (an approval asked for and not given, or a
    /// pause), if the run is unfinished and not rolling back.
    pub fn waiting_for_person(&self) -> Option<&str> {
        self.current_wait().map(|w| w.stage)
    }

    /// What waits for a person now: a pause first (it holds the stage even while an approval
    /// is asked for), then an approval not given yet.
    pub fn current_wait(&self) -> Option<WaitFor<'_>> {
        if !self.unfinished() || self.rollback.is_some() || self.aborted {
            return None;
        }
        let stage = self.stage.as_ref()?;
        if stage.paused.is_some() {
            return Some(WaitFor {
                stage: &stage.name,
                paused: true,
                seq: stage.paused_seq,
            });
        }
        (stage.approval.is_some() && !stage.approved).then_some(WaitFor {
            stage: &stage.name,
            paused: false,
            seq: stage.approval_seq,
        })
    }

    /// The state after `records`, for the run named by the journal's header fields.
    pub fn fold<'a>(
        run_id: &str,
        plan: &str,
        digest: &str,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> RunState {
        let mut state = RunState {
            run_id: run_id.to_owned(),
            plan: plan.to_owned(),
            digest: digest.to_owned(),
            ..RunState::default()
        };
        for record in records {
            state.apply(record);
        }
        state
    }

    fn steps_for(&mut self, phase: Phase) -> Option<&mut BTreeMap<usize, StepStatus>> {
        match phase {
            Phase::Preflight => Some(&mut self.preflight_steps),
            Phase::Stage => self.stage.as_mut().map(|s| &mut s.steps),
            Phase::Rollback => self.rollback.as_mut().map(|r| &mut r.steps),
        }
    }

    /// Applies one event.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per event: the fold reads best in one place"
    )]
    pub fn apply(&mut self, record: &Record) {
        self.last_seq = record.seq;
        self.last_at = Some(record.at);
        if !matches!(record.event, Event::Suspended { .. }) {
            self.suspended = None;
        }
        match &record.event {
            Event::RunStarted { .. } => self.started = Some(record.at),
            Event::PreflightPassed { name } => {
                self.preflight_passed.insert(name.clone());
                self.preflight_steps.clear();
            }
            Event::StageWaiting { stage, until, .. } => {
                self.next_start = Some((stage.clone(), *until));
            }
            Event::StageStarted {
                stage,
                index,
                traffic,
            } => {
                self.next_start = None;
                self.stage = Some(StageProgress {
                    index: *index,
                    name: stage.clone(),
                    traffic: *traffic,
                    started: record.at,
                    steps: BTreeMap::new(),
                    checks: Vec::new(),
                    bake_ended: false,
                    approval: None,
                    paused: None,
                    approved: false,
                    approval_seq: 0,
                    paused_seq: 0,
                    started_seq: record.seq,
                    extended_until: None,
                    promoted: false,
                    paused_by: None,
                });
            }
            Event::StepStarted {
                phase,
                index,
                name,
                command,
                pgid,
                boot,
                group_start,
                ..
            } => {
                if let Some(steps) = self.steps_for(*phase) {
                    let step = steps.entry(*index).or_default();
                    step.name.clone_from(name);
                    step.command.clone_from(command);
                    step.group = pgid.map(|pgid| crate::process::GroupRecord {
                        pgid,
                        boot: boot.clone(),
                        start: *group_start,
                    });
                    step.started = Some(record.at);
                    step.ok = None;
                    step.attempts += 1;
                }
            }
            Event::StepFinished {
                phase, index, ok, ..
            } => {
                if let Some(step) = self.steps_for(*phase).and_then(|s| s.get_mut(index)) {
                    // A failed attempt is finished too: only success marks it done.
                    step.ok = Some(*ok);
                }
            }
            Event::StepSkipped {
                phase, index, name, ..
            } => {
                if let Some(steps) = self.steps_for(*phase) {
                    let step = steps.entry(*index).or_default();
                    step.name.clone_from(name);
                    step.skipped = true;
                }
            }
            Event::CheckStarted { number, offset, .. } => {
                self.checks = self.checks.max(*number);
                if let Some(stage) = &mut self.stage {
                    stage.checks.push(CheckRecord {
                        number: *number,
                        offset: *offset,
                        samples: HashMap::new(),
                    });
                }
            }
            Event::SampleTaken {
                check,
                sample,
                stage,
            } => {
                self.checks = self.checks.max(*check);
                self.samples
                    .insert(sample.probe.clone(), (record.at, sample.clone()));
                if let (Some(_), Some(progress)) = (stage, &mut self.stage)
                    && let Some(last) = progress.checks.last_mut()
                    && last.number == *check
                {
                    last.samples.insert(sample.probe.clone(), sample.clone());
                }
            }
            Event::Evaluated { evaluation, .. } => {
                self.evaluations.insert(
                    (evaluation.gate.clone(), evaluation.condition.clone()),
                    (record.at, evaluation.clone()),
                );
            }
            Event::BakeEnded { .. } => {
                if let Some(stage) = &mut self.stage {
                    stage.bake_ended = true;
                }
            }
            Event::BakeExtended { until, .. } => {
                if let Some(stage) = &mut self.stage {
                    stage.extended_until = Some(*until);
                }
            }
            Event::Promoted { request, .. } => {
                self.taken.extend(request.clone());
                if let Some(stage) = &mut self.stage {
                    stage.promoted = true;
                }
            }
            Event::GateFailed {
                gate,
                action: crate::plan::model::Action::Pause,
                ..
            } => {
                if let Some(stage) = &mut self.stage {
                    stage.paused_by = Some(gate.clone());
                }
            }
            Event::ApprovalRequested { deadline, .. } => {
                if let Some(stage) = &mut self.stage {
                    stage.approval = Some((record.at, *deadline));
                    stage.approval_seq = record.seq;
                }
            }
            Event::Approved { stage, by, request } => {
                self.approvals.push((stage.clone(), by.clone(), record.at));
                self.taken.extend(request.clone());
                if let Some(progress) = self.stage.as_mut().filter(|p| &p.name == stage) {
                    progress.approved = true;
                }
            }
            Event::Paused { reason, .. } => {
                if let Some(stage) = &mut self.stage {
                    stage.paused = Some((record.at, reason.clone()));
                    stage.paused_seq = record.seq;
                }
            }
            Event::Resumed { stage, by, request } => {
                self.approvals.push((stage.clone(), by.clone(), record.at));
                self.taken.extend(request.clone());
                if let Some(progress) = &mut self.stage {
                    progress.paused = None;
                }
            }
            Event::StageCompleted { stage } => {
                self.stages_completed.push(stage.clone());
                self.stage = None;
            }
            Event::AbortRequested { request, .. } => {
                self.aborted = true;
                self.taken.extend(request.clone());
            }
            Event::RollbackStarted { reason } => {
                self.rollback = Some(RollbackProgress {
                    reason: reason.clone(),
                    aborted: self.aborted,
                    steps: BTreeMap::new(),
                });
            }
            Event::Suspended {
                outcome,
                reason,
                next,
            } => {
                self.suspended = Some((*outcome, reason.clone(), *next));
            }
            Event::Superseded { .. } => self.superseded = true,
            Event::RunEnded { outcome, reason } => {
                if outcome.is_final() {
                    self.ended = Some((*outcome, reason.clone()));
                    self.ended_at = Some(record.at);
                }
            }
            Event::RunResumed { .. }
            | Event::EvidencePlanned { .. }
            | Event::PreflightFailed { .. }
            | Event::ChecksMissed { .. }
            | Event::StepStillRunning { .. }
            | Event::GatePlanned { .. }
            | Event::GateFailed { .. }
            | Event::ApprovalTimedOut { .. }
            | Event::RolledBack {}
            | Event::RollbackFailed { .. }
            | Event::NotifyFailed { .. } => {}
        }
    }
}
