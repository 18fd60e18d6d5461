//! What a run came to, in a few lines: outcome, the rule that decided it with its values,
//! duration, stages with traffic and times, interruptions, and each gate condition's record.
//! Both report formats (Markdown, HTML) render this one summary.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::evaluation::{Evaluation, Outcome as Judged, show, show_signed};
use crate::event::{Event, Record};
use crate::journal::replay::Replay;
use crate::plan::expr::Op;
use crate::plan::units::LiteralUnit;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub plan: String,
    pub digest: String,
    /// `completed`, `rolled_back`, … or `in_progress`/`waiting` while it goes on.
    pub outcome: String,
    pub reason: Option<String>,
    pub decision: Decision,
    pub started: Option<DateTime<Utc>>,
    /// The run's end, or its last event while it goes on.
    pub ended: Option<DateTime<Utc>>,
    pub stages: Vec<StageSummary>,
    pub interruptions: Vec<Interruption>,
    /// Gates in the order they were first judged.
    pub gates: Vec<GateSummary>,
}

/// What decided the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// One line for people: "gate `errors` fired in stage `canary`: `…` = 2.3% (violation) →
    /// rollback".
    pub headline: String,
    pub at: Option<DateTime<Utc>>,
    pub stage: Option<String>,
    pub gate: Option<String>,
    /// The evaluation that fired, with its values.
    pub evaluation: Option<Evaluation>,
    /// Who, when a person decided (an abort).
    pub by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub traffic: f64,
    pub started: DateTime<Utc>,
    /// When it completed, or when the run left it (a rollback, the run's end).
    pub ended: Option<DateTime<Utc>>,
    pub completed: bool,
    pub checks: u32,
}

/// A person's decision or a break in the run: resumed, checks missed, approved, aborted, ….
#[derive(Debug, Clone, Serialize)]
pub struct Interruption {
    pub at: DateTime<Utc>,
    pub stage: Option<String>,
    /// `run resumed`, `checks missed`, `approved`, `resumed`, `paused`, `promoted`, `aborted`,
    /// `approval timed out`, `suspended`, `superseded`.
    pub what: String,
    pub by: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateSummary {
    pub gate: String,
    pub conditions: Vec<ConditionSummary>,
}

/// One condition (or `compare:` entry) over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionSummary {
    pub condition: String,
    pub unit: LiteralUnit,
    pub last: Evaluation,
    /// The value farthest on the wrong side (a compare entry: the largest shift), base units.
    pub worst: Option<f64>,
    pub evaluations: u32,
    pub violations: u32,
    pub errors: u32,
    pub insufficient: u32,
    /// The longest streak seen, and what the rule needs.
    pub longest_streak: u32,
    pub needed: u32,
    pub fired: bool,
}

impl ConditionSummary {
    /// The last value in the condition's unit: "5.9ms", "0.55% [0%, 0.61%] at 95% over 200", a
    /// compare entry's shift and interval "+12ms [+8ms, +16ms]".
    pub fn last_value(&self) -> String {
        let e = &self.last;
        if let Some(c) = &e.compare {
            return match (c.estimate, c.lower, c.upper) {
                (Some(est), Some(lo), Some(hi)) => format!(
                    "{} [{}, {}]",
                    show_signed(est, self.unit),
                    show_signed(lo, self.unit),
                    show_signed(hi, self.unit)
                ),
                _ => "-".to_owned(),
            };
        }
        let mut text = e
            .value
            .map_or_else(|| "-".to_owned(), |v| show(v, self.unit));
        if let Some(evidence) = &e.evidence {
            text = format!("{text} {}", evidence.describe(self.unit));
        }
        text
    }

    /// The worst value in the condition's unit.
    pub fn worst_value(&self) -> String {
        match (self.worst, self.last.compare.is_some()) {
            (Some(v), true) => show_signed(v, self.unit),
            (Some(v), false) => show(v, self.unit),
            (None, _) => "-".to_owned(),
        }
    }

    /// The threshold in the condition's unit; a compare entry's margin.
    pub fn threshold(&self) -> String {
        match (&self.last.compare, self.last.threshold) {
            (Some(c), _) => format!("margin {}", show(c.margin, self.unit)),
            (None, Some(t)) => show(t, self.unit),
            (None, None) => "-".to_owned(),
        }
    }

    /// `fired`, else the last outcome (`higher`/`lower` for a compare entry that moved).
    pub fn outcome(&self) -> String {
        if self.fired {
            return "fired".to_owned();
        }
        if let Some(way) = self.last.compare.and_then(|c| c.shift) {
            return way.to_string();
        }
        outcome_word(&self.last.outcome).to_owned()
    }
}

