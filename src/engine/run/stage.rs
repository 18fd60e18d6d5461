//! A stage in the run loop: enter it (window, traffic), run its steps, bake (checks on time,
//! `every_check` gates, then the `at: end` gates), and wait for a person when asked to. A
//! resumed stage goes through the same path from its [`Cursor`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::engine::gates::{self, CompiledGate, Verdict};
use crate::engine::run::steps::StepEnd;
use crate::engine::run::{Engine, EngineError, Go, Halt, at};
use crate::engine::timeline;
use crate::engine::{CheckContext, Control, StepContext, WaitFor};
use crate::event::state::{StageProgress, StepStatus};
use crate::event::{Event, Mode, Outcome, Phase};
use crate::plan::model::{Action, GateAt, Stage};
use crate::probe::Sample;

/// Where a stage stands, from its journal. The default is a stage not begun: a fresh run and
/// a resumed one go through the same steps, each skipping what the cursor says is done.
#[derive(Debug, Clone, Default)]
pub(super) struct Cursor {
    /// When the stage started (`None`: it has not).
    started: Option<DateTime<Utc>>,
    steps: BTreeMap<usize, StepStatus>,
    /// The recorded checks' samples, in order: they rebuild the streaks.
    checks: Vec<HashMap<String, Sample>>,
    /// Seconds since the stage started, of the last recorded check.
    last_offset: Option<f64>,
    /// Paused, why, and the journal sequence number of the pause.
    paused: Option<(String, u64)>,
    bake_ended: bool,
    /// Approval asked for: its deadline, and the sequence number of the request.
    approval: Option<(Option<DateTime<Utc>>, u64)>,
    approved: bool,
}

impl Cursor {
    pub(super) fn of(progress: Option<&StageProgress>) -> Cursor {
        let Some(p) = progress else {
            return Cursor::default();
        };
        Cursor {
            started: Some(p.started),
            steps: p.steps.clone(),
            checks: p.checks.iter().map(|c| c.samples.clone()).collect(),
            last_offset: p.checks.last().map(|c| c.offset),
            paused: p
                .paused
                .as_ref()
                .map(|(_, why)| (why.clone(), p.paused_seq)),
            bake_ended: p.bake_ended,
            approval: p.approval.map(|(_, deadline)| (deadline, p.approval_seq)),
            approved: p.approved,
        }
    }
}

/// A wait for a person: what ends it, and what to say while it lasts.
struct PersonWait {
    deadline: Option<DateTime<Utc>>,
    on_timeout: Action,
    why: String,
    /// The journal sequence number of the event that opened it.
    seq: u64,
}

impl PersonWait {
    fn pause(stage: &Stage, reason: &str, seq: u64) -> PersonWait {
        PersonWait {
            deadline: None,
            on_timeout: Action::Pause,
            why: format!("stage `{}` is paused: {reason}", stage.name),
            seq,
        }
    }

    /// A pause (not an approval): it waits as long as it takes, and a pre-approval does not
    /// end it.
    fn paused(&self) -> bool {
        self.on_timeout == Action::Pause && self.deadline.is_none()
    }
}

impl<'p> Engine<'p> {
    /// Runs a stage, or takes it up where `cursor` says it stands.
    pub(super) async fn stage(&mut self, index: usize, stage: &'p Stage, cursor: Cursor) -> Go {
        let started = match cursor.started {
            Some(started) => started,
            None => self.enter(index, stage).await?,
        };
        self.streaks.reset();
        self.newest.clear();
        self.stage_steps(stage, &cursor.steps).await?;
        // Streaks come back exactly: the recorded samples go through the gates again.
        for samples in &cursor.checks {
            self.replay_check(stage, samples);
        }
        if let Some((reason, seq)) = &cursor.paused {
            self.parts.control.person_needed(&stage.name, self.now());
            self.wait_for_person(stage, started, PersonWait::pause(stage, reason, *seq))
                .await?;
        }
        if !cursor.bake_ended {
            self.bake(stage, started, &cursor).await?;
        }
        if !cursor.approved {
            self.approval(stage, started, &cursor).await?;
        }
        self.emit(Event::StageCompleted {
            stage: stage.name.clone(),
        })?;
        Ok(())
    }

    /// Waits for the deploy window, then moves the traffic: returns when the stage started.
    async fn enter(&mut self, index: usize, stage: &Stage) -> Go<DateTime<Utc>> {
        self.abort_first()?;
        let (start, why) = self.start_rule.next_start(self.now());
        if let Some(reason) = why {
            self.emit(Event::StageWaiting {
                stage: stage.name.clone(),
                until: start,
                reason,
            })?;
            self.wait(start).await?;
            self.abort_first()?;
        }
        self.emit(Event::StageStarted {
            stage: stage.name.clone(),
            index,
            traffic: stage.traffic,
        })?;
        Ok(self.now())
    }

