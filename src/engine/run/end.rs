//! The end of a bake: the `at: end` gates on what the stage has, an extension while evidence is
//! short, an early end, and a person's promotion (`docs/plan.md`, "Evidence").

use chrono::{DateTime, Utc};

use crate::engine::gates::{self, Verdict};
use crate::engine::pool::Data;
use crate::engine::run::{Engine, EngineError, Go, Woke, at};
use crate::engine::timeline;
use crate::event::{Event, Mode};
use crate::plan::model::{Action, GateAt, Stage};

impl<'p> Engine<'p> {
    /// With `early`, from `early.after` on: judges the end gates on what the stage has; `true`
    /// (the bake may end) the first time every one of them passes.
    pub(super) fn ended_early(&mut self, stage: &Stage, started: DateTime<Utc>) -> Go<bool> {
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
    pub(super) async fn promoted(
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
    pub(super) async fn promotion_judged(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
    ) -> Go {
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

    /// `at: end` gates, on the newest samples (and the stage's pool, for `confidence`); a check
    /// runs first if none is recent enough (the bake's end had no check scheduled). Evidence
    /// short of an interval's takes the gates' `insufficient` policy.
    pub(super) async fn end_gates(
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
    pub(super) fn judge_end(
        &mut self,
        stage: &Stage,
    ) -> Result<Vec<(String, Verdict)>, EngineError> {
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
    pub(super) async fn extend(
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
    pub(super) fn due_after(
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
