//! The run loop: preflight, then stage after stage — wait for the window, run the steps, check on
//! time, judge gates, wait for a person — and rollback on a NO-GO.
//!
//! Every part of the run returns [`Go`]: `Ok` goes on, `Err(Halt)` stops the run going forward
//! (suspend, roll back, end, or a fatal error), so `?` carries a stop up to [`Engine::run`].
//! A stage ([`stage`]), the end of its bake ([`end`]: end gates, extension, early end,
//! promotion), waits for a person ([`person`]) and the steps ([`steps`]) live in their own
//! files; fresh and resumed runs share one path, a resumed stage starting from the
//! [`stage::Cursor`] its journal gives.

mod end;
mod person;
mod stage;
mod steps;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::clock::Clock;
use crate::engine::gates::{CompiledGate, Streaks};
use crate::engine::pool::Pool;
use crate::engine::schedule::StartRule;
use crate::engine::{Control, ControlSource, Sampler, Sink, StepRunner};
use crate::event::state::RunState;
use crate::event::{Event, Mode, Outcome, Record};
use crate::plan::model::Plan;
use crate::probe::Sample;

/// A fatal problem: the run cannot go on (the journal cannot be written, the plan does not
/// compile). Probe failures and failed steps are not errors: they are events.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EngineError {
    #[error("failed to write an event")]
    #[diagnostic(
        code(journal),
        help("check the state folder's disk space and permissions")
    )]
    Sink(#[source] std::io::Error),
    #[error("the plan cannot run: {0}")]
    #[diagnostic(code(plan))]
    Plan(String),
    /// The run cannot go on without a person's decision about its state.
    #[error("{0}")]
    #[diagnostic(code(state))]
    Conflict(String),
}

/// Why the run stops going forward: the error side of every part of the run loop.
#[derive(Debug)]
enum Halt {
    /// Stop without ending: `--once` is done for now, or nobody can answer a person's wait.
    Suspend {
        outcome: Outcome,
        reason: String,
        next: Option<DateTime<Utc>>,
    },
    /// Run the rollback steps; the run ends with `outcome` if they succeed.
    Rollback { reason: String, outcome: Outcome },
    /// The run ends here.
    End { outcome: Outcome, reason: String },
    /// The run cannot go on at all.
    Fatal(EngineError),
}

impl From<EngineError> for Halt {
    fn from(error: EngineError) -> Halt {
        Halt::Fatal(error)
    }
}

/// What a part of the run gives: go on (with a value), or a [`Halt`].
type Go<T = ()> = Result<T, Halt>;

/// The identity of a run, and how it executes.
pub struct RunInfo {
    pub run_id: String,
    pub plan_path: String,
    pub digest: String,
    pub mode: Mode,
}

/// How a run goes on from where its journal stopped, and what the operator decided.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Do what is due now and stop (exit 5 while more is due later).
    pub once: bool,
    /// Run an interrupted non-idempotent step again.
    pub retry_step: bool,
    /// Skip an interrupted non-idempotent step (it ran, or must not run).
    pub skip_step: bool,
}

/// What the engine works with.
pub struct Parts {
    pub clock: Arc<dyn Clock>,
    pub sampler: Arc<dyn Sampler>,
    pub steps: Arc<dyn StepRunner>,
    pub control: Box<dyn ControlSource>,
    pub sinks: Vec<Box<dyn Sink>>,
}

/// One run of a plan.
pub struct Engine<'p> {
    plan: &'p Plan,
    info: RunInfo,
    gates: IndexMap<String, CompiledGate>,
    start_rule: StartRule,
    parts: Parts,
    seq: u64,
    streaks: Streaks,
    /// The newest sample of each probe in the current stage (for `at: end` gates).
    newest: HashMap<String, Sample>,
    /// The current stage's samples pooled (for `at: end` conditions with `confidence`).
    pool: Pool,
    /// The journal sequence number a promotion of the current bake names: the stage's
    /// `stage_started`, or its newest `paused`.
    stage_seq: u64,
    checks: u32,
    /// When the current stage's last check ran (its journal says, on resume).
    last_check: Option<DateTime<Utc>>,
    options: Options,
    /// The journal's state when this runner took the run up.
    resume: Option<RunState>,
}