fn outcome_word(outcome: &Judged) -> &'static str {
    match outcome {
        Judged::Pass => "pass",
        Judged::Violation => "violation",
        Judged::Insufficient => "insufficient",
        Judged::Error(_) => "error",
    }
}

impl Summary {
    pub fn duration(&self) -> Option<std::time::Duration> {
        Some((self.ended? - self.started?).to_std().unwrap_or_default())
    }
}

/// Summarises a journal.
pub fn summarize(replay: &Replay) -> Summary {
    summarize_records(
        &replay.header.run_id,
        &replay.header.plan,
        &replay.header.digest,
        &replay.records,
    )
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per event kind the summary reads"
)]
pub fn summarize_records(run_id: &str, plan: &str, digest: &str, records: &[Record]) -> Summary {
    let mut summary = Summary {
        run_id: run_id.to_owned(),
        plan: plan.to_owned(),
        digest: digest.to_owned(),
        outcome: "in_progress".to_owned(),
        reason: None,
        decision: Decision {
            headline: String::new(),
            at: None,
            stage: None,
            gate: None,
            evaluation: None,
            by: None,
        },
        started: None,
        ended: records.last().map(|r| r.at),
        stages: Vec::new(),
        interruptions: Vec::new(),
        gates: Vec::new(),
    };
    let mut conditions: HashMap<(String, String), (usize, usize)> = HashMap::new();
    // The last evaluation that fired, per gate: what a `gate_failed` was decided on.
    let mut fired: HashMap<String, Evaluation> = HashMap::new();
    let mut deciding: Option<Decision> = None;
    let mut preflight_failed: Option<String> = None;
    // Load probes, whose metric names say their unit.
    let mut load_probes: HashSet<String> = HashSet::new();
    let mut rollback_failed: Option<String> = None;
    let stage_of = |s: &Summary| s.stages.last().map(|s| s.name.clone());
    for Record { at, event, .. } in records {
        let at = *at;
        let note = |s: &mut Summary, what: &str, by: Option<&str>, detail: Option<String>| {
            let stage = stage_of(s);
            s.interruptions.push(Interruption {
                at,
                stage,
                what: what.to_owned(),
                by: by.map(str::to_owned),
                detail,
            });
        };
        match event {
            Event::RunStarted { .. } => summary.started = Some(at),
            Event::SampleTaken { sample, .. } if load_shaped(sample) => {
                load_probes.insert(sample.probe.clone());
            }
            Event::StageStarted { stage, traffic, .. } => {
                if let Some(last) = summary.stages.last_mut() {
                    last.ended.get_or_insert(at);
                }
                summary.stages.push(StageSummary {
                    name: stage.clone(),
                    traffic: *traffic,
                    started: at,
                    ended: None,
                    completed: false,
                    checks: 0,
                });
            }
            Event::CheckStarted { .. } => {
                if let Some(last) = summary.stages.last_mut() {
                    last.checks += 1;
                }
            }
            Event::StageCompleted { .. } => {
                if let Some(last) = summary.stages.last_mut() {
                    last.ended = Some(at);
                    last.completed = true;
                }
            }
            Event::Evaluated { evaluation: e, .. } => {
                let key = (e.gate.clone(), e.condition.clone());
                let (g, c) = *conditions.entry(key).or_insert_with(|| {
                    let g = summary
                        .gates
                        .iter()
                        .position(|g| g.gate == e.gate)
                        .unwrap_or_else(|| {
                            summary.gates.push(GateSummary {
                                gate: e.gate.clone(),
                                conditions: Vec::new(),
                            });
                            summary.gates.len() - 1
                        });
                    let list = &mut summary.gates[g].conditions;
                    list.push(ConditionSummary {
                        condition: e.condition.clone(),
                        unit: e.unit(),
                        last: e.clone(),
                        worst: None,
                        evaluations: 0,
                        violations: 0,
                        errors: 0,
                        insufficient: 0,
                        longest_streak: 0,
                        needed: e.streak.needed,
                        fired: false,
                    });
                    (g, list.len() - 1)
                });
                let entry = &mut summary.gates[g].conditions[c];
                entry.evaluations += 1;
                match &e.outcome {
                    Judged::Violation => entry.violations += 1,
                    Judged::Error(_) => entry.errors += 1,
                    Judged::Insufficient => entry.insufficient += 1,
                    Judged::Pass => {}
                }
                entry.longest_streak = entry.longest_streak.max(e.streak.count);
                entry.needed = e.streak.needed;
                entry.fired |= e.fired;
                entry.worst = worse(entry.worst, e);
                entry.last = e.clone();
                if e.fired {
                    fired.insert(e.gate.clone(), e.clone());
                }
            }
            Event::GateFailed {
                stage,
                gate,
                action,
                reason,
            } => {
                let evaluation = fired.get(gate).cloned();
                let values = evaluation
                    .as_ref()
                    .map_or_else(|| reason.clone(), Evaluation::describe);
                // A warning decides nothing; the first gate that stopped the stage does.
                if *action != crate::plan::model::Action::Warn && deciding.is_none() {
                    deciding = Some(Decision {
                        headline: format!(
                            "gate `{gate}` fired in stage `{stage}`: {values} → {action}"
                        ),
                        at: Some(at),
                        stage: Some(stage.clone()),
                        gate: Some(gate.clone()),
                        evaluation,
                        by: None,
                    });
                }
            }
            Event::PreflightFailed { name, reason } => {
                preflight_failed.get_or_insert(format!("preflight `{name}` failed: {reason}"));
            }
            Event::RollbackFailed { reason, .. } => {
                rollback_failed = Some(format!("a rollback step failed: {reason}"));
            }
            Event::RunResumed { .. } => note(&mut summary, "run resumed", None, None),
            Event::ChecksMissed {
                count, first, last, ..
            } => {
                let span = |s: f64| {
                    crate::plan::units::format_duration(std::time::Duration::from_secs_f64(
                        s.max(0.0),
                    ))
                };
                note(
                    &mut summary,
                    "checks missed",
                    None,
                    Some(format!(
                        "{count} check{} due from +{} to +{} (not back-filled)",
                        if *count == 1 { "" } else { "s" },
                        span(*first),
                        span(*last)
                    )),
                );
            }
            Event::Approved { by, .. } => note(&mut summary, "approved", Some(by), None),
            Event::Resumed { by, .. } => note(&mut summary, "resumed", Some(by), None),
            Event::Paused { reason, .. } => {
                note(&mut summary, "paused", None, Some(reason.clone()));
            }
            Event::ApprovalTimedOut { action, .. } => note(
                &mut summary,
                "approval timed out",
                None,
                Some(format!("→ {action}")),
            ),
            Event::Promoted { by, reason, .. } => {
                note(&mut summary, "promoted", Some(by), Some(reason.clone()));
            }
            Event::AbortRequested { by, reason, .. } => {
                note(&mut summary, "aborted", Some(by), Some(reason.clone()));
                deciding.get_or_insert(Decision {
                    headline: format!("aborted by {by}: {reason}"),
                    at: Some(at),
                    stage: stage_of(&summary),
                    gate: None,
                    evaluation: None,
                    by: Some(by.clone()),
                });
            }
            Event::Suspended { reason, .. } => {
                note(&mut summary, "suspended", None, Some(reason.clone()));
                summary.reason = Some(reason.clone());
            }
            Event::Superseded { by } => {
                note(
                    &mut summary,
                    "superseded",
                    None,
                    Some(format!("by run {by}")),
                );
                "superseded".clone_into(&mut summary.outcome);
                summary.reason = Some(format!("replaced by run {by}"));
            }
            Event::RunEnded { outcome, reason } => {
                outcome.as_str().clone_into(&mut summary.outcome);
                summary.reason.clone_from(reason);
            }
            _ => {}
        }
        if let Event::Suspended { outcome, .. } = event {
            outcome.as_str().clone_into(&mut summary.outcome);
        }
    }
    let over = summary.outcome != "in_progress" && summary.outcome != "waiting";
    if let Some(last) = summary
        .stages
        .last_mut()
        .filter(|s| s.ended.is_none() && over)
    {
        last.ended = summary.ended;
    }
    for c in summary.gates.iter_mut().flat_map(|g| &mut g.conditions) {
        if c.unit == LiteralUnit::Plain && c.last.compare.is_none() {
            c.unit = load_metric_unit(&load_probes, &c.condition).unwrap_or(LiteralUnit::Plain);
        }
    }
    summary.decision = deciding.unwrap_or_else(|| Decision {
        headline: match summary.outcome.as_str() {
            "completed" => format!(
                "every gate held through {} stage{}",
                summary.stages.len(),
                if summary.stages.len() == 1 { "" } else { "s" }
            ),
            "preflight_failed" => preflight_failed.clone().unwrap_or_default(),
            _ => summary
                .reason
                .clone()
                .or_else(|| rollback_failed.clone())
                .unwrap_or_else(|| "the run goes on".to_owned()),
        },
        at: None,
        stage: None,
        gate: None,
        evaluation: None,
        by: None,
    });
    if let Some(failed) = rollback_failed.filter(|_| summary.outcome == "failed") {
        summary.decision.headline = format!("{}; {failed}", summary.decision.headline);
    }
    summary
}

