//! A stage in the run loop: enter it (window, traffic), run its steps, bake (checks on time,
//! `every_check` gates, then the `at: end` gates), and wait for a person when asked to. A
//! resumed stage goes through the same path from its [`Cursor`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::engine::compare::CompiledCompare;
use crate::engine::gates::{CompiledGate, Verdict};
use crate::engine::pool::Pool;
use crate::engine::run::person::PersonWait;
use crate::engine::run::steps::StepEnd;
use crate::engine::run::{Engine, EngineError, Go, Halt, Woke, at};
use crate::engine::timeline;
use crate::engine::{BakeFor, CheckContext, StepContext};
use crate::event::state::{StageProgress, StepStatus};
use crate::event::{Event, Mode, Outcome, Phase};
use crate::plan::model::{Action, GateAt, Stage};
use crate::probe::Sample;
use crate::stats::Needed;

/// Where a stage stands, from its journal. The default is a stage not begun: a fresh run and
/// a resumed one go through the same steps, each skipping what the cursor says is done.
#[derive(Debug, Clone, Default)]
pub(super) struct Cursor {
    /// When the stage started (`None`: it has not), and the sequence number a promotion of
    /// its bake names: its `stage_started`, or its newest `paused` (a promotion given before a
    /// pause is not taken after it).
    started: Option<DateTime<Utc>>,
    started_seq: u64,
    /// The bake was extended for evidence, until then.
    extended_until: Option<DateTime<Utc>>,
    /// A person promoted the stage: the bake is over.
    promoted: bool,
    /// The gate whose failure paused the stage last.
    paused_by: Option<String>,
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
            started_seq: p.started_seq.max(p.paused_seq),
            extended_until: p.extended_until,
            promoted: p.promoted,
            paused_by: p.paused_by.clone(),
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

impl<'p> Engine<'p> {
    /// Runs a stage, or takes it up where `cursor` says it stands.
    pub(super) async fn stage(&mut self, index: usize, stage: &'p Stage, cursor: Cursor) -> Go {
        let started = match cursor.started {
            Some(started) => {
                self.stage_seq = cursor.started_seq;
                started
            }
            None => self.enter(index, stage).await?,
        };
        self.streaks.reset();
        self.newest.clear();
        self.pool = Pool::default();
        self.last_check = cursor
            .last_offset
            .map(|offset| at(started, std::time::Duration::from_secs_f64(offset.max(0.0))));
        self.stage_steps(stage, &cursor.steps).await?;
        // Streaks come back exactly: the recorded samples go through the gates again.
        for samples in &cursor.checks {
            self.replay_check(stage, samples);
        }
        let mut bake_ended = cursor.bake_ended;
        if let Some((reason, seq)) = &cursor.paused {
            self.parts.control.person_needed(&stage.name, self.now());
            self.wait_for_person(stage, started, PersonWait::pause(stage, reason, *seq))
                .await?;
            // An `at: end` gate pauses after the bake (violated, short of evidence, or on a
            // promotion): the person's answer ends the bake, as in the runner that paused.
            let by_end_gate = cursor
                .paused_by
                .as_ref()
                .and_then(|gate| self.gates.get(gate))
                .is_some_and(|gate| gate.at == GateAt::End);
            if by_end_gate && !bake_ended {
                self.bake_ended(stage, false)?;
                bake_ended = true;
            }
        }
        if !bake_ended {
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
    pub(super) async fn enter(&mut self, index: usize, stage: &Stage) -> Go<DateTime<Utc>> {
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
        self.stage_seq = self.seq;
        if self.info.mode == Mode::DryRun {
            self.plan_evidence(stage)?;
        }
        Ok(self.now())
    }

    /// A dry run shows what each `confidence` condition needs and what the stage gathers.
    pub(super) fn plan_evidence(&mut self, stage: &Stage) -> Result<(), EngineError> {
        for planned in crate::plan::evidence::stage_evidence(self.plan, stage) {
            self.emit(Event::EvidencePlanned {
                stage: stage.name.clone(),
                gate: planned.gate,
                condition: planned.check,
                needed: match planned.needed {
                    Needed::Count(n) => Some(n),
                    Needed::Never => None,
                },
                gathered: planned.gathered,
                per_check: planned.per_check,
                checks: planned.checks,
                extension_checks: planned.extension_checks,
                unit: planned.unit.to_owned(),
            })?;
        }
        Ok(())
    }

    /// The stage's steps that are not done; a failed one rolls back.
    pub(super) async fn stage_steps(
        &mut self,
        stage: &'p Stage,
        done: &BTreeMap<usize, StepStatus>,
    ) -> Go {
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
    /// at once (after the bake, that is the check the `at: end` gates read). A promotion ends
    /// the bake at once; `early` may end it once its end gates pass.
    pub(super) async fn bake(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        cursor: &Cursor,
    ) -> Go {
        if cursor.promoted {
            // The promotion was journaled before the runner stopped: it still ends the bake.
            self.promotion_judged(stage, started).await?;
            return self.bake_ended(stage, false);
        }
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
            if cursor.extended_until.is_none() {
                self.check(stage, started).await?;
                if self.ended_early(stage, started)? {
                    return self.bake_ended(stage, true);
                }
            }
        }
        while let Some(offset) = timeline::next_check(stage, defaults, last_offset) {
            if let Woke::Promoted {
                by,
                reason,
                request,
            } = self.bake_wait(stage, at(started, offset)).await?
            {
                self.promoted(stage, started, by, reason, request).await?;
                return self.bake_ended(stage, false);
            }
            self.check(stage, started).await?;
            last_offset = Some(offset.as_secs_f64());
            if self.ended_early(stage, started)? {
                return self.bake_ended(stage, true);
            }
        }
        if let Woke::Promoted {
            by,
            reason,
            request,
        } = self
            .bake_wait(stage, at(started, stage.bake.as_duration()))
            .await?
        {
            self.promoted(stage, started, by, reason, request).await?;
            return self.bake_ended(stage, false);
        }
        self.end_gates(stage, started, cursor.extended_until)
            .await?;
        self.bake_ended(stage, false)
    }

    pub(super) fn bake_ended(&mut self, stage: &Stage, early: bool) -> Go {
        self.emit(Event::BakeEnded {
            stage: stage.name.clone(),
            early,
        })?;
        Ok(())
    }

    /// Waits until `deadline` in the stage's bake, where a promotion for it ends the wait.
    pub(super) async fn bake_wait(&mut self, stage: &Stage, deadline: DateTime<Utc>) -> Go<Woke> {
        self.parts.control.baking(Some(BakeFor {
            stage: &stage.name,
            seq: self.stage_seq,
        }));
        let woke = self.wait_until(deadline, true).await;
        self.parts.control.baking(None);
        woke
    }

    /// Asks for the stage's approval (or takes up the request the journal holds) and waits
    /// for it; the stage's guards keep checking meanwhile.
    pub(super) async fn approval(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        cursor: &Cursor,
    ) -> Go {
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
    pub(super) fn replay_check(&mut self, stage: &Stage, samples: &HashMap<String, Sample>) {
        for (probe, sample) in samples {
            self.newest.insert(probe.clone(), sample.clone());
        }
        // As a live check does: pooled first, so a compared series includes this check.
        self.pool_check(stage, samples);
        for name in stage.effective_gates(self.plan.defaults.as_ref()) {
            if let Some(gate) = self.gates.get(name).filter(|g| g.at == GateAt::EveryCheck) {
                self.streaks.every_check(gate, samples, &self.pool);
            }
        }
    }

    /// Adds a check's samples to the stage's pool: for its end gates' `confidence` conditions,
    /// and every gate's compared series.
    pub(super) fn pool_check(&mut self, stage: &Stage, samples: &HashMap<String, Sample>) {
        let gates: Vec<&CompiledGate> = stage
            .effective_gates(self.plan.defaults.as_ref())
            .iter()
            .filter_map(|name| self.gates.get(name))
            .collect();
        let conditions = gates
            .iter()
            .filter(|gate| gate.at == GateAt::End)
            .flat_map(|gate| gate.conditions.iter());
        self.pool.add(conditions, samples);
        let series = gates
            .iter()
            .flat_map(|gate| &gate.compares)
            .filter(|c| !c.distribution)
            .flat_map(CompiledCompare::metrics);
        self.pool.add_series(series, samples);
    }

    /// One check: the stage's probes concurrently, then its `every_check` gates. A stage
    /// without checks has nothing to do here.
    pub(super) async fn check(&mut self, stage: &'p Stage, started: DateTime<Utc>) -> Go {
        let defaults = self.plan.defaults.as_ref();
        let Some(checks) = stage.effective_checks(defaults) else {
            return Ok(());
        };
        self.checks += 1;
        let number = self.checks;
        let now = self.now();
        self.last_check = Some(now);
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
        self.pool_check(stage, &current);
        let mut verdicts = Vec::new();
        for name in stage.effective_gates(defaults) {
            let Some(gate) = self.gates.get(name).filter(|g| g.at == GateAt::EveryCheck) else {
                continue;
            };
            let (evaluations, verdict) = self.streaks.every_check(gate, &current, &self.pool);
            let gate_name = gate.name.clone();
            self.evaluated(stage, number, evaluations)?;
            verdicts.push((gate_name, verdict));
        }
        self.act(stage, started, verdicts).await
    }

    pub(super) fn evaluated(
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

    /// A dry run shows which gates would be evaluated, and on what.
    pub(super) fn plan_gates(&mut self, stage: &Stage, at: GateAt) -> Result<(), EngineError> {
        let names = stage.effective_gates(self.plan.defaults.as_ref());
        let planned: Vec<(String, Vec<String>)> = names
            .iter()
            .filter_map(|n| self.gates.get(n))
            .filter(|g| g.at == at)
            .map(|g| (g.name.clone(), g.texts()))
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
    pub(super) async fn act(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        verdicts: Vec<(String, Verdict)>,
    ) -> Go {
        let mut pause = None;
        let mut rollback = None;
        for (gate, verdict) in verdicts {
            let (action, reason) = match verdict {
                // The bake's extension decides on evidence short of an interval's.
                Verdict::Pass | Verdict::Insufficient { .. } => continue,
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
            // A promotion given before the pause is not one for the bake that goes on after it.
            self.stage_seq = self.seq;
            let wait = PersonWait::pause(stage, &reason, self.seq);
            self.parts.control.person_needed(&stage.name, self.now());
            return Box::pin(self.wait_for_person(stage, started, wait)).await;
        }
        Ok(())
    }
}
