//! Gate evaluation: the decision rules (README, "Running plans"; `docs/plan.md`, "Gates") as a
//! state machine fed by samples.
//!
//! - `consecutive: N` fails a condition on the N-th violation in a row; a pass resets the streak;
//!   an error neither resets nor extends it.
//! - `within: {violations: M, checks: N}` fails it when M of the last N evaluated checks (passes
//!   and violations; errors are not evaluations) were violations.
//! - With neither, one violation fails it.
//! - `on_error: {consecutive: K}`: K checks in a row in which the gate had an error take the
//!   `then` action. An error is never a pass.
//! - An `at: end` gate passes only when every condition passes on the newest samples.
//! - A condition with `confidence` is judged on an interval (`docs/plan.md`, "Evidence"): in an
//!   `every_check` gate the check's own sample, in an `at: end` gate the stage's samples pooled
//!   ([`crate::engine::pool::Pool`]). *Insufficient* neither resets nor extends a streak and is not an error.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::engine::compare::{self, CompiledCompare};
use crate::engine::pool::{Data, Pool};
use crate::event::evaluation::Evidence;
use crate::plan::evidence::{IntervalKind, interval_kind};
use crate::plan::expr::{self, Expr, Rhs};
use crate::plan::model::{Action, Condition, Gate, GateAt, Insufficient, NoData, Plan};
use crate::plan::units::LiteralUnit;
use crate::probe::{Reading, Sample};
use crate::stats;

/// How a condition fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// One violation fails it.
    Once,
    Consecutive(u32),
    Within {
        violations: u32,
        checks: u32,
    },
}

/// A condition, parsed once.
#[derive(Debug, Clone)]
pub struct CompiledCondition {
    pub text: String,
    pub expr: Expr,
    pub rule: Rule,
    pub no_data: NoData,
    /// Judged on an interval (`confidence`): which, and at what confidence.
    pub interval: Option<OnInterval>,
    /// The unit its values are shown in: its threshold's, or for a threshold that is another
    /// metric (`load.canary.p95 <= load.legacy.p95 * 5`) the metric's (ms, not seconds).
    unit: LiteralUnit,
}

/// How a condition with `confidence` is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct OnInterval {
    pub kind: IntervalKind,
    /// A fraction (0.95).
    pub confidence: f64,
}

impl CompiledCondition {
    /// The unit its values are shown in.
    pub fn unit(&self) -> LiteralUnit {
        self.unit
    }
}

/// A gate, parsed once.
#[derive(Debug, Clone)]
pub struct CompiledGate {
    pub name: String,
    pub at: GateAt,
    pub on_fail: Action,
    /// Errors in a row that act, and the action.
    pub on_error: (u32, Action),
    pub conditions: Vec<CompiledCondition>,
    /// Its `compare:` entries, judged after its conditions.
    pub compares: Vec<CompiledCompare>,
    /// What an `at: end` verdict of insufficient does.
    pub insufficient: Insufficient,
}