/// The worse of `so_far` and the evaluation's value: the one farther on the wrong side of its
/// threshold (a compare entry: the larger shift).
fn worse(so_far: Option<f64>, e: &Evaluation) -> Option<f64> {
    let value = match &e.compare {
        Some(c) => c.estimate,
        None => e.value,
    }
    .filter(|v| v.is_finite());
    let Some(value) = value else {
        return so_far;
    };
    let Some(previous) = so_far else {
        return Some(value);
    };
    let op = crate::plan::expr::parse(&e.condition).ok().map(|x| x.op);
    Some(match (op, e.compare.is_some()) {
        (_, true) => {
            if value.abs() > previous.abs() {
                value
            } else {
                previous
            }
        }
        (Some(Op::Lt | Op::Le), _) => value.max(previous),
        (Some(Op::Gt | Op::Ge), _) => value.min(previous),
        _ => {
            let t = e.threshold.unwrap_or(0.0);
            if (value - t).abs() > (previous - t).abs() {
                value
            } else {
                previous
            }
        }
    })
}

/// A condition that compares two metrics (`load.canary.p95 <= load.legacy.p95 * 5`) writes no
/// unit; a load probe's metric has one by its name (`p95`: seconds).
pub fn load_metric_unit(load_probes: &HashSet<String>, condition: &str) -> Option<LiteralUnit> {
    let expr = crate::plan::expr::parse(condition).ok()?;
    let (probe, rest) = expr.metric.name.split_once('.')?;
    let kind = rest.rsplit('.').next()?;
    if !load_probes.contains(probe) {
        return None;
    }
    crate::plan::metrics::LOAD_METRICS
        .iter()
        .find(|(m, _)| *m == kind)
        .map(|(_, unit)| unit.shown_as())
}

