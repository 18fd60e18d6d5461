//! The run loop: preflight, then stage after stage — wait for the window, run the steps, check on
//! time, judge gates, wait for a person — and rollback on a NO-GO.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use indexmap::IndexMap;

use crate::engine::clock::Clock;
use crate::engine::gates::{self, CompiledGate, Streaks, Verdict};
use crate::engine::schedule::StartRule;
use crate::engine::{CheckContext, Control, ControlSource, Sampler, Sink, StepContext, StepRunner};
use crate::journal::event::{Event, Mode, Outcome, Phase, Record};
use crate::plan::model::{Action, GateAt, Plan, Stage, Step};
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
}

/// How a part of the run ended.
enum Flow {
    /// Go on.
    Next,
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
}

/// The default cadence of checks while a stage waits for a person, when it has neither `every`
/// nor two `at` offsets to take a gap from.
const FALLBACK_CADENCE: Duration = Duration::from_mins(5);

impl<'p> Engine<'p> {
    pub fn new(plan: &'p Plan, info: RunInfo, parts: Parts) -> Result<Engine<'p>, EngineError> {
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
            seq: 0,
            streaks: Streaks::default(),
            newest: HashMap::new(),
            checks: 0,
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
            sink.record(&record).map_err(EngineError::Sink)?;
        }
        Ok(())
    }

    /// Runs the plan to its end, or to a point where it must wait for a person nobody can be.
    pub async fn run(mut self) -> Result<Outcome, EngineError> {
        self.emit(Event::RunStarted {
            run_id: self.info.run_id.clone(),
            plan: self.info.plan_path.clone(),
            digest: self.info.digest.clone(),
            mode: self.info.mode,
            stages: self.plan.stages.len(),
        })?;
        let mut flow = self.preflight().await?;
        if matches!(flow, Flow::Next) {
            for (index, stage) in self.plan.stages.iter().enumerate() {
                flow = self.stage(index, stage).await?;
                if !matches!(flow, Flow::Next) {
                    break;
                }
            }
        }
        let (outcome, reason) = match flow {
            Flow::Next => (Outcome::Completed, None),
            Flow::End { outcome, reason } => (outcome, Some(reason)),
            Flow::Rollback { reason, outcome } => self.rollback(reason, outcome).await?,
        };
        self.emit(Event::RunEnded { outcome, reason })?;
        for sink in &mut self.parts.sinks {
            sink.finish();
        }
        Ok(outcome)
    }

