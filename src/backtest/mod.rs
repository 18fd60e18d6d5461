//! `ion-plan backtest`: the plan's gates, as they are now, re-judged on the samples a past run
//! recorded, on simulated time — the same engine as `run --scenario`, fed from a journal
//! (README, "Backtest"). Nothing is executed: steps are shown, no probe runs, nothing is
//! notified, and the re-judged run's records stay in memory.

pub mod recorded;
pub mod seams;
pub mod shape;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::engine::clock::SimClock;
use crate::engine::context::Resolver;
use crate::engine::dry_run::ShowSteps;
use crate::engine::run::{Engine, EngineError, Parts, RunInfo};
use crate::event::{Event, Mode, Record};
use crate::journal::replay::Replay;
use crate::plan::model::Plan;
use recorded::{Decision, Ending, Recorded, ending, outcome_word};
use seams::{Collect, Exhausted, JournalControl, JournalSampler};

/// One past run, judged again.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub run_id: String,
    pub journal: String,
    pub recorded: Ending,
    pub now: Ending,
    pub flipped: bool,
    pub first_difference: Option<Difference>,
    pub skipped: Vec<String>,
}

/// The first condition judged differently: where, and both judgements.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The stage; `preflight` for a preflight item.
    pub stage: String,
    /// The check's position within its stage, 1-based.
    pub check: usize,
    /// Seconds since the stage started, when known.
    pub offset: Option<f64>,
    pub gate: String,
    /// The condition as the plan has it now (as recorded when the plan no longer has it).
    pub condition: String,
    /// The condition as the recorded run had it.
    pub condition_then: Option<String>,
    /// The recorded judgement (`pass`, `violation`, `insufficient`, `error`, with `, fired`
    /// when it failed the condition), or `not judged`.
    pub recorded: String,
    pub now: String,
    /// The values judged: the metric's, and the thresholds then and now.
    pub values: Values,
    /// Each judgement as reports word it ("`load.canary.latency` +4ms [+3.8ms, +4.3ms] vs
    /// `load.legacy.latency`, 98%, …: higher"), when there is one.
    pub described_then: Option<String>,
    pub described_now: Option<String>,
    /// The decision is a `compare:` entry's (its shift says more than a value and threshold).
    pub compare: bool,
}

/// The numbers behind a [`Difference`], in base units.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    pub value: Option<f64>,
    pub threshold_then: Option<f64>,
    pub threshold_now: Option<f64>,
}

/// Whether an outcome flipped. Running out of samples (`undecided`) is a flip only when a gate
/// ended the recorded run (a rollback or a pause): the plan would not have taken that decision
/// where it was taken. Otherwise outcomes flip when they differ.
pub fn flips(recorded: &Ending, now: &Ending) -> bool {
    if now.outcome == "undecided" {
        return recorded.by_gate;
    }
    // Rollback steps are only shown, so they never fail now: a recorded run that rolled back
    // and whose rollback failed took the same decision.
    let decision = |outcome: &str| match outcome {
        "failed" => "rolled_back".to_owned(),
        other => other.to_owned(),
    };
    decision(&recorded.outcome) != decision(&now.outcome)
}

/// Re-judges the run `replay` recorded under `plan`.
pub async fn judge(plan: &Plan, replay: &Replay) -> Result<Judged, EngineError> {
    let mut recorded = Recorded::read(&replay.records);
    let (fitted, skipped) = shape::fit(plan, &recorded);
    let exhausted = Exhausted::default();
    let collect = Collect::default();
    let start = replay
        .records
        .first()
        .map_or(replay.header.created, |r| r.at);
    let run_id = replay.header.run_id.clone();
    let resolver = Arc::new(Resolver::without_secrets(&fitted, &run_id));
    let parts = Parts {
        clock: Arc::new(SimClock::new(start)),
        sampler: Arc::new(JournalSampler::new(
            std::mem::take(&mut recorded.samples),
            Arc::clone(&exhausted),
        )),
        steps: Arc::new(ShowSteps::new(resolver)),
        control: Box::new(JournalControl::new(
            std::mem::take(&mut recorded.answers),
            Arc::clone(&exhausted),
        )),
        sinks: vec![Box::new(collect.clone())],
    };
    let info = RunInfo {
        run_id: run_id.clone(),
        plan_path: replay.header.plan.clone(),
        digest: String::new(),
        mode: Mode::Scenario,
    };
    Engine::new(&fitted, info, parts)?.run().await?;
    let mut records = std::mem::take(
        &mut *collect
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let ran_out = exhausted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let now = match &ran_out {
        Some(out) => {
            cut_at(&mut records, out);
            // Paused by a gate when the samples ran out: nobody would have resumed it, and its
            // checks went on to the end of what was recorded. That is the plan's decision.
            let so_far = ending(&records);
            if so_far.outcome == "paused" {
                so_far
            } else {
                undecided(out)
            }
        }
        None => ending(&records),
    };
    let then = ending(&replay.records);
    let first_difference =
        first_difference(&recorded.decisions, &Recorded::read(&records).decisions);
    Ok(Judged {
        run_id,
        journal: replay.path.display().to_string(),
        flipped: flips(&then, &now),
        recorded: then,
        now,
        first_difference,
        skipped,
    })
}

/// The outcome when the samples ran out before the plan decided.
fn undecided(out: &seams::RanOut) -> Ending {
    let stage = out.stage.clone().unwrap_or_else(|| "preflight".to_owned());
    Ending {
        outcome: "undecided".to_owned(),
        by_gate: false,
        reason: Some(if out.check > 1 {
            format!("no samples past stage `{stage}` check {}", out.check - 1)
        } else {
            format!("no samples in stage `{stage}`")
        }),
        stage: Some(stage),
    }
}

/// Drops the records from the check whose samples ran out on: what was judged there was
/// judged on no data the recorded run had.
fn cut_at(records: &mut Vec<Record>, out: &seams::RanOut) {
    let mut seen = 0;
    let position = records.iter().position(|r| match (&r.event, &out.stage) {
        (Event::CheckStarted { stage, .. }, Some(name)) if stage == name => {
            seen += 1;
            seen == out.check
        }
        (
            Event::SampleTaken {
                stage: None,
                sample,
                ..
            },
            None,
        ) if sample.probe == out.probe => {
            seen += 1;
            seen == out.check
        }
        _ => false,
    });
    if let Some(position) = position {
        records.truncate(position);
    }
}

/// How a decision reads: its outcome, and `fired` when it failed the condition.
fn verdict(decision: &Decision) -> String {
    let word = outcome_word(&decision.evaluation.outcome);
    if decision.evaluation.fired {
        format!("{word}, fired")
    } else {
        word.to_owned()
    }
}

/// Where a decision sits: stage, check, gate, the metric its condition reads, and which of the
/// gate's conditions on that metric it is — not the condition's text, which a threshold change
/// changes.
type Slot = (Option<String>, usize, String, String, usize);

fn slots(decisions: &[Decision]) -> Vec<(Slot, &Decision)> {
    let mut counts: HashMap<(Option<String>, usize, String, String), usize> = HashMap::new();
    decisions
        .iter()
        .map(|d| {
            let metric = crate::plan::expr::parse(&d.evaluation.condition)
                .map_or_else(|_| d.evaluation.condition.clone(), |e| e.metric.name);
            let base = (d.stage.clone(), d.check, d.evaluation.gate.clone(), metric);
            let count = counts.entry(base.clone()).or_default();
            *count += 1;
            ((base.0, base.1, base.2, base.3, *count), d)
        })
        .collect()
}

/// Each slot's decision, for looking up.
fn index<'a>(list: &[(Slot, &'a Decision)]) -> HashMap<Slot, &'a Decision> {
    let mut map = HashMap::with_capacity(list.len());
    for (slot, decision) in list {
        map.entry(slot.clone()).or_insert(*decision);
    }
    map
}