impl<'p> Engine<'p> {
    pub fn new(plan: &'p Plan, info: RunInfo, parts: Parts) -> Result<Engine<'p>, EngineError> {
        Engine::resume(plan, info, parts, None, Options::default())
    }

    /// An engine that takes up `resume` (a journal's state), or starts afresh without one.
    pub fn resume(
        plan: &'p Plan,
        info: RunInfo,
        parts: Parts,
        resume: Option<RunState>,
        options: Options,
    ) -> Result<Engine<'p>, EngineError> {
        let gates = plan
            .gates
            .iter()
            .map(|(name, gate)| {
                CompiledGate::compile(name, gate, Some(plan)).map(|g| (name.clone(), g))
            })
            .collect::<Result<_, _>>()
            .map_err(EngineError::Plan)?;
        let start_rule = StartRule::new(plan.schedule.as_ref()).map_err(EngineError::Plan)?;
        Ok(Engine {
            plan,
            info,
            gates,
            start_rule,
            parts,
            seq: resume.as_ref().map_or(0, |r| r.last_seq),
            streaks: Streaks::default(),
            newest: HashMap::new(),
            pool: Pool::default(),
            stage_seq: 0,
            last_check: None,
            checks: resume.as_ref().map_or(0, |r| r.checks),
            options,
            resume,
        })
    }

    /// Runs the plan to its end, or to a point where it must wait for a person nobody can be,
    /// or (with `--once`) until nothing more is due now.
    pub async fn run(mut self) -> Result<Outcome, EngineError> {
        let resume = self.resume.take();
        if resume.is_some() {
            self.emit(Event::RunResumed {
                run_id: self.info.run_id.clone(),
            })?;
        } else {
            self.emit(Event::RunStarted {
                run_id: self.info.run_id.clone(),
                plan: self.info.plan_path.clone(),
                digest: self.info.digest.clone(),
                mode: self.info.mode,
                stages: self.plan.stages.len(),
            })?;
        }
        let halt = match resume.as_ref().and_then(|r| r.rollback.as_ref()) {
            // A rollback was under way: finish it.
            Some(rollback) => Some(Halt::Rollback {
                reason: rollback.reason.clone(),
                outcome: if rollback.aborted {
                    Outcome::Aborted
                } else {
                    Outcome::RolledBack
                },
            }),
            None => self.stages(resume.as_ref()).await.err(),
        };
        let (outcome, reason, next) = match halt {
            None => (Outcome::Completed, None, None),
            Some(Halt::Fatal(error)) => return Err(error),
            Some(Halt::End { outcome, reason }) => (outcome, Some(reason), None),
            Some(Halt::Suspend {
                outcome,
                reason,
                next,
            }) => (outcome, Some(reason), next),
            Some(Halt::Rollback { reason, outcome }) => {
                let resumed = resume.as_ref().and_then(|r| r.rollback.as_ref());
                let (outcome, reason) = self.rollback(reason, outcome, resumed).await?;
                (outcome, reason, None)
            }
        };
        if outcome.is_final() {
            self.emit(Event::RunEnded { outcome, reason })?;
        } else {
            self.emit(Event::Suspended {
                outcome,
                reason: reason.unwrap_or_default(),
                next,
            })?;
        }
        for sink in &mut self.parts.sinks {
            sink.finish();
        }
        Ok(outcome)
    }

    /// Preflight (what has not passed yet), then every stage from where the run stands.
    async fn stages(&mut self, resume: Option<&RunState>) -> Go {
        self.abort_first()?;
        let started_any =
            resume.is_some_and(|r| r.stage.is_some() || !r.stages_completed.is_empty());
        if !started_any {
            let passed = resume
                .map(|r| r.preflight_passed.clone())
                .unwrap_or_default();
            self.preflight(&passed).await?;
        }
        let plan = self.plan;
        let first = resume.map_or(0, |r| r.stages_completed.len());
        for (index, stage) in plan.stages.iter().enumerate().skip(first) {
            let progress = resume
                .and_then(|r| r.stage.as_ref())
                .filter(|p| p.index == index);
            self.stage(index, stage, stage::Cursor::of(progress))
                .await?;
        }
        Ok(())
    }