    /// The stage's steps that are not done; a failed one rolls back.
    async fn stage_steps(&mut self, stage: &'p Stage, done: &BTreeMap<usize, StepStatus>) -> Go {
        for (i, step) in stage
            .effective_steps(self.plan.defaults.as_ref())
            .iter()
            .enumerate()
        {
            let recorded = done.get(&i);
            if !recorded.is_some_and(StepStatus::done) {
                self.abort_first()?;
            }
            let context = StepContext {
                phase: Phase::Stage,
                stage: Some(&stage.name),
                traffic: stage.traffic,
                index: i,
            };
            if let StepEnd::Failed(reason) = self.resumable_step(step, context, recorded).await? {
                return Err(Halt::Rollback {
                    reason,
                    outcome: Outcome::RolledBack,
                });
            }
        }
        Ok(())
    }

    /// The bake: checks on time, then the `at: end` gates. A resumed stage records the checks
    /// that fell due while nothing ran (a count and a range, not back-filled) and checks once
    /// at once (after the bake, that is the check the `at: end` gates read).
    async fn bake(&mut self, stage: &'p Stage, started: DateTime<Utc>, cursor: &Cursor) -> Go {
        let defaults = self.plan.defaults.as_ref();
        let mut last_offset = cursor.last_offset;
        if cursor.started.is_some() {
            let elapsed = (self.now() - started).to_std().unwrap_or_default();
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
            self.check(stage, started).await?;
        }
        while let Some(offset) = timeline::next_check(stage, defaults, last_offset) {
            self.wait(at(started, offset)).await?;
            self.check(stage, started).await?;
            last_offset = Some(offset.as_secs_f64());
        }
        self.wait(at(started, stage.bake.as_duration())).await?;
        self.end_gates(stage, started).await?;
        self.emit(Event::BakeEnded {
            stage: stage.name.clone(),
        })?;
        Ok(())
    }