/// The first decision of the re-judged run that the recorded run took otherwise, in the order
/// of the re-judged run; then a recorded violation the re-judged run no longer has.
fn first_difference(then: &[Decision], now: &[Decision]) -> Option<Difference> {
    let then = slots(then);
    let now = slots(now);
    // Looked up by slot, not searched for: a long stage has a hundred thousand decisions.
    let (then_at, now_at) = (index(&then), index(&now));
    let find = |map: &HashMap<Slot, &Decision>, slot: &Slot| map.get(slot).map(|d| (*d).clone());
    let judged_badly = |d: &Decision| d.evaluation.fired || verdict(d) != "pass";
    for (slot, decision) in &now {
        let before = find(&then_at, slot);
        let differs = match &before {
            Some(before) => verdict(before) != verdict(decision),
            None => judged_badly(decision),
        };
        if differs {
            return Some(difference(before.as_ref(), Some(decision)));
        }
    }
    then.iter()
        .find(|(slot, d)| judged_badly(d) && !now_at.contains_key(slot))
        .map(|(_, d)| difference(Some(d), None))
}

fn difference(then: Option<&Decision>, now: Option<&Decision>) -> Difference {
    let any = then.or(now).expect("one side has the decision");
    Difference {
        stage: any.stage.clone().unwrap_or_else(|| "preflight".to_owned()),
        check: any.check,
        offset: then.and_then(|d| d.offset).or(any.offset),
        gate: any.evaluation.gate.clone(),
        condition: now.map_or_else(
            || any.evaluation.condition.clone(),
            |d| d.evaluation.condition.clone(),
        ),
        condition_then: then.map(|d| d.evaluation.condition.clone()),
        recorded: then.map_or_else(|| "not judged".to_owned(), verdict),
        now: now.map_or_else(|| "not judged".to_owned(), verdict),
        values: Values {
            value: then.or(now).and_then(|d| d.evaluation.value),
            threshold_then: then.and_then(|d| d.evaluation.threshold),
            threshold_now: now.and_then(|d| d.evaluation.threshold),
        },
        described_then: then.map(|d| d.evaluation.describe()),
        described_now: now.map(|d| d.evaluation.describe()),
        compare: any.evaluation.compare.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(outcome: &str, by_gate: bool) -> Ending {
        Ending {
            outcome: outcome.to_owned(),
            by_gate,
            stage: None,
            reason: None,
        }
    }

    #[test]
    fn running_out_flips_only_what_a_gate_ended() {
        let undecided = ending("undecided", false);
        assert!(flips(&ending("rolled_back", true), &undecided));
        assert!(flips(&ending("paused", true), &undecided));
        for outcome in [
            "completed",
            "aborted",
            "rolled_back",
            "incomplete",
            "waiting",
        ] {
            assert!(!flips(&ending(outcome, false), &undecided), "{outcome}");
        }
    }

    #[test]
    fn a_failed_rollback_is_the_same_decision_as_a_rollback() {
        let now = ending("rolled_back", true);
        assert!(!flips(&ending("failed", true), &now));
        assert!(flips(&ending("completed", false), &now));
        assert!(flips(&ending("aborted", false), &now));
    }
}
