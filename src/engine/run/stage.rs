//! A stage in the run loop: enter it (window, traffic), run its steps, bake (checks on time,
//! `every_check` gates, then the `at: end` gates), and wait for a person when asked to. A
//! resumed stage goes through the same path from its [`Cursor`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::engine::gates::{self, Verdict};
use crate::engine::pool::{Data, Pool};
use crate::engine::run::steps::StepEnd;
use crate::engine::run::{Engine, EngineError, Go, Halt, Woke, at};
use crate::engine::timeline;
use crate::engine::{BakeFor, CheckContext, Control, StepContext, WaitFor};
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
        self.stage_seq = self.seq;
        if self.info.mode == Mode::DryRun {
            self.plan_evidence(stage)?;
        }
        Ok(self.now())
    }

    /// A dry run shows what each `confidence` condition needs and what the stage gathers.
    fn plan_evidence(&mut self, stage: &Stage) -> Result<(), EngineError> {
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
    /// at once (after the bake, that is the check the `at: end` gates read). A promotion ends
    /// the bake at once; `early` may end it once its end gates pass.
    async fn bake(&mut self, stage: &'p Stage, started: DateTime<Utc>, cursor: &Cursor) -> Go {
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

    fn bake_ended(&mut self, stage: &Stage, early: bool) -> Go {
        self.emit(Event::BakeEnded {
            stage: stage.name.clone(),
            early,
        })?;
        Ok(())
    }

    /// Waits until `deadline` in the stage's bake, where a promotion for it ends the wait.
    async fn bake_wait(&mut self, stage: &Stage, deadline: DateTime<Utc>) -> Go<Woke> {
        self.parts.control.baking(Some(BakeFor {
            stage: &stage.name,
            seq: self.stage_seq,
        }));
        let woke = self.wait_until(deadline, true).await;
        self.parts.control.baking(None);
        woke
    }

    /// With `early`, from `early.after` on: judges the end gates on what the stage has; `true`
    /// (the bake may end) the first time every one of them passes.
    fn ended_early(&mut self, stage: &Stage, started: DateTime<Utc>) -> Go<bool> {
        let Some(early) = stage.early else {
            return Ok(false);
        };
        let elapsed = (self.now() - started).to_std().unwrap_or_default();
        if elapsed < early.after.as_duration() || self.info.mode == Mode::DryRun {
            return Ok(false);
        }
        let verdicts = self.judge_end(stage)?;
        Ok(!verdicts.is_empty() && verdicts.iter().all(|(_, v)| *v == Verdict::Pass))
    }

    /// A person ended the bake: the end gates judge what the stage has. A violation still takes
    /// its action; evidence short of an interval's is the person's call, and the stage goes on.
    async fn promoted(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        by: String,
        reason: String,
        request: Option<String>,
    ) -> Go {
        self.emit(Event::Promoted {
            stage: stage.name.clone(),
            by,
            reason,
            request,
        })?;
        self.promotion_judged(stage, started).await
    }

    /// The end gates of a promoted stage judge what it has.
    async fn promotion_judged(&mut self, stage: &'p Stage, started: DateTime<Utc>) -> Go {
        if self.info.mode == Mode::DryRun {
            return Ok(());
        }
        let verdicts = self.judge_end(stage)?;
        let failed = verdicts
            .into_iter()
            .filter(|(_, v)| matches!(v, Verdict::Failed { .. } | Verdict::Errors { .. }))
            .collect();
        self.act(stage, started, failed).await
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
        self.pool_check(stage, samples);
    }

    /// Adds a check's samples to the stage's pool, for its end gates' `confidence` conditions.
    fn pool_check(&mut self, stage: &Stage, samples: &HashMap<String, Sample>) {
        let gates = &self.gates;
        let conditions = stage
            .effective_gates(self.plan.defaults.as_ref())
            .iter()
            .filter_map(|name| gates.get(name))
            .filter(|gate| gate.at == GateAt::End)
            .flat_map(|gate| gate.conditions.iter());
        self.pool.add(conditions, samples);
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

    /// `at: end` gates, on the newest samples (and the stage's pool, for `confidence`); a check
    /// runs first if none is recent enough (the bake's end had no check scheduled). Evidence
    /// short of an interval's takes the gates' `insufficient` policy.
    async fn end_gates(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        extended_until: Option<DateTime<Utc>>,
    ) -> Go {
        let defaults = self.plan.defaults.as_ref();
        let has_end_gates = stage
            .effective_gates(defaults)
            .iter()
            .filter_map(|n| self.gates.get(n))
            .any(|g| g.at == GateAt::End);
        if !has_end_gates {
            return Ok(());
        }
        if extended_until.is_none() && !timeline::check_at_bake_end(stage, defaults) {
            self.check(stage, started).await?;
        }
        if self.info.mode == Mode::DryRun {
            return Ok(self.plan_gates(stage, GateAt::End)?);
        }
        let verdicts = self.judge_end(stage)?;
        let (short, decided): (Vec<_>, Vec<_>) = verdicts
            .into_iter()
            .partition(|(_, v)| matches!(v, Verdict::Insufficient { .. }));
        self.act(stage, started, decided).await?;
        if short.is_empty() {
            return Ok(());
        }
        self.extend(stage, started, &short, extended_until).await
    }

    /// Judges the stage's `at: end` gates on what it has, recording every evaluation.
    fn judge_end(&mut self, stage: &Stage) -> Result<Vec<(String, Verdict)>, EngineError> {
        let judged: Vec<_> = stage
            .effective_gates(self.plan.defaults.as_ref())
            .iter()
            .filter_map(|n| self.gates.get(n))
            .filter(|g| g.at == GateAt::End)
            .map(|gate| {
                let (evaluations, verdict) =
                    gates::at_end(gate, &self.newest, Data::Pool(&self.pool));
                (gate.name.clone(), evaluations, verdict)
            })
            .collect();
        let number = self.checks;
        let mut verdicts = Vec::with_capacity(judged.len());
        for (gate, evaluations, verdict) in judged {
            self.evaluated(stage, number, evaluations)?;
            verdicts.push((gate, verdict));
        }
        Ok(verdicts)
    }

    /// End gates short of evidence (`short`) extend the bake: checks go on at the stage's
    /// cadence until the longest `insufficient.extend` is over, the end gates judged after
    /// each. The stage goes on the first time they pass, takes `on_fail` the first time one is
    /// violated, and takes the most severe `insufficient.then` when the extension runs out.
    async fn extend(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        short: &[(String, Verdict)],
        extended_until: Option<DateTime<Utc>>,
    ) -> Go {
        let policies: Vec<_> = short
            .iter()
            .filter_map(|(name, _)| self.gates.get(name).map(|g| g.insufficient))
            .collect();
        let extend = policies
            .iter()
            .map(|p| p.extend())
            .max()
            .unwrap_or_default();
        let then = policies
            .iter()
            .map(|p| p.then())
            .max_by_key(|action| match action {
                Action::Warn => 0,
                Action::Pause => 1,
                Action::Rollback => 2,
            })
            .unwrap_or(Action::Pause);
        let mut reason = short_of(short);
        let until = if let Some(until) = extended_until {
            until
        } else {
            let until = at(self.now(), extend);
            if !extend.is_zero() {
                self.emit(Event::BakeExtended {
                    stage: stage.name.clone(),
                    until,
                    reason: reason.clone(),
                })?;
            }
            until
        };
        let cadence = timeline::cadence(stage, self.plan.defaults.as_ref());
        let mut next = cadence.map(|c| self.due_after(self.last_check, c));
        while let Some(due) = next.filter(|due| *due <= until) {
            if let Woke::Promoted {
                by,
                reason,
                request,
            } = self.bake_wait(stage, due).await?
            {
                return self.promoted(stage, started, by, reason, request).await;
            }
            self.check(stage, started).await?;
            let verdicts = self.judge_end(stage)?;
            if verdicts.iter().all(|(_, v)| *v == Verdict::Pass) {
                return Ok(());
            }
            // `then` names the evidence the stage has when the extension runs out.
            reason = short_of(&verdicts);
            let failed: Vec<_> = verdicts
                .into_iter()
                .filter(|(_, v)| matches!(v, Verdict::Failed { .. } | Verdict::Errors { .. }))
                .collect();
            if !failed.is_empty() {
                return self.act(stage, started, failed).await;
            }
            next = cadence.map(|c| self.due_after(Some(due), c));
        }
        if self.now() < until
            && let Woke::Promoted {
                by,
                reason,
                request,
            } = self.bake_wait(stage, until).await?
        {
            return self.promoted(stage, started, by, reason, request).await;
        }
        let ran_out = if extend.is_zero() {
            format!("{reason} (no `insufficient.extend`)")
        } else {
            format!(
                "{reason}, after extending the bake by {}",
                crate::plan::units::format_duration(extend)
            )
        };
        let gate = short
            .first()
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        self.act(
            stage,
            started,
            vec![(
                gate,
                Verdict::Failed {
                    action: then,
                    reason: ran_out,
                },
            )],
        )
        .await
    }

    /// When an extension's next check is due: a cadence after the last one, which a resumed
    /// run (`--once` each time) finds in its journal; a check that fell due while nothing ran
    /// is due at once (one, not back-filled).
    fn due_after(
        &self,
        last: Option<DateTime<Utc>>,
        cadence: std::time::Duration,
    ) -> DateTime<Utc> {
        let now = self.now();
        match last {
            Some(last) => at(last, cadence).max(now),
            None => at(now, cadence),
        }
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
        // On simulated time with no answer to come (a scenario's `never`), the guards keep
        // checking for the stage's bake (at least an hour) and then the run stops waiting.
        let quiet_until = (!self.parts.control.may_answer()).then(|| {
            at(
                self.now(),
                stage
                    .bake
                    .as_duration()
                    .max(std::time::Duration::from_hours(1)),
            )
        });
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
                Some(Control::Approve { .. } | Control::Promote { .. }) => continue,
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
            if wait.deadline.is_none()
                && self.parts.clock.is_simulated()
                && (next_check.is_none() || quiet_until.is_some_and(|q| now >= q))
            {
                // Simulated time with nothing left to happen, or no answer to come and the
                // guards given their time: nobody will ever answer.
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

/// What the end gates short of evidence lack, for the record.
fn short_of(verdicts: &[(String, Verdict)]) -> String {
    verdicts
        .iter()
        .filter_map(|(_, v)| match v {
            Verdict::Insufficient { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}