    async fn preflight(&mut self) -> Result<Flow, EngineError> {
        let plan = self.plan;
        for (index, item) in plan.preflight.iter().enumerate() {
            let failure = if let Some(probe) = &item.probe {
                self.preflight_probe(probe, item).await?
            } else {
                let step = Step {
                    name: Some(item.name.clone()),
                    run: item.run.clone(),
                    http: item.http.clone(),
                    env: std::collections::BTreeMap::new(),
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
                            "preflight `{}` failed: {reason}; no traffic moved",
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
        Ok(match verdict {
            Verdict::Pass => None,
            Verdict::Failed { reason, .. } | Verdict::Errors { reason, .. } => Some(reason),
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
                let until = self.now() + chrono::Duration::from_std(backoff).unwrap_or_default();
                self.parts.clock.sleep_until(until).await;
            }
            self.emit(Event::StepStarted {
                phase: context.phase,
                stage: context.stage.map(str::to_owned),
                index: context.index,
                name: name.clone(),
                command: command.clone(),
                attempt,
            })?;
            let started = std::time::Instant::now();
            let result = self.parts.steps.run(step, context).await;
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
        loop {
            let clock = Arc::clone(&self.parts.clock);
            match self.parts.control.wait(clock.as_ref(), deadline).await {
                None => return Ok(None),
                Some(Control::Abort { by, reason }) => return self.aborted(&by, &reason).map(Some),
                Some(Control::Approve { .. }) => {
                    if self.now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn aborted(&mut self, by: &str, reason: &str) -> Result<Flow, EngineError> {
        self.emit(Event::AbortRequested {
            by: by.to_owned(),
            reason: reason.to_owned(),
        })?;
        Ok(Flow::Rollback {
            reason: format!("aborted by {by}: {reason}"),
            outcome: Outcome::Aborted,
        })
    }

    async fn stage(&mut self, index: usize, stage: &'p Stage) -> Result<Flow, EngineError> {
        let defaults = self.plan.defaults.as_ref();
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
        self.emit(Event::StageStarted {
            stage: stage.name.clone(),
            index,
            traffic: stage.traffic,
        })?;
        let started = self.now();
        self.streaks.reset();
        self.newest.clear();
        for (i, step) in stage.effective_steps(defaults).iter().enumerate() {
            let context = StepContext {
                phase: Phase::Stage,
                stage: Some(&stage.name),
                traffic: stage.traffic,
                index: i,
            };
            if let Err(reason) = self.step(step, context).await? {
                return Ok(Flow::Rollback {
                    reason,
                    outcome: Outcome::RolledBack,
                });
            }
        }
        let bake = stage.bake.as_duration();
        for offset in check_offsets(stage, defaults) {
            if let Some(flow) = self.wait(at(started, offset)).await? {
                return Ok(flow);
            }
            let flow = self.check(stage, started).await?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        if let Some(flow) = self.wait(at(started, bake)).await? {
            return Ok(flow);
        }
        let flow = self.end_gates(stage, started).await?;
        if !matches!(flow, Flow::Next) {
            return Ok(flow);
        }
        if let Some(approval) = stage.approval {
            let deadline = approval.timeout.map(|t| at(self.now(), t.as_duration()));
            self.emit(Event::ApprovalRequested {
                stage: stage.name.clone(),
                deadline,
            })?;
            let flow = self
                .wait_for_person(
                    stage,
                    started,
                    deadline,
                    approval.on_timeout.unwrap_or(Action::Rollback),
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
        let bake = stage.bake.as_duration();
        let scheduled_at_end = check_offsets(stage, defaults).last() == Some(&bake);
        if !scheduled_at_end && stage.effective_checks(defaults).is_some() {
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
                reason,
            })?;
            return Box::pin(self.wait_for_person(stage, started, None, Action::Pause)).await;
        }
        Ok(Flow::Next)
    }

    /// Waits for a person's approval while the stage's `every_check` gates keep running. At
    /// `deadline` (if any) takes `on_timeout`.
    async fn wait_for_person(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        deadline: Option<DateTime<Utc>>,
        on_timeout: Action,
    ) -> Result<Flow, EngineError> {
        let now = self.now();
        self.parts.control.person_needed(&stage.name, now);
        if !self.parts.control.can_answer() {
            return Ok(Flow::End {
                outcome: Outcome::Waiting,
                reason: format!(
                    "stage `{}` waits for a person: `ion-plan approve` or `ion-plan abort`",
                    stage.name
                ),
            });
        }
        let cadence = cadence(stage, self.plan.defaults.as_ref());
        let mut deadline = deadline;
        let mut next_check = cadence.map(|c| at(now, c));
        loop {
            let until = match (next_check, deadline) {
                (Some(c), Some(d)) => c.min(d),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => DateTime::<Utc>::MAX_UTC,
            };
            let clock = Arc::clone(&self.parts.clock);
            match self.parts.control.wait(clock.as_ref(), until).await {
                Some(Control::Abort { by, reason }) => return self.aborted(&by, &reason),
                Some(Control::Approve { by, stage: named }) => {
                    if named.as_ref().is_some_and(|n| n != &stage.name) {
                        continue;
                    }
                    self.emit(if on_timeout == Action::Pause && deadline.is_none() {
                        Event::Resumed {
                            stage: stage.name.clone(),
                            by,
                        }
                    } else {
                        Event::Approved {
                            stage: stage.name.clone(),
                            by,
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
                return Ok(Flow::End {
                    outcome: Outcome::Waiting,
                    reason: format!(
                        "stage `{}` waits for a person who never answers",
                        stage.name
                    ),
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
    ) -> Result<(Outcome, Option<String>), EngineError> {
        self.emit(Event::RollbackStarted {
            reason: reason.clone(),
        })?;
        let plan = self.plan;
        for (index, step) in plan.rollback.iter().enumerate() {
            let context = StepContext {
                phase: Phase::Rollback,
                stage: None,
                traffic: 0.0,
                index,
            };
            if let Err(failure) = self.step(step, context).await? {
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
    start + chrono::Duration::from_std(offset).unwrap_or(chrono::Duration::MAX)
}

/// When a stage's checks run, as offsets from its start: `at` offsets and `every` ticks within
/// the bake, sorted, each once.
pub fn check_offsets(
    stage: &Stage,
    defaults: Option<&crate::plan::model::StageDefaults>,
) -> Vec<Duration> {
    let Some(checks) = stage.effective_checks(defaults) else {
        return Vec::new();
    };
    let bake = stage.bake.as_duration();
    let mut offsets: Vec<Duration> = checks
        .at
        .iter()
        .map(|d| d.as_duration())
        .filter(|d| *d <= bake)
        .collect();
    if let Some(every) = checks
        .every
        .map(super::super::plan::units::PlanDuration::as_duration)
        .filter(|e| !e.is_zero())
    {
        let mut t = every;
        while t <= bake {
            offsets.push(t);
            t += every;
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    offsets
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