    fn now(&self) -> DateTime<Utc> {
        self.parts.clock.now()
    }

    fn emit(&mut self, event: Event) -> Result<(), EngineError> {
        self.seq += 1;
        let record = Record {
            seq: self.seq,
            at: self.now(),
            event,
        };
        for sink in &mut self.parts.sinks {
            sink.record(&record).map_err(|error| {
                // A runner that lost its lock must stop, and say why: a state conflict.
                match error
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<crate::journal::Stolen>())
                {
                    Some(stolen) => EngineError::Conflict(stolen.0.clone()),
                    None => EngineError::Sink(error),
                }
            })?;
        }
        Ok(())
    }

    /// An abort recorded while the runner was busy is taken before its next action: no step
    /// runs and no traffic moves after it.
    fn abort_first(&mut self) -> Go {
        match self.parts.control.poll() {
            Some(Control::Abort {
                by,
                reason,
                request,
            }) => Err(self.aborted(&by, &reason, request)),
            // An approval typed while nothing waits for one is not kept.
            _ => Ok(()),
        }
    }

    /// Records a person's abort; the run rolls back.
    fn aborted(&mut self, by: &str, reason: &str, request: Option<String>) -> Halt {
        if let Err(error) = self.emit(Event::AbortRequested {
            by: by.to_owned(),
            reason: reason.to_owned(),
            request,
        }) {
            return Halt::Fatal(error);
        }
        Halt::Rollback {
            reason: format!("aborted by {by}: {reason}"),
            outcome: Outcome::Aborted,
        }
    }

    /// Waits until `deadline`; an abort ends the wait with a rollback, an approval that nothing
    /// asked for is ignored. With `--once`, a later deadline suspends the run instead.
    async fn wait(&mut self, deadline: DateTime<Utc>) -> Go {
        self.wait_until(deadline, false).await.map(|_| ())
    }

    /// [`Engine::wait`], and where `promotable` (a stage's bake), a promotion ends the wait
    /// too.
    async fn wait_until(&mut self, deadline: DateTime<Utc>, promotable: bool) -> Go<Woke> {
        if self.options.once {
            let polled = self.parts.control.poll();
            if let Some(woke) = self.woken_by(polled, promotable) {
                return woke;
            }
            if deadline > self.now() {
                return Err(Halt::Suspend {
                    outcome: Outcome::InProgress,
                    reason: format!(
                        "nothing more is due until {}",
                        deadline.format("%Y-%m-%d %H:%M:%SZ")
                    ),
                    next: Some(deadline),
                });
            }
            return Ok(Woke::Due);
        }
        loop {
            let clock = Arc::clone(&self.parts.clock);
            let control = self.parts.control.wait(clock.as_ref(), deadline).await;
            if let Some(lost) = self.parts.control.lost() {
                return Err(Halt::Fatal(EngineError::Conflict(lost)));
            }
            if control.is_none() {
                return Ok(Woke::Due);
            }
            if let Some(woke) = self.woken_by(control, promotable) {
                return woke;
            }
            if self.now() >= deadline {
                return Ok(Woke::Due);
            }
        }
    }

    /// What a decision that came during a wait does to it: an abort ends it with a rollback, a
    /// promotion (where `promotable`) ends it; anything else leaves it waiting (`None`).
    fn woken_by(&mut self, control: Option<Control>, promotable: bool) -> Option<Go<Woke>> {
        match control? {
            Control::Abort {
                by,
                reason,
                request,
            } => Some(Err(self.aborted(&by, &reason, request))),
            Control::Promote {
                by,
                reason,
                request,
            } if promotable => Some(Ok(Woke::Promoted {
                by,
                reason,
                request,
            })),
            Control::Approve { .. } | Control::Promote { .. } => None,
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Woke {
    /// Its deadline came.
    Due,
    /// A person promoted the stage (`ion-plan promote`).
    Promoted {
        by: String,
        reason: String,
        request: Option<String>,
    },
}

fn at(start: DateTime<Utc>, offset: std::time::Duration) -> DateTime<Utc> {
    crate::engine::clock::after(start, offset)
}