/// Whether a sample is a load probe's: it kept latency histograms, or every metric is one of a
/// load target's (`canary.p95`) — a scenario's samples keep no histograms.
pub fn load_shaped(sample: &crate::probe::Sample) -> bool {
    !sample.histograms.is_empty()
        || (!sample.metrics.is_empty()
            && sample.metrics.keys().all(|k| {
                k.split_once('.').is_some_and(|(_, kind)| {
                    crate::plan::metrics::LOAD_METRICS
                        .iter()
                        .any(|(m, _)| *m == kind)
                })
            }))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::event::Outcome;

    fn records(events: Vec<Event>) -> Vec<Record> {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        events
            .into_iter()
            .zip(1_u32..)
            .map(|(event, n)| Record {
                seq: u64::from(n),
                at: start + chrono::Duration::minutes(i64::from(n - 1)),
                event,
            })
            .collect()
    }

    #[test]
    fn interruptions_say_who_and_when_and_an_abort_decides() {
        let summary = summarize_records(
            "r1",
            "plan.yaml",
            "sha256:0",
            &records(vec![
                Event::RunStarted {
                    run_id: "r1".into(),
                    plan: "plan.yaml".into(),
                    digest: "sha256:0".into(),
                    mode: crate::event::Mode::Live,
                    stages: 2,
                },
                Event::StageStarted {
                    stage: "five".into(),
                    index: 0,
                    traffic: 5.0,
                },
                Event::RunResumed {
                    run_id: "r1".into(),
                },
                Event::ChecksMissed {
                    stage: "five".into(),
                    count: 3,
                    first: 60.0,
                    last: 180.0,
                },
                Event::Promoted {
                    stage: "five".into(),
                    by: "sena".into(),
                    reason: "clean".into(),
                    request: None,
                },
                Event::Approved {
                    stage: "five".into(),
                    by: "kai".into(),
                    request: None,
                },
                Event::AbortRequested {
                    by: "mo".into(),
                    reason: "pager".into(),
                    request: None,
                },
                Event::RunEnded {
                    outcome: Outcome::Aborted,
                    reason: Some("aborted by mo: pager".into()),
                },
            ]),
        );
        let seen: Vec<(i64, &str, Option<&str>, Option<&str>)> = summary
            .interruptions
            .iter()
            .map(|i| {
                (
                    i.at.timestamp() % 3600 / 60,
                    i.what.as_str(),
                    i.by.as_deref(),
                    i.detail.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (2, "run resumed", None, None),
                (
                    3,
                    "checks missed",
                    None,
                    Some("3 checks due from +1m to +3m (not back-filled)")
                ),
                (4, "promoted", Some("sena"), Some("clean")),
                (5, "approved", Some("kai"), None),
                (6, "aborted", Some("mo"), Some("pager")),
            ]
        );
        assert_eq!(summary.outcome, "aborted");
        assert_eq!(summary.decision.headline, "aborted by mo: pager");
        assert_eq!(summary.decision.by.as_deref(), Some("mo"));
        assert_eq!(summary.stages[0].ended, summary.ended);
        assert!(!summary.stages[0].completed);
    }
}
