//! The run loop: preflight, then stage after stage — wait for the window, run the steps, check on
//! time, judge gates, wait for a person — and rollback on a NO-GO.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use indexmap::IndexMap;

use crate::engine::clock::Clock;
use crate::engine::gates::{self, CompiledGate, Streaks, Verdict};
use crate::engine::schedule::StartRule;
use crate::engine::timeline;
use crate::engine::{
    Announce, CheckContext, Control, ControlSource, Sampler, Sink, StepContext, StepResult,
    StepRunner, WaitFor,
};
use crate::event::state::{RollbackProgress, RunState, StageProgress, StepStatus};
use crate::event::{Event, Mode, Outcome, Phase, Record};
use crate::plan::model::{Action, GateAt, Plan, Stage, Step};
use crate::plan::units::PlanDuration;
use crate::probe::Sample;
use crate::process;

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

/// How a part of the run ended.
enum Flow {
    /// Go on.
    Next,
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
}

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
    checks: u32,
    options: Options,
    /// The journal's state when this runner took the run up.
    resume: Option<RunState>,
    /// An abort taken between two attempts of a step: what the step's caller does instead.
    aborting: Option<Flow>,
}

/// The default cadence of checks while a stage waits for a person, when it has neither `every`
/// nor two `at` offsets to take a gap from.
const FALLBACK_CADENCE: Duration = Duration::from_mins(5);

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
            .map(|(name, gate)| CompiledGate::compile(name, gate).map(|g| (name.clone(), g)))
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
            checks: resume.as_ref().map_or(0, |r| r.checks),
            options,
            resume,
            aborting: None,
        })
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
    fn abort_first(&mut self) -> Result<Option<Flow>, EngineError> {
        match self.parts.control.poll() {
            Some(Control::Abort {
                by,
                reason,
                request,
            }) => self.aborted(&by, &reason, request).map(Some),
            // An approval typed while nothing waits for one is not kept.
            _ => Ok(None),
        }
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
        let flow = match resume.as_ref().and_then(|r| r.rollback.clone()) {
            // A rollback was under way: finish it.
            Some(rollback) => Flow::Rollback {
                reason: rollback.reason,
                outcome: if rollback.aborted {
                    Outcome::Aborted
                } else {
                    Outcome::RolledBack
                },
            },
            None => match self.abort_first()? {
                Some(flow) => flow,
                None => self.stages(resume.as_ref()).await?,
            },
        };
        let (outcome, reason, next) = match flow {
            Flow::Next => (Outcome::Completed, None, None),
            Flow::End { outcome, reason } => (outcome, Some(reason), None),
            Flow::Suspend {
                outcome,
                reason,
                next,
            } => (outcome, Some(reason), next),
            Flow::Rollback { reason, outcome } => {
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
    async fn stages(&mut self, resume: Option<&RunState>) -> Result<Flow, EngineError> {
        let plan = self.plan;
        let started_any =
            resume.is_some_and(|r| r.stage.is_some() || !r.stages_completed.is_empty());
        if !started_any {
            let passed = resume
                .map(|r| r.preflight_passed.clone())
                .unwrap_or_default();
            let flow = self.preflight(&passed).await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        let first = resume.map_or(0, |r| r.stages_completed.len());
        for (index, stage) in plan.stages.iter().enumerate().skip(first) {
            let progress = resume
                .and_then(|r| r.stage.as_ref())
                .filter(|p| p.index == index);
            let flow = self.stage(index, stage, progress).await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    async fn preflight(&mut self, passed: &HashSet<String>) -> Result<Flow, EngineError> {
        let plan = self.plan;
        for (index, item) in plan.preflight.iter().enumerate() {
            if passed.contains(&item.name) {
                continue;
            }
            if let Some(flow) = self.abort_first()? {
                return Ok(flow);
            }
            let failure = if let Some(probe) = &item.probe {
                self.preflight_probe(probe, item).await?
            } else {
                let step = Step {
                    name: Some(item.name.clone()),
                    run: item.run.clone(),
                    http: item.http.clone(),
                    env: item.env.clone(),
                    timeout: item.timeout,
                    retries: None,
                    idempotent: true,
                };
                let context = StepContext {
                    phase: Phase::Preflight,
                    stage: None,
                    traffic: 0.0,
                    index,
                };
                self.step(&step, context).await?.err()
            };
            if let Some(flow) = self.aborting.take() {
                return Ok(flow);
            }
            match failure {
                None => self.emit(Event::PreflightPassed {
                    name: item.name.clone(),
                })?,
                Some(reason) => {
                    self.emit(Event::PreflightFailed {
                        name: item.name.clone(),
                        reason: reason.clone(),
                    })?;
                    return Ok(Flow::End {
                        outcome: Outcome::PreflightFailed,
                        reason: format!(
                            "preflight check `{}` failed: {reason}; no traffic moved",
                            item.name
                        ),
                    });
                }
            }
        }
        Ok(Flow::Next)
    }

    /// A preflight probe must succeed and its `require` conditions hold; returns why not.
    async fn preflight_probe(
        &mut self,
        probe: &str,
        item: &crate::plan::model::PreflightItem,
    ) -> Result<Option<String>, EngineError> {
        self.checks += 1;
        let check = self.checks;
        if self.info.mode == Mode::DryRun {
            self.emit(Event::GatePlanned {
                stage: None,
                gate: format!("preflight `{}` on probe `{probe}`", item.name),
                conditions: item.require.iter().map(|c| c.check().to_owned()).collect(),
            })?;
            return Ok(None);
        }
        let context = CheckContext {
            stage: None,
            traffic: 0.0,
            offset: Duration::ZERO,
            at: self.now(),
            overrides: item.with.as_ref(),
        };
        let sample = self.parts.sampler.sample(probe, context).await;
        self.emit(Event::SampleTaken {
            stage: None,
            check,
            sample: sample.clone(),
        })?;
        if let Some(error) = &sample.error {
            return Ok(Some(error.clone()));
        }
        if item.require.is_empty() {
            return Ok(None);
        }
        let gate = CompiledGate {
            name: format!("preflight `{}`", item.name),
            at: GateAt::End,
            on_fail: Action::Rollback,
            on_error: (1, Action::Rollback),
            conditions: item
                .require
                .iter()
                .map(gates::compile_condition)
                .collect::<Result<_, _>>()
                .map_err(EngineError::Plan)?,
        };
        let samples = HashMap::from([(probe.to_owned(), sample)]);
        let (evaluations, verdict) = gates::at_end(&gate, &samples);
        for evaluation in evaluations {
            self.emit(Event::Evaluated {
                stage: None,
                check,
                evaluation,
            })?;
        }
        // The gate is this check itself, and the caller names it: keep only what went wrong, so
        // the message does not read ``gate `preflight `NAME`` did not pass``.
        let title = format!("gate `{}` ", gate.name);
        Ok(match verdict {
            Verdict::Pass => None,
            Verdict::Failed { reason, .. } => Some(
                reason
                    .strip_prefix(&format!("{title}did not pass: "))
                    .map_or_else(|| reason.clone(), str::to_owned),
            ),
            Verdict::Errors { reason, .. } => Some(
                reason
                    .strip_prefix(&title)
                    .map_or_else(|| reason.clone(), str::to_owned),
            ),
        })
    }

    /// Runs a step with its retries; `Err(reason)` in the inner result when it failed.
    async fn step(
        &mut self,
        step: &Step,
        context: StepContext<'_>,
    ) -> Result<Result<(), String>, EngineError> {
        let attempts = step.retries.unwrap_or(0) + 1;
        let command = self.parts.steps.describe(step, context);
        let name = step.name.clone().unwrap_or_else(|| command.clone());
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                // Back off 1s, 2s, 4s… (at most a minute) between attempts.
                let backoff =
                    Duration::from_secs(1 << (attempt - 2).min(6)).min(Duration::from_mins(1));
                let until = crate::engine::clock::after(self.now(), backoff);
                self.parts.clock.sleep_until(until).await;
                // An abort that came in meanwhile comes first: no further attempt.
                if context.phase != Phase::Rollback
                    && let Some(flow) = self.abort_first()?
                {
                    self.aborting = Some(flow);
                    return Ok(Err(format!(
                        "step `{name}` aborted before attempt {attempt}"
                    )));
                }
            }
            let started = std::time::Instant::now();
            let result = self
                .attempt(step, context, &name, &command, attempt)
                .await?;
            self.emit(Event::StepFinished {
                phase: context.phase,
                stage: context.stage.map(str::to_owned),
                index: context.index,
                attempt,
                ok: result.ok,
                detail: result.detail.clone(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            })?;
            if result.ok {
                return Ok(Ok(()));
            }
            last = result.detail;
        }
        Ok(Err(format!(
            "step `{name}` failed after {attempts} attempt{}: {last}",
            if attempts == 1 { "" } else { "s" }
        )))
    }

    /// Waits until `deadline`; an abort ends the wait with a rollback, an approval that nothing
    /// asked for is noted and ignored.
    async fn wait(&mut self, deadline: DateTime<Utc>) -> Result<Option<Flow>, EngineError> {
        if self.options.once {
            // Take an abort that is waiting; otherwise stop if the deadline is later.
            if let Some(Control::Abort {
                by,
                reason,
                request,
            }) = self.parts.control.poll()
            {
                return self.aborted(&by, &reason, request).map(Some);
            }
            if deadline > self.now() {
                return Ok(Some(Flow::Suspend {
                    outcome: Outcome::InProgress,
                    reason: format!(
                        "nothing more is due until {}",
                        deadline.format("%Y-%m-%d %H:%M:%SZ")
                    ),
                    next: Some(deadline),
                }));
            }
            return Ok(None);
        }
        loop {
            let clock = Arc::clone(&self.parts.clock);
            match self.parts.control.wait(clock.as_ref(), deadline).await {
                None => return Ok(None),
                Some(Control::Abort {
                    by,
                    reason,
                    request,
                }) => return self.aborted(&by, &reason, request).map(Some),
                Some(Control::Approve { .. }) => {
                    if self.now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn aborted(
        &mut self,
        by: &str,
        reason: &str,
        request: Option<String>,
    ) -> Result<Flow, EngineError> {
        self.emit(Event::AbortRequested {
            by: by.to_owned(),
            reason: reason.to_owned(),
            request,
        })?;
        Ok(Flow::Rollback {
            reason: format!("aborted by {by}: {reason}"),
            outcome: Outcome::Aborted,
        })
    }

    /// Runs a stage, or takes it up from `progress` (what the journal recorded of it).
    #[expect(
        clippy::too_many_lines,
        reason = "the stage's life in order: wait, steps, checks, end gates, approval"
    )]
    async fn stage(
        &mut self,
        index: usize,
        stage: &'p Stage,
        progress: Option<&StageProgress>,
    ) -> Result<Flow, EngineError> {
        let defaults = self.plan.defaults.as_ref();
        let started = if let Some(progress) = progress {
            progress.started
        } else {
            if let Some(flow) = self.abort_first()? {
                return Ok(flow);
            }
            let (start, why) = self.start_rule.next_start(self.now());
            if let Some(reason) = why {
                self.emit(Event::StageWaiting {
                    stage: stage.name.clone(),
                    until: start,
                    reason,
                })?;
                if let Some(flow) = self.wait(start).await? {
                    return Ok(flow);
                }
            }
            if let Some(flow) = self.abort_first()? {
                return Ok(flow);
            }
            self.emit(Event::StageStarted {
                stage: stage.name.clone(),
                index,
                traffic: stage.traffic,
            })?;
            self.now()
        };
        self.streaks.reset();
        self.newest.clear();
        let done_steps = progress.map(|p| p.steps.clone()).unwrap_or_default();
        for (i, step) in stage.effective_steps(defaults).iter().enumerate() {
            if !done_steps.get(&i).is_some_and(StepStatus::done)
                && let Some(flow) = self.abort_first()?
            {
                return Ok(flow);
            }
            let context = StepContext {
                phase: Phase::Stage,
                stage: Some(&stage.name),
                traffic: stage.traffic,
                index: i,
            };
            match self
                .resumable_step(step, context, done_steps.get(&i))
                .await?
            {
                Ok(()) => {}
                Err(reason) => {
                    return Ok(self.aborting.take().unwrap_or(Flow::Rollback {
                        reason,
                        outcome: Outcome::RolledBack,
                    }));
                }
            }
        }
        let mut last_offset = None;
        if let Some(progress) = progress {
            // Streaks come back exactly: the recorded samples go through the gates again.
            for check in &progress.checks {
                self.replay_check(stage, &check.samples);
                last_offset = Some(check.offset);
            }
            if let Some((_, reason)) = &progress.paused {
                self.parts.control.person_needed(&stage.name, self.now());
                let wait = progress.paused_seq;
                let flow = self
                    .wait_for_person(stage, started, None, Action::Pause, reason.clone(), wait)
                    .await?;
                if !matches!(flow, Flow::Next) {
                    return Ok(flow);
                }
            }
        }
        let bake = stage.bake.as_duration();
        let bake_ended = progress.is_some_and(|p| p.bake_ended);
        if !bake_ended {
            if progress.is_some() {
                // Checks that fell due while nothing ran are recorded (a count and a range),
                // not back-filled; one check runs at once (after the bake, it is the one the
                // `at: end` gates read).
                let now = self.now();
                let elapsed = (now - started).to_std().unwrap_or_default();
                if let Some((count, first, last)) =
                    timeline::due_between(stage, defaults, last_offset, elapsed)
                {
                    self.emit(Event::ChecksMissed {
                        stage: stage.name.clone(),
                        count,
                        first: first.as_secs_f64(),
                        last: last.as_secs_f64(),
                    })?;
                    last_offset = Some(last.as_secs_f64());
                }
                if stage.effective_checks(defaults).is_some() {
                    let flow = self.check(stage, started).await?;
                    if !matches!(flow, Flow::Next) {
                        return Ok(flow);
                    }
                }
            }
            while let Some(offset) = timeline::next_check(stage, defaults, last_offset) {
                if let Some(flow) = self.wait(at(started, offset)).await? {
                    return Ok(flow);
                }
                let flow = self.check(stage, started).await?;
                if !matches!(flow, Flow::Next) {
                    return Ok(flow);
                }
                last_offset = Some(offset.as_secs_f64());
            }
            if let Some(flow) = self.wait(at(started, bake)).await? {
                return Ok(flow);
            }
            let flow = self.end_gates(stage, started).await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
            self.emit(Event::BakeEnded {
                stage: stage.name.clone(),
            })?;
        }
        if let Some(approval) = stage.approval {
            let mut wait = progress.map_or(0, |p| p.approval_seq);
            let deadline = if let Some((_, deadline)) = progress.and_then(|p| p.approval) {
                self.parts.control.person_needed(&stage.name, self.now());
                if progress.is_some_and(|p| p.bake_ended)
                    && stage.effective_checks(defaults).is_some()
                {
                    // Taking up a stage that waits for approval: its guards check at once.
                    let flow = self.check(stage, started).await?;
                    if !matches!(flow, Flow::Next) {
                        return Ok(flow);
                    }
                }
                deadline
            } else {
                let deadline = approval.timeout.map(|t| at(self.now(), t.as_duration()));
                self.emit(Event::ApprovalRequested {
                    stage: stage.name.clone(),
                    deadline,
                })?;
                wait = self.seq;
                self.parts.control.person_needed(&stage.name, self.now());
                deadline
            };
            let flow = self
                .wait_for_person(
                    stage,
                    started,
                    deadline,
                    approval.on_timeout.unwrap_or(Action::Rollback),
                    format!("stage `{}` waits for approval", stage.name),
                    wait,
                )
                .await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        self.emit(Event::StageCompleted {
            stage: stage.name.clone(),
        })?;
        Ok(Flow::Next)
    }

    /// One attempt of a step: `step_started` is journaled (with the program's process group)
    /// before the effect begins, and the runner goes on only once it is durable.
    async fn attempt(
        &mut self,
        step: &Step,
        context: StepContext<'_>,
        name: &str,
        command: &str,
        attempt: u32,
    ) -> Result<StepResult, EngineError> {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel();
        let runner = Arc::clone(&self.parts.steps);
        let mut run = runner.run(step, context, Announce::new(started_tx, go_rx));
        // Until the runner announces its start (or ends without one: nothing began).
        let (pgid, early) = tokio::select! {
            biased;
            group = started_rx => (group.ok().flatten(), None),
            result = &mut run => (None, Some(result)),
        };
        self.emit(Event::StepStarted {
            phase: context.phase,
            stage: context.stage.map(str::to_owned),
            index: context.index,
            name: name.to_owned(),
            command: command.to_owned(),
            attempt,
            pgid,
            boot: pgid.and_then(|_| process::boot_id()),
            group_start: pgid.and_then(process::leader_start),
        })?;
        let _ = go_tx.send(());
        Ok(match early {
            Some(result) => result,
            None => run.await,
        })
    }

    /// A step, taking up what the journal recorded of it: done steps are not run again; an
    /// interrupted one runs again only if it is idempotent or the operator said so.
    async fn resumable_step(
        &mut self,
        step: &Step,
        context: StepContext<'_>,
        recorded: Option<&StepStatus>,
    ) -> Result<Result<(), String>, EngineError> {
        let Some(recorded) = recorded else {
            return self.step(step, context).await;
        };
        if recorded.done() {
            return Ok(Ok(()));
        }
        if recorded.interrupted() {
            self.await_interrupted(step, context, recorded).await?;
        }
        if recorded.interrupted() && !step.idempotent && !self.options.retry_step {
            if self.options.skip_step {
                self.emit(Event::StepSkipped {
                    phase: context.phase,
                    stage: context.stage.map(str::to_owned),
                    index: context.index,
                    name: recorded.name.clone(),
                })?;
                return Ok(Ok(()));
            }
            let place = context.stage.map_or_else(
                || format!("{:?}", context.phase).to_lowercase(),
                |s| format!("stage `{s}`"),
            );
            return Err(EngineError::Conflict(format!(
                "step {} of {place} (`{}`) started at {} and never finished, and it is not \
                 idempotent: it may or may not have taken effect. Check, then run again with \
                 `--retry-step` to run it again or `--skip-step` if it took effect.",
                context.index + 1,
                recorded.command,
                recorded
                    .started
                    .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            )));
        }
        self.step(step, context).await
    }

    /// An interrupted step's process group may outlive the runner that started it: wait for it
    /// to end (at most until the step's timeout, counted from its recorded start; then end it)
    /// before the step is run again or anyone is asked about it.
    async fn await_interrupted(
        &mut self,
        step: &Step,
        context: StepContext<'_>,
        recorded: &StepStatus,
    ) -> Result<(), EngineError> {
        let Some(group) = &recorded.group else {
            return Ok(());
        };
        let pgid = i32::try_from(group.pgid).unwrap_or(0);
        if self.info.mode != Mode::Live || !process::still_runs(group) {
            return Ok(());
        }
        self.emit(Event::StepStillRunning {
            phase: context.phase,
            stage: context.stage.map(str::to_owned),
            index: context.index,
            pgid: pgid.unsigned_abs(),
        })?;
        let timeout = step
            .timeout
            .map_or(crate::engine::live::STEP_TIMEOUT, PlanDuration::as_duration);
        let ran = recorded
            .started
            .map(|t| (self.now() - t).to_std().unwrap_or_default())
            .unwrap_or_default();
        let left = timeout.saturating_sub(ran);
        let until = std::time::Instant::now() + left;
        while process::still_runs(group) && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if process::still_runs(group) {
            process::end(pgid, process::grace()).await;
        }
        Ok(())
    }

    /// Feeds a recorded check through the stage's gates again, to rebuild streaks on resume.
    fn replay_check(&mut self, stage: &Stage, samples: &HashMap<String, Sample>) {
        for name in stage.effective_gates(self.plan.defaults.as_ref()) {
            if let Some(gate) = self.gates.get(name).filter(|g| g.at == GateAt::EveryCheck) {
                self.streaks.every_check(gate, samples);
            }
        }
        for (probe, sample) in samples {
            self.newest.insert(probe.clone(), sample.clone());
        }
    }

    /// One check: the stage's probes concurrently, then its `every_check` gates.
    async fn check(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
    ) -> Result<Flow, EngineError> {
        let defaults = self.plan.defaults.as_ref();
        let Some(checks) = stage.effective_checks(defaults) else {
            return Ok(Flow::Next);
        };
        self.checks += 1;
        let number = self.checks;
        let now = self.now();
        let offset = (now - started).to_std().unwrap_or_default();
        self.emit(Event::CheckStarted {
            stage: stage.name.clone(),
            number,
            offset: offset.as_secs_f64(),
            probes: checks.probes.clone(),
        })?;
        if self.info.mode == Mode::DryRun {
            return self.plan_gates(Some(&stage.name), stage, GateAt::EveryCheck);
        }
        let context = CheckContext {
            stage: Some(&stage.name),
            traffic: stage.traffic,
            offset,
            at: now,
            overrides: None,
        };
        let sampler = Arc::clone(&self.parts.sampler);
        let samples = join_all(checks.probes.iter().map(|p| sampler.sample(p, context))).await;
        let mut current = HashMap::new();
        for sample in samples {
            self.emit(Event::SampleTaken {
                stage: Some(stage.name.clone()),
                check: number,
                sample: sample.clone(),
            })?;
            self.newest.insert(sample.probe.clone(), sample.clone());
            current.insert(sample.probe.clone(), sample);
        }
        let mut verdicts = Vec::new();
        for name in stage.effective_gates(defaults) {
            let Some(gate) = self.gates.get(name).filter(|g| g.at == GateAt::EveryCheck) else {
                continue;
            };
            let (evaluations, verdict) = self.streaks.every_check(gate, &current);
            let gate_name = gate.name.clone();
            for evaluation in evaluations {
                self.emit(Event::Evaluated {
                    stage: Some(stage.name.clone()),
                    check: number,
                    evaluation,
                })?;
            }
            verdicts.push((gate_name, verdict));
        }
        self.act(stage, started, verdicts).await
    }

    /// `at: end` gates, on the newest samples; a check runs first if none is recent enough
    /// (the bake's end had no check scheduled).
    async fn end_gates(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
    ) -> Result<Flow, EngineError> {
        let defaults = self.plan.defaults.as_ref();
        let end_gates: Vec<CompiledGate> = stage
            .effective_gates(defaults)
            .iter()
            .filter_map(|n| self.gates.get(n))
            .filter(|g| g.at == GateAt::End)
            .cloned()
            .collect();
        if end_gates.is_empty() {
            return Ok(Flow::Next);
        }
        if !timeline::check_at_bake_end(stage, defaults)
            && stage.effective_checks(defaults).is_some()
        {
            let flow = self.check(stage, started).await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        if self.info.mode == Mode::DryRun {
            return self.plan_gates(Some(&stage.name), stage, GateAt::End);
        }
        let number = self.checks;
        let mut verdicts = Vec::new();
        for gate in &end_gates {
            let (evaluations, verdict) = gates::at_end(gate, &self.newest);
            for evaluation in evaluations {
                self.emit(Event::Evaluated {
                    stage: Some(stage.name.clone()),
                    check: number,
                    evaluation,
                })?;
            }
            verdicts.push((gate.name.clone(), verdict));
        }
        self.act(stage, started, verdicts).await
    }

    /// A dry run shows which gates would be evaluated, and on what.
    fn plan_gates(
        &mut self,
        stage_name: Option<&str>,
        stage: &Stage,
        at: GateAt,
    ) -> Result<Flow, EngineError> {
        let names = stage.effective_gates(self.plan.defaults.as_ref());
        let planned: Vec<(String, Vec<String>)> = names
            .iter()
            .filter_map(|n| self.gates.get(n))
            .filter(|g| g.at == at)
            .map(|g| {
                (
                    g.name.clone(),
                    g.conditions.iter().map(|c| c.text.clone()).collect(),
                )
            })
            .collect();
        for (gate, conditions) in planned {
            self.emit(Event::GatePlanned {
                stage: stage_name.map(str::to_owned),
                gate,
                conditions,
            })?;
        }
        Ok(Flow::Next)
    }

    /// Takes the actions of failed gates: rollback over pause over warn.
    async fn act(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        verdicts: Vec<(String, Verdict)>,
    ) -> Result<Flow, EngineError> {
        let mut pause = None;
        let mut rollback = None;
        for (gate, verdict) in verdicts {
            let (action, reason) = match verdict {
                Verdict::Pass => continue,
                Verdict::Failed { action, reason } | Verdict::Errors { action, reason } => {
                    (action, reason)
                }
            };
            self.emit(Event::GateFailed {
                stage: stage.name.clone(),
                gate,
                action,
                reason: reason.clone(),
            })?;
            match action {
                Action::Rollback => {
                    rollback.get_or_insert(reason);
                }
                Action::Pause => {
                    pause.get_or_insert(reason);
                }
                Action::Warn => {}
            }
        }
        if let Some(reason) = rollback {
            return Ok(Flow::Rollback {
                reason,
                outcome: Outcome::RolledBack,
            });
        }
        if let Some(reason) = pause {
            self.emit(Event::Paused {
                stage: stage.name.clone(),
                reason: reason.clone(),
            })?;
            let wait = self.seq;
            self.parts.control.person_needed(&stage.name, self.now());
            return Box::pin(self.wait_for_person(
                stage,
                started,
                None,
                Action::Pause,
                format!("stage `{}` is paused: {reason}", stage.name),
                wait,
            ))
            .await;
        }
        Ok(Flow::Next)
    }

    /// Waits for a person's approval while the stage's `every_check` gates keep running. At
    /// `deadline` (if any) takes `on_timeout`; `on_timeout: pause` (a paused stage) waits as long
    /// as it takes.
    async fn wait_for_person(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
        on_timeout: Action,
        why: String,
        wait: u64,
    ) -> Result<Flow, EngineError> {
        let paused = on_timeout == Action::Pause && deadline.is_none();
        self.parts.control.waiting(Some(WaitFor {
            stage: &stage.name,
            paused,
            seq: wait,
        }));
        let flow = self
            .wait_for_person_inner(stage, started, deadline, on_timeout, why, paused)
            .await;
        self.parts.control.waiting(None);
        flow
    }

    /// `pause`: the stage is paused (no deadline, `on_timeout: pause`), not asking for approval.
    async fn wait_for_person_inner(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
        on_timeout: Action,
        why: String,
        pause: bool,
    ) -> Result<Flow, EngineError> {
        let cadence = cadence(stage, self.plan.defaults.as_ref());
        let mut deadline = deadline;
        let mut next_check = cadence.map(|c| at(self.now(), c));
        loop {
            let control = if self.options.once || !self.parts.control.can_answer() {
                match self.parts.control.poll() {
                    Some(control) => Some(control),
                    None if deadline.is_some_and(|d| self.now() >= d) => None,
                    None => {
                        return Ok(Flow::Suspend {
                            outcome: Outcome::Waiting,
                            reason: format!(
                                "{why}: `ion-plan approve` or `ion-plan abort`, then `ion-plan run` again"
                            ),
                            next: deadline,
                        });
                    }
                }
            } else {
                let until = match (next_check, deadline) {
                    (Some(c), Some(d)) => c.min(d),
                    (Some(t), None) | (None, Some(t)) => t,
                    (None, None) => DateTime::<Utc>::MAX_UTC,
                };
                let clock = Arc::clone(&self.parts.clock);
                self.parts.control.wait(clock.as_ref(), until).await
            };
            match control {
                Some(Control::Abort {
                    by,
                    reason,
                    request,
                }) => return self.aborted(&by, &reason, request),
                Some(Control::Approve {
                    by,
                    stage: named,
                    request,
                }) => {
                    if named.as_ref().is_some_and(|n| n != &stage.name) {
                        continue;
                    }
                    let stage_name = stage.name.clone();
                    self.emit(if pause {
                        Event::Resumed {
                            stage: stage_name,
                            by,
                            request,
                        }
                    } else {
                        Event::Approved {
                            stage: stage_name,
                            by,
                            request,
                        }
                    })?;
                    return Ok(Flow::Next);
                }
                None => {}
            }
            let now = self.now();
            if deadline.is_some_and(|d| now >= d) {
                self.emit(Event::ApprovalTimedOut {
                    stage: stage.name.clone(),
                    action: on_timeout,
                })?;
                match on_timeout {
                    Action::Rollback => {
                        return Ok(Flow::Rollback {
                            reason: format!("approval of stage `{}` timed out", stage.name),
                            outcome: Outcome::RolledBack,
                        });
                    }
                    Action::Warn => return Ok(Flow::Next),
                    Action::Pause => deadline = None,
                }
            }
            if next_check.is_some_and(|c| now >= c) {
                next_check = cadence.map(|c| at(now, c));
                match Box::pin(self.check(stage, started)).await? {
                    Flow::Next => {}
                    other => return Ok(other),
                }
            }
            if next_check.is_none() && deadline.is_none() && self.parts.clock.is_simulated() {
                // Simulated time with nothing left to happen: nobody will ever answer.
                return Ok(Flow::Suspend {
                    outcome: Outcome::Waiting,
                    reason: format!("{why}, and nobody answers"),
                    next: None,
                });
            }
        }
    }

    /// Runs the rollback steps in order. A failed rollback step stops the run `failed`, listing
    /// what is left to do by hand.
    async fn rollback(
        &mut self,
        reason: String,
        outcome: Outcome,
        resumed: Option<&RollbackProgress>,
    ) -> Result<(Outcome, Option<String>), EngineError> {
        let done = resumed.map(|r| r.steps.clone()).unwrap_or_default();
        if resumed.is_none() {
            self.emit(Event::RollbackStarted {
                reason: reason.clone(),
            })?;
        }
        let plan = self.plan;
        for (index, step) in plan.rollback.iter().enumerate() {
            let context = StepContext {
                phase: Phase::Rollback,
                stage: None,
                traffic: 0.0,
                index,
            };
            if let Err(failure) = self.resumable_step(step, context, done.get(&index)).await? {
                let left_to_do = plan.rollback[index..]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let c = StepContext {
                            index: index + i,
                            ..context
                        };
                        self.parts.steps.describe(s, c)
                    })
                    .collect();
                self.emit(Event::RollbackFailed {
                    reason: failure.clone(),
                    left_to_do,
                })?;
                return Ok((
                    Outcome::Failed,
                    Some(format!("rollback failed ({failure}) after: {reason}")),
                ));
            }
        }
        self.emit(Event::RolledBack {})?;
        Ok((outcome, Some(reason)))
    }
}

fn at(start: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    crate::engine::clock::after(start, offset)
}

/// How often checks run while a stage waits for a person: `every`, else the smallest gap between
/// `at` offsets, else five minutes; none when the stage has no checks.
fn cadence(
    stage: &Stage,
    defaults: Option<&crate::plan::model::StageDefaults>,
) -> Option<Duration> {
    let checks = stage.effective_checks(defaults)?;
    if let Some(every) = checks
        .every
        .map(super::super::plan::units::PlanDuration::as_duration)
        .filter(|e| !e.is_zero())
    {
        return Some(every);
    }
    let mut offsets: Vec<Duration> = std::iter::once(Duration::ZERO)
        .chain(checks.at.iter().map(|d| d.as_duration()))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    Some(
        offsets
            .windows(2)
            .map(|w| w[1].checked_sub(w[0]).unwrap())
            .filter(|gap| !gap.is_zero())
            .min()
            .unwrap_or(FALLBACK_CADENCE),
    )
}