    /// Asks for the stage's approval (or takes up the request the journal holds) and waits
    /// for it; the stage's guards keep checking meanwhile.
    async fn approval(&mut self, stage: &'p Stage, started: DateTime<Utc>, cursor: &Cursor) -> Go {
        let Some(approval) = stage.approval else {
            return Ok(());
        };
        let (deadline, seq) = if let Some((deadline, seq)) = cursor.approval {
            self.parts.control.person_needed(&stage.name, self.now());
            if cursor.bake_ended {
                // Taking up a stage that waits for approval: its guards check at once.
                self.check(stage, started).await?;
            }
            (deadline, seq)
        } else {
            let deadline = approval.timeout.map(|t| at(self.now(), t.as_duration()));
            self.emit(Event::ApprovalRequested {
                stage: stage.name.clone(),
                deadline,
            })?;
            self.parts.control.person_needed(&stage.name, self.now());
            (deadline, self.seq)
        };
        let wait = PersonWait {
            deadline,
            on_timeout: approval.on_timeout.unwrap_or(Action::Rollback),
            why: format!("stage `{}` waits for approval", stage.name),
            seq,
        };
        self.wait_for_person(stage, started, wait).await
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

    /// One check: the stage's probes concurrently, then its `every_check` gates. A stage
    /// without checks has nothing to do here.
    async fn check(&mut self, stage: &'p Stage, started: DateTime<Utc>) -> Go {
        let defaults = self.plan.defaults.as_ref();
        let Some(checks) = stage.effective_checks(defaults) else {
            return Ok(());
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
            return Ok(self.plan_gates(stage, GateAt::EveryCheck)?);
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
            self.evaluated(stage, number, evaluations)?;
            verdicts.push((gate_name, verdict));
        }
        self.act(stage, started, verdicts).await
    }

    fn evaluated(
        &mut self,
        stage: &Stage,
        check: u32,
        evaluations: Vec<crate::event::Evaluation>,
    ) -> Result<(), EngineError> {
        for evaluation in evaluations {
            self.emit(Event::Evaluated {
                stage: Some(stage.name.clone()),
                check,
                evaluation,
            })?;
        }
        Ok(())
    }

    /// `at: end` gates, on the newest samples; a check runs first if none is recent enough
    /// (the bake's end had no check scheduled).
    async fn end_gates(&mut self, stage: &'p Stage, started: DateTime<Utc>) -> Go {
        let defaults = self.plan.defaults.as_ref();
        let end_gates: Vec<CompiledGate> = stage
            .effective_gates(defaults)
            .iter()
            .filter_map(|n| self.gates.get(n))
            .filter(|g| g.at == GateAt::End)
            .cloned()
            .collect();
        if end_gates.is_empty() {
            return Ok(());
        }
        if !timeline::check_at_bake_end(stage, defaults) {
            self.check(stage, started).await?;
        }
        if self.info.mode == Mode::DryRun {
            return Ok(self.plan_gates(stage, GateAt::End)?);
        }
        let number = self.checks;
        let mut verdicts = Vec::new();
        for gate in &end_gates {
            let (evaluations, verdict) = gates::at_end(gate, &self.newest);
            self.evaluated(stage, number, evaluations)?;
            verdicts.push((gate.name.clone(), verdict));
        }
        self.act(stage, started, verdicts).await
    }

    /// A dry run shows which gates would be evaluated, and on what.
    fn plan_gates(&mut self, stage: &Stage, at: GateAt) -> Result<(), EngineError> {
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
                stage: Some(stage.name.clone()),
                gate,
                conditions,
            })?;
        }
        Ok(())
    }

    /// Takes the actions of failed gates: rollback over pause over warn.
    async fn act(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        verdicts: Vec<(String, Verdict)>,
    ) -> Go {
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
            return Err(Halt::Rollback {
                reason,
                outcome: Outcome::RolledBack,
            });
        }
        if let Some(reason) = pause {
            self.emit(Event::Paused {
                stage: stage.name.clone(),
                reason: reason.clone(),
            })?;
            let wait = PersonWait::pause(stage, &reason, self.seq);
            self.parts.control.person_needed(&stage.name, self.now());
            return Box::pin(self.wait_for_person(stage, started, wait)).await;
        }
        Ok(())
    }

    /// Waits for a person's answer while the stage's `every_check` gates keep running. At the
    /// wait's deadline (if any) takes `on_timeout`; a pause waits as long as it takes.
    async fn wait_for_person(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        wait: PersonWait,
    ) -> Go {
        self.parts.control.waiting(Some(WaitFor {
            stage: &stage.name,
            paused: wait.paused(),
            seq: wait.seq,
        }));
        let went = self.wait_for_answer(stage, started, wait).await;
        self.parts.control.waiting(None);
        went
    }

    async fn wait_for_answer(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        mut wait: PersonWait,
    ) -> Go {
        let paused = wait.paused();
        let cadence = timeline::cadence(stage, self.plan.defaults.as_ref());
        let mut next_check = cadence.map(|c| at(self.now(), c));
        loop {
            match self.answer(&wait, next_check).await? {
                Some(Control::Abort {
                    by,
                    reason,
                    request,
                }) => return Err(self.aborted(&by, &reason, request)),
                Some(Control::Approve {
                    by,
                    stage: named,
                    request,
                }) if named.as_ref().is_none_or(|n| n == &stage.name) => {
                    let stage = stage.name.clone();
                    self.emit(if paused {
                        Event::Resumed { stage, by, request }
                    } else {
                        Event::Approved { stage, by, request }
                    })?;
                    return Ok(());
                }
                Some(Control::Approve { .. }) => continue,
                None => {}
            }
            let now = self.now();
            if wait.deadline.is_some_and(|d| now >= d) {
                self.emit(Event::ApprovalTimedOut {
                    stage: stage.name.clone(),
                    action: wait.on_timeout,
                })?;
                match wait.on_timeout {
                    Action::Rollback => {
                        return Err(Halt::Rollback {
                            reason: format!("approval of stage `{}` timed out", stage.name),
                            outcome: Outcome::RolledBack,
                        });
                    }
                    Action::Warn => return Ok(()),
                    Action::Pause => wait.deadline = None,
                }
            }
            if next_check.is_some_and(|c| now >= c) {
                next_check = cadence.map(|c| at(now, c));
                Box::pin(self.check(stage, started)).await?;
            }
            if next_check.is_none() && wait.deadline.is_none() && self.parts.clock.is_simulated() {
                // Simulated time with nothing left to happen: nobody will ever answer.
                return Err(Halt::Suspend {
                    outcome: Outcome::Waiting,
                    reason: format!("{}, and nobody answers", wait.why),
                    next: None,
                });
            }
        }
    }

    /// The next answer, if one comes before the next check or the deadline. Where nobody can
    /// answer in this run (`--once`, no terminal), takes one already waiting or suspends.
    async fn answer(
        &mut self,
        wait: &PersonWait,
        next_check: Option<DateTime<Utc>>,
    ) -> Go<Option<Control>> {
        if self.options.once || !self.parts.control.can_answer() {
            return match self.parts.control.poll() {
                Some(control) => Ok(Some(control)),
                None if wait.deadline.is_some_and(|d| self.now() >= d) => Ok(None),
                None => Err(Halt::Suspend {
                    outcome: Outcome::Waiting,
                    reason: format!(
                        "{}: `ion-plan approve` or `ion-plan abort`, then `ion-plan run` again",
                        wait.why
                    ),
                    next: wait.deadline,
                }),
            };
        }
        let until = match (next_check, wait.deadline) {
            (Some(c), Some(d)) => c.min(d),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => DateTime::<Utc>::MAX_UTC,
        };
        let clock = Arc::clone(&self.parts.clock);
        Ok(self.parts.control.wait(clock.as_ref(), until).await)
    }
}
