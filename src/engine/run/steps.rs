//! Steps in the run loop: preflight, a step with its retries (journaled before its effect
//! begins), a step taken up after a crash, and the rollback.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::gates::{self, CompiledGate, Verdict};
use crate::engine::pool::Data;
use crate::engine::run::{Engine, EngineError, Go, Halt};
use crate::engine::{Announce, CheckContext, StepContext, StepResult};
use crate::event::state::{RollbackProgress, StepStatus};
use crate::event::{Event, Mode, Outcome, Phase};
use crate::plan::model::{Action, GateAt, Insufficient, PreflightItem, Step};
use crate::plan::units::PlanDuration;
use crate::process;

/// How a step ended, once its retries are spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepEnd {
    Done,
    /// It failed; why.
    Failed(String),
}

impl Engine<'_> {
    /// Preflight: every item that has not passed yet, in order; the first failure ends the run
    /// before any traffic moves.
    pub(super) async fn preflight(&mut self, passed: &HashSet<String>) -> Go {
        let plan = self.plan;
        for (index, item) in plan.preflight.iter().enumerate() {
            if passed.contains(&item.name) {
                continue;
            }
            self.abort_first()?;
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
                match self.step(&step, context).await? {
                    StepEnd::Done => None,
                    StepEnd::Failed(reason) => Some(reason),
                }
            };
            let Some(reason) = failure else {
                self.emit(Event::PreflightPassed {
                    name: item.name.clone(),
                })?;
                continue;
            };
            self.emit(Event::PreflightFailed {
                name: item.name.clone(),
                reason: reason.clone(),
            })?;
            return Err(Halt::End {
                outcome: Outcome::PreflightFailed,
                reason: format!(
                    "preflight check `{}` failed: {reason}; no traffic moved",
                    item.name
                ),
            });
        }
        Ok(())
    }

    /// A preflight probe must succeed and its `require` conditions hold; returns why not.
    async fn preflight_probe(
        &mut self,
        probe: &str,
        item: &PreflightItem,
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
                .map(|c| gates::compile_condition(c, Some(self.plan)))
                .collect::<Result<_, _>>()
                .map_err(EngineError::Plan)?,
            compares: Vec::new(),
            insufficient: Insufficient::default(),
        };
        let samples = HashMap::from([(probe.to_owned(), sample)]);
        let (evaluations, verdict) = gates::at_end(&gate, &samples, Data::Check(&samples));
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
            Verdict::Errors { reason, .. } | Verdict::Insufficient { reason } => Some(
                reason
                    .strip_prefix(&title)
                    .map_or_else(|| reason.clone(), str::to_owned),
            ),
        })
    }

    /// Runs a step with its retries. Outside the rollback, an abort that comes in between two
    /// attempts comes first: no further attempt.
    pub(super) async fn step(&mut self, step: &Step, context: StepContext<'_>) -> Go<StepEnd> {
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
                if context.phase != Phase::Rollback {
                    self.abort_first()?;
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
                return Ok(StepEnd::Done);
            }
            last = result.detail;
        }
        Ok(StepEnd::Failed(format!(
            "step `{name}` failed after {attempts} attempt{}: {last}",
            if attempts == 1 { "" } else { "s" }
        )))
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
    pub(super) async fn resumable_step(
        &mut self,
        step: &Step,
        context: StepContext<'_>,
        recorded: Option<&StepStatus>,
    ) -> Go<StepEnd> {
        let Some(recorded) = recorded else {
            return self.step(step, context).await;
        };
        if recorded.done() {
            return Ok(StepEnd::Done);
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
                return Ok(StepEnd::Done);
            }
            let place = context
                .stage
                .map_or_else(|| context.phase.to_string(), |s| format!("stage `{s}`"));
            return Err(Halt::Fatal(EngineError::Conflict(format!(
                "step {} of {place} (`{}`) started at {} and never finished, and it is not \
                 idempotent: it may or may not have taken effect. Check, then run again with \
                 `--retry-step` to run it again or `--skip-step` if it took effect.",
                context.index + 1,
                recorded.command,
                recorded
                    .started
                    .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            ))));
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

    /// Runs the rollback steps in order. A failed rollback step stops the run `failed`, listing
    /// what is left to do by hand.
    pub(super) async fn rollback(
        &mut self,
        reason: String,
        outcome: Outcome,
        resumed: Option<&RollbackProgress>,
    ) -> Result<(Outcome, Option<String>), EngineError> {
        let done: BTreeMap<usize, StepStatus> =
            resumed.map(|r| r.steps.clone()).unwrap_or_default();
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
            let failure = match self.resumable_step(step, context, done.get(&index)).await {
                Ok(StepEnd::Done) => continue,
                Ok(StepEnd::Failed(failure)) => failure,
                Err(halt) => return Err(halt.into_fatal()),
            };
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
        self.emit(Event::RolledBack {})?;
        Ok((outcome, Some(reason)))
    }
}

impl Halt {
    /// In the rollback nothing but a fatal error stops a step (aborts are not taken there);
    /// anything else would be a bug, and is reported as a conflict rather than lost.
    fn into_fatal(self) -> EngineError {
        match self {
            Halt::Fatal(error) => error,
            other => EngineError::Conflict(format!("the rollback stopped unexpectedly: {other:?}")),
        }
    }
}