impl CompiledGate {
    /// Compiles a validated gate; `plan` tells which interval a `confidence` condition takes
    /// (without it, conditions are judged on point values). Fails only if a condition does not
    /// parse, which validation rules out.
    pub fn compile(name: &str, gate: &Gate, plan: Option<&Plan>) -> Result<CompiledGate, String> {
        let conditions = gate
            .require
            .iter()
            .map(|condition| {
                compile_condition(condition, plan).map_err(|e| format!("gate `{name}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let on_fail = gate.on_fail();
        let on_error = gate.on_error.map_or((3, on_fail), |e| {
            (e.consecutive.unwrap_or(3).max(1), e.then.unwrap_or(on_fail))
        });
        Ok(CompiledGate {
            name: name.to_owned(),
            at: gate.at,
            on_fail,
            on_error,
            conditions,
            compares: gate
                .compare
                .iter()
                .map(|c| CompiledCompare::compile(c, plan))
                .collect(),
            insufficient: gate.on_insufficient(),
        })
    }

    /// The probes the gate reads.
    pub fn probes(&self) -> impl Iterator<Item = &str> {
        self.conditions
            .iter()
            .flat_map(|c| c.expr.metrics().map(expr::MetricRef::probe))
            .chain(
                self.compares
                    .iter()
                    .flat_map(|c| c.metrics().map(expr::MetricRef::probe)),
            )
    }

    /// What each condition and comparison reads, as their texts (dry runs show them).
    pub fn texts(&self) -> Vec<String> {
        self.conditions
            .iter()
            .map(|c| c.text.clone())
            .chain(self.compares.iter().map(|c| c.label.clone()))
            .collect()
    }
}

/// Compiles one condition (string or map form).
pub fn compile_condition(
    condition: &Condition,
    plan: Option<&Plan>,
) -> Result<CompiledCondition, String> {
    let spec = condition.spec();
    let expr = expr::parse(&spec.check).map_err(|e| format!("`{}`: {}", spec.check, e.message))?;
    let rule = match (spec.consecutive, spec.within) {
        (Some(n), _) => Rule::Consecutive(n.max(1)),
        (None, Some(w)) => Rule::Within {
            violations: w.violations.max(1),
            checks: w.checks.max(1),
        },
        (None, None) => Rule::Once,
    };
    let unit = match expr.rhs {
        Rhs::Quantity { unit, .. } => unit,
        Rhs::Metric { .. } => shown_unit(&expr.metric, plan),
    };
    Ok(CompiledCondition {
        text: spec.check,
        unit,
        expr,
        rule,
        no_data: spec.no_data.unwrap_or_default(),
        interval: spec.confidence.and_then(|confidence| {
            Some(OnInterval {
                kind: interval_kind(plan?, condition)?,
                confidence: confidence.fraction(),
            })
        }),
    })
}

/// The unit a metric's values are shown in (seconds as a duration, a fraction as percent), as
/// its probe's catalog says; plain without a plan or for a metric of unknown unit.
pub fn shown_unit(metric: &expr::MetricRef, plan: Option<&Plan>) -> LiteralUnit {
    plan.and_then(|plan| {
        let probe = plan.probes.get(metric.probe())?;
        crate::plan::metrics::Catalog::of(probe).unit(metric.within_probe())
    })
    .map_or(
        LiteralUnit::Plain,
        crate::plan::metrics::MetricUnit::shown_as,
    )
}

pub use crate::event::evaluation::{Evaluation, Outcome, Streak, show};

/// What a gate decided at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Conditions fired (every-check) or did not pass (end): take `action`.
    Failed {
        action: Action,
        reason: String,
    },
    /// Errors in a row reached the gate's limit: take `action`.
    Errors {
        action: Action,
        reason: String,
    },
    /// (`at: end`) Nothing violated, and some condition short of evidence: the gate's
    /// `insufficient` policy decides.
    Insufficient {
        reason: String,
    },
}

#[derive(Debug, Clone, Default)]
struct ConditionState {
    streak: u32,
    /// The last `checks` evaluations of a `within` rule: true for a violation.
    window: VecDeque<bool>,
}

#[derive(Debug, Clone, Default)]
struct GateState {
    conditions: Vec<ConditionState>,
    error_streak: u32,
}

/// The streaks of every gate within one stage. A new stage starts from zero: its traffic share
/// is new, and so is what its checks measure.
#[derive(Debug, Clone, Default)]
pub struct Streaks {
    gates: HashMap<String, GateState>,
}

/// Looks a metric (`probe.name`) up in the samples of a check.
pub fn reading(samples: &HashMap<String, Sample>, metric: &expr::MetricRef) -> Reading {
    match samples.get(metric.probe()) {
        Some(sample) => sample.reading(metric.within_probe()),
        None => Reading::Error(format!("probe `{}` was not run", metric.probe())),
    }
}

/// What one condition gave at one evaluation, before any streak.
struct Judged {
    outcome: Outcome,
    value: Option<f64>,
    threshold: Option<f64>,
    evidence: Option<Evidence>,
}

/// Evaluates one condition: on an interval of `data` when it sets `confidence`, else on the
/// point values of `samples`.
fn judge(
    condition: &CompiledCondition,
    samples: &HashMap<String, Sample>,
    data: Data<'_>,
) -> Judged {
    if let Some(on) = &condition.interval {
        return judge_interval(condition, on, data);
    }
    let (outcome, value, threshold) = outcome(condition, samples);
    Judged {
        outcome,
        value,
        threshold,
        evidence: None,
    }
}

/// Judges a condition on its interval (`docs/plan.md`, "Evidence").
fn judge_interval(condition: &CompiledCondition, on: &OnInterval, data: Data<'_>) -> Judged {
    let threshold = match condition.expr.rhs {
        Rhs::Quantity { value, .. } => value,
        // Validation allows `confidence` only against a threshold.
        Rhs::Metric { .. } => f64::NAN,
    };
    let metric = &condition.expr.metric;
    let measured = match &on.kind {
        IntervalKind::Wilson { count } => data.ratio(metric, count.as_deref()).map(|r| {
            let interval = stats::wilson(r.k, r.n, on.confidence);
            #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
            let value = (r.n > 0).then(|| r.k as f64 / r.n as f64);
            (interval, value, r.n, r.checks)
        }),
        IntervalKind::Percentile { p } => data.latencies(metric).map(|(histogram, checks)| {
            let interval =
                stats::percentile_interval_histogram(&histogram, *p, on.confidence).scaled(1e-6);
            #[expect(clippy::cast_precision_loss, reason = "latencies in µs far below 2^52")]
            let value =
                (!histogram.is_empty()).then(|| histogram.value_at_quantile(*p) as f64 * 1e-6);
            (interval, value, histogram.len(), checks)
        }),
    };
    match measured {
        Ok((interval, value, n, checks)) => Judged {
            outcome: match stats::judge(condition.expr.op, threshold, interval) {
                stats::Outcome::Pass => Outcome::Pass,
                stats::Outcome::Violation => Outcome::Violation,
                stats::Outcome::Insufficient => Outcome::Insufficient,
            },
            value,
            threshold: Some(threshold),
            evidence: Some(Evidence {
                confidence: on.confidence,
                lo: interval.lo,
                hi: interval.hi.is_finite().then_some(interval.hi),
                n,
                checks,
            }),
        },
        Err(error) => Judged {
            outcome: Outcome::Error(error),
            value: None,
            threshold: Some(threshold),
            evidence: None,
        },
    }
}

/// Evaluates one condition on point values, before any streak.
fn outcome(
    condition: &CompiledCondition,
    samples: &HashMap<String, Sample>,
) -> (Outcome, Option<f64>, Option<f64>) {
    let left = reading(samples, &condition.expr.metric);
    let right = match &condition.expr.rhs {
        Rhs::Quantity { value, .. } => Reading::Value(*value),
        Rhs::Metric { metric, factor } => match reading(samples, metric) {
            Reading::Value(v) => Reading::Value(v * factor),
            other => other,
        },
    };
    let value = match &left {
        Reading::Value(v) => Some(*v),
        _ => None,
    };
    let threshold = match &right {
        Reading::Value(v) => Some(*v),
        _ => None,
    };
    let outcome = match (&left, &right) {
        (Reading::Error(e), _) | (_, Reading::Error(e)) => Outcome::Error(e.clone()),
        (Reading::NoData, _) | (_, Reading::NoData) => {
            let missing = if left == Reading::NoData {
                &condition.expr.metric.name
            } else {
                match &condition.expr.rhs {
                    Rhs::Metric { metric, .. } => &metric.name,
                    Rhs::Quantity { .. } => &condition.expr.metric.name,
                }
            };
            match condition.no_data {
                NoData::Error => Outcome::Error(format!("no data for `{missing}`")),
                NoData::Pass => Outcome::Pass,
                NoData::Fail => Outcome::Violation,
            }
        }
        (Reading::Value(l), Reading::Value(r)) => {
            if condition.expr.op.holds(*l, *r) {
                Outcome::Pass
            } else {
                Outcome::Violation
            }
        }
    };
    (outcome, value, threshold)
}

/// Moves a condition's streak on by one outcome; returns the streak and whether it fired.
fn advance(rule: Rule, outcome: &Outcome, state: &mut ConditionState) -> (Streak, bool) {
    match outcome {
        Outcome::Pass => {
            state.streak = 0;
            state.window.push_back(false);
        }
        Outcome::Violation => {
            state.streak += 1;
            state.window.push_back(true);
        }
        // An error or a lack of evidence neither resets nor extends a streak, and is not an
        // evaluated check.
        Outcome::Error(_) | Outcome::Insufficient => {}
    }
    match rule {
        Rule::Once => {
            state.window.clear();
            let count = u32::from(*outcome == Outcome::Violation);
            (
                Streak {
                    count,
                    needed: 1,
                    window: None,
                },
                count == 1,
            )
        }
        Rule::Consecutive(needed) => {
            state.window.clear();
            let count = state.streak;
            (
                Streak {
                    count,
                    needed,
                    window: None,
                },
                // Only a violation fires: an insufficient check (or an error) after a streak
                // that fired with `warn` leaves the streak as it is and fires nothing, as
                // `within` does.
                *outcome == Outcome::Violation && count >= needed,
            )
        }
        Rule::Within { violations, checks } => {
            while state.window.len() > checks as usize {
                state.window.pop_front();
            }
            let count =
                u32::try_from(state.window.iter().filter(|v| **v).count()).unwrap_or(u32::MAX);
            (
                Streak {
                    count,
                    needed: violations,
                    window: Some(checks),
                },
                *outcome == Outcome::Violation && count >= violations,
            )
        }
    }
}

impl Streaks {
    /// Evaluates an `every_check` gate after a check, updating its streaks.
    /// `pool` holds the stage's checks so far, this one included (a compared series).
    pub fn every_check(
        &mut self,
        gate: &CompiledGate,
        samples: &HashMap<String, Sample>,
        pool: &Pool,
    ) -> (Vec<Evaluation>, Verdict) {
        let state = self.gates.entry(gate.name.clone()).or_default();
        state.conditions.resize_with(
            gate.conditions.len() + gate.compares.len(),
            ConditionState::default,
        );
        let mut evaluations = Vec::with_capacity(gate.conditions.len());
        let mut any_error = None;
        for (condition, cond_state) in gate.conditions.iter().zip(&mut state.conditions) {
            let judged = judge(condition, samples, Data::Check(samples));
            if let Outcome::Error(e) = &judged.outcome {
                any_error.get_or_insert_with(|| format!("`{}`: {e}", condition.text));
            }
            let (streak, fired) = advance(condition.rule, &judged.outcome, cond_state);
            evaluations.push(Evaluation {
                gate: gate.name.clone(),
                condition: condition.text.clone(),
                outcome: judged.outcome,
                value: judged.value,
                threshold: judged.threshold,
                streak,
                fired,
                evidence: judged.evidence,
                unit: Some(condition.unit()),
                compare: None,
            });
        }
        let compare_states = state.conditions.iter_mut().skip(gate.conditions.len());
        for (entry, cond_state) in gate.compares.iter().zip(compare_states) {
            let judged = compare::judge(entry, pool, Data::Check(samples), Some(samples));
            if let Outcome::Error(e) = &judged.outcome {
                any_error.get_or_insert_with(|| format!("`{}`: {e}", entry.label));
            }
            let (streak, fired) = advance(Rule::Once, &judged.outcome, cond_state);
            evaluations.push(compared(gate, entry, judged, streak, fired));
        }
        let fired: Vec<String> = evaluations
            .iter()
            .filter(|e| e.fired)
            .map(Evaluation::describe)
            .collect();
        let verdict = if !fired.is_empty() {
            Verdict::Failed {
                action: gate.on_fail,
                reason: format!("gate `{}` failed: {}", gate.name, fired.join("; ")),
            }
        } else if let Some(error) = any_error {
            state.error_streak += 1;
            let (limit, action) = gate.on_error;
            if state.error_streak >= limit {
                Verdict::Errors {
                    action,
                    reason: format!(
                        "gate `{}` had errors in {} checks in a row; last: {error}",
                        gate.name, state.error_streak
                    ),
                }
            } else {
                Verdict::Pass
            }
        } else {
            state.error_streak = 0;
            Verdict::Pass
        };
        (evaluations, verdict)
    }

    /// Starts a new stage: every streak back to zero.
    pub fn reset(&mut self) {
        self.gates.clear();
    }
}

/// A comparison's evaluation: its value is the estimated shift, its threshold the margin.
fn compared(
    gate: &CompiledGate,
    entry: &CompiledCompare,
    judged: compare::Judged,
    streak: Streak,
    fired: bool,
) -> Evaluation {
    Evaluation {
        gate: gate.name.clone(),
        condition: entry.label.clone(),
        outcome: judged.outcome,
        value: judged.comparison.estimate,
        threshold: Some(judged.comparison.margin),
        streak,
        fired,
        evidence: None,
        unit: Some(entry.unit),
        compare: Some(judged.comparison),
    }
}

/// Evaluates an `at: end` gate once: point conditions on the newest sample of each probe,
/// `confidence` conditions on `pooled` (the stage's samples; preflight's one check).
pub fn at_end(
    gate: &CompiledGate,
    newest: &HashMap<String, Sample>,
    pooled: Data<'_>,
) -> (Vec<Evaluation>, Verdict) {
    let evaluations: Vec<Evaluation> = gate
        .conditions
        .iter()
        .map(|condition| {
            let judged = judge(condition, newest, pooled);
            let fired = !matches!(judged.outcome, Outcome::Pass | Outcome::Insufficient);
            Evaluation {
                gate: gate.name.clone(),
                condition: condition.text.clone(),
                streak: Streak {
                    count: u32::from(fired),
                    needed: 1,
                    window: None,
                },
                outcome: judged.outcome,
                value: judged.value,
                threshold: judged.threshold,
                fired,
                evidence: judged.evidence,
                unit: Some(condition.unit()),
                compare: None,
            }
        })
        .chain(gate.compares.iter().map(|entry| {
            let empty = Pool::default();
            let series = match pooled {
                Data::Pool(pool) => pool,
                Data::Check(_) => &empty,
            };
            let judged = compare::judge(entry, series, pooled, None);
            let fired = !matches!(judged.outcome, Outcome::Pass | Outcome::Insufficient);
            let streak = Streak {
                count: u32::from(fired),
                needed: 1,
                window: None,
            };
            compared(gate, entry, judged, streak, fired)
        }))
        .collect();
    let described = |pick: fn(&Outcome) -> bool| -> Vec<String> {
        evaluations
            .iter()
            .filter(|e| pick(&e.outcome))
            .map(Evaluation::describe)
            .collect()
    };
    let violations = described(|o| *o == Outcome::Violation);
    let errors = described(|o| matches!(o, Outcome::Error(_)));
    let insufficient = described(|o| *o == Outcome::Insufficient);
    let verdict = if !violations.is_empty() {
        Verdict::Failed {
            action: gate.on_fail,
            reason: format!(
                "gate `{}` did not pass: {}",
                gate.name,
                violations.join("; ")
            ),
        }
    } else if !errors.is_empty() {
        Verdict::Errors {
            action: gate.on_error.1,
            reason: format!(
                "gate `{}` could not be decided: {}",
                gate.name,
                errors.join("; ")
            ),
        }
    } else if !insufficient.is_empty() {
        Verdict::Insufficient {
            reason: format!(
                "gate `{}` has insufficient evidence: {}",
                gate.name,
                insufficient.join("; ")
            ),
        }
    } else {
        Verdict::Pass
    };
    (evaluations, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn gate(yaml: &str) -> CompiledGate {
        let gate: Gate = serde_saphyr::from_str(yaml).unwrap();
        CompiledGate::compile("guard", &gate, None).unwrap()
    }

    fn samples(error_rate: Reading) -> HashMap<String, Sample> {
        let sample = match error_rate {
            Reading::Error(e) => Sample::failed("canary", e),
            reading => Sample::ok(
                "canary",
                BTreeMap::from([("error_rate".to_owned(), reading)]),
            ),
        };
        HashMap::from([("canary".to_owned(), sample)])
    }

    const BAD: Reading = Reading::Value(0.05);
    const GOOD: Reading = Reading::Value(0.001);

    fn run(gate: &CompiledGate, readings: &[Reading]) -> Vec<bool> {
        let mut streaks = Streaks::default();
        readings
            .iter()
            .map(|r| {
                streaks
                    .every_check(gate, &samples(r.clone()), &Pool::default())
                    .1
                    != Verdict::Pass
            })
            .collect()
    }

    fn err() -> Reading {
        Reading::Error("connection refused".into())
    }

    #[test]
    fn consecutive_fails_on_the_nth_violation_in_a_row() {
        let g =
            gate("at: every_check\nrequire: [{check: canary.error_rate <= 1%, consecutive: 3}]");
        assert_eq!(run(&g, &[BAD, BAD, BAD]), [false, false, true]);
    }

    #[test]
    fn a_pass_resets_the_streak() {
        let g =
            gate("at: every_check\nrequire: [{check: canary.error_rate <= 1%, consecutive: 3}]");
        assert_eq!(
            run(&g, &[BAD, BAD, GOOD, BAD, BAD, BAD]),
            [false, false, false, false, false, true]
        );
    }

    #[test]
    fn errors_neither_reset_nor_extend_the_streak() {
        let g = gate(
            "at: every_check\nrequire: [{check: canary.error_rate <= 1%, consecutive: 3}]\non_error: {consecutive: 10}",
        );
        // Two violations, an error, then one violation: the third violation in a row fires.
        assert_eq!(
            run(&g, &[BAD, BAD, err(), BAD]),
            [false, false, false, true]
        );
        // An error does not extend: two violations around errors are still two.
        assert_eq!(
            run(&g, &[BAD, err(), err(), BAD]),
            [false, false, false, false]
        );
    }

    #[test]
    fn within_m_of_the_last_n_evaluated_checks() {
        let g = gate(
            "at: every_check\nrequire: [{check: canary.error_rate <= 1%, within: {violations: 2, checks: 3}}]\non_error: {consecutive: 10}",
        );
        assert_eq!(run(&g, &[BAD, GOOD, BAD]), [false, false, true]);
        assert_eq!(
            run(&g, &[BAD, GOOD, GOOD, BAD]),
            [false, false, false, false]
        );
        // Errors are not evaluated checks: they do not push a violation out of the window.
        assert_eq!(
            run(&g, &[BAD, err(), err(), GOOD, BAD]),
            [false, false, false, false, true]
        );
    }

    #[test]
    fn without_a_rule_one_violation_fails() {
        let g = gate("at: every_check\nrequire: [canary.error_rate <= 1%]");
        assert_eq!(run(&g, &[GOOD, BAD]), [false, true]);
    }

    #[test]
    fn no_data_policies() {
        for (policy, expected) in [
            (
                "error",
                Outcome::Error("no data for `canary.error_rate`".into()),
            ),
            ("pass", Outcome::Pass),
            ("fail", Outcome::Violation),
        ] {
            let g = gate(&format!(
                "at: every_check\nrequire: [{{check: canary.error_rate <= 1%, no_data: {policy}}}]"
            ));
            let (evaluations, _) =
                Streaks::default().every_check(&g, &samples(Reading::NoData), &Pool::default());
            assert_eq!(evaluations[0].outcome, expected, "{policy}");
        }
        // NaN from a probe is no data, never a pass.
        let g = gate("at: every_check\nrequire: [canary.error_rate <= 1%]");
        let (evaluations, _) = Streaks::default().every_check(
            &g,
            &samples(Reading::from_number(f64::NAN)),
            &Pool::default(),
        );
        assert!(matches!(evaluations[0].outcome, Outcome::Error(_)));
    }

    #[test]
    fn on_error_acts_after_k_errors_in_a_row_with_its_action() {
        let g = gate(
            "at: every_check\nrequire: [{check: canary.error_rate <= 1%, consecutive: 3}]\non_fail: rollback\non_error: {consecutive: 2, then: pause}",
        );
        let mut streaks = Streaks::default();
        assert_eq!(
            streaks.every_check(&g, &samples(err()), &Pool::default()).1,
            Verdict::Pass
        );
        match streaks.every_check(&g, &samples(err()), &Pool::default()).1 {
            Verdict::Errors { action, .. } => assert_eq!(action, Action::Pause),
            other => panic!("{other:?}"),
        }
        // A clean check resets the error count.
        let mut streaks = Streaks::default();
        for r in [err(), GOOD, err()] {
            assert_eq!(
                streaks.every_check(&g, &samples(r), &Pool::default()).1,
                Verdict::Pass
            );
        }
        // Default: 3 errors, the gate's on_fail.
        let g = gate("at: every_check\nrequire: [canary.error_rate <= 1%]\non_fail: warn");
        assert_eq!(run(&g, &[err(), err(), err()]), [false, false, true]);
        let mut streaks = Streaks::default();
        for _ in 0..2 {
            streaks.every_check(&g, &samples(err()), &Pool::default());
        }
        assert!(matches!(
            streaks.every_check(&g, &samples(err()), &Pool::default()).1,
            Verdict::Errors {
                action: Action::Warn,
                ..
            }
        ));
    }

    #[test]
    fn end_gates_need_every_condition_to_pass() {
        let g = gate("at: end\nrequire: [canary.error_rate <= 1%]\non_fail: pause");
        assert_eq!(
            at_end(&g, &samples(GOOD), Data::Check(&samples(GOOD))).1,
            Verdict::Pass
        );
        assert!(matches!(
            at_end(&g, &samples(BAD), Data::Check(&samples(BAD))).1,
            Verdict::Failed {
                action: Action::Pause,
                ..
            }
        ));
        assert!(matches!(
            at_end(&g, &samples(err()), Data::Check(&samples(err()))).1,
            Verdict::Errors { .. }
        ));
        assert!(matches!(
            at_end(
                &g,
                &samples(Reading::NoData),
                Data::Check(&samples(Reading::NoData))
            )
            .1,
            Verdict::Errors { .. }
        ));
    }

    #[test]
    fn metric_against_metric_times_factor() {
        let g = gate("at: every_check\nrequire: [load.canary.p95 <= load.legacy.p95 * 1.2]");
        let load = |canary: f64| {
            HashMap::from([(
                "load".to_owned(),
                Sample::ok(
                    "load",
                    BTreeMap::from([
                        ("canary.p95".to_owned(), Reading::Value(canary)),
                        ("legacy.p95".to_owned(), Reading::Value(0.100)),
                    ]),
                ),
            )])
        };
        assert_eq!(
            Streaks::default()
                .every_check(&g, &load(0.119), &Pool::default())
                .1,
            Verdict::Pass
        );
        assert!(matches!(
            Streaks::default()
                .every_check(&g, &load(0.121), &Pool::default())
                .1,
            Verdict::Failed { .. }
        ));
    }

    #[test]
    fn values_show_in_the_thresholds_unit() {
        assert_eq!(show(0.0123, LiteralUnit::Percent), "1.23%");
        assert_eq!(show(0.2, LiteralUnit::Duration), "200ms");
        assert_eq!(show(1.5, LiteralUnit::Duration), "1.5s");
        assert_eq!(show(3.0, LiteralUnit::Plain), "3");
    }
}
