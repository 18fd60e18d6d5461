//! Checks of `confidence`, `of`, `insufficient` and `early` (`docs/plan.md`, "Evidence"): a
//! condition judged on an interval needs a metric that has one, and a plan should gather the
//! data its conditions need before they can pass.

use std::fmt::Write as _;
use std::time::Duration;

use crate::plan::compare::{CompareKind, compare_kind};
use crate::plan::diagnostic::{Code, Diagnostic, Target};
use crate::plan::expr::{self, Expr, MetricRef, Op, Rhs};
use crate::plan::metrics::{Catalog, MetricUnit};
use crate::plan::model::{
    Compare, Condition, ConditionSpec, Confidence, DEFAULT_REQUESTS, Gate, GateAt, LoadProbeSpec,
    Plan, ProbeKind, Stage,
};
use crate::plan::semantic::check_count;
use crate::plan::span::join;
use crate::plan::units::{PlanDuration, format_duration};
use crate::stats::{Needed, percentile_needed, ratio_needed};

/// The interval a condition with `confidence` is judged on.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalKind {
    /// Wilson score interval of a ratio; `count` is the metric it was measured over, `None`
    /// for the load probe's rates (their count is the probe's `requests`).
    Wilson { count: Option<String> },
    /// Order-statistic interval of a load percentile `p` (0.95 for p95).
    Percentile { p: f64 },
}

/// The load percentiles and their `p`.
const PERCENTILES: &[(&str, f64)] = &[("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)];

/// Every evidence problem of a plan, appended to `out`.
pub fn check(plan: &Plan, out: &mut Vec<Diagnostic>) {
    for (name, gate) in &plan.gates {
        let pointer = join("/gates", name);
        for (k, condition) in gate.require.iter().enumerate() {
            interval_of(plan, &format!("{pointer}/require/{k}"), condition, out);
        }
        if gate.insufficient.is_some() && gate.at != GateAt::End {
            out.push(
                Diagnostic::error(
                    Code::Conflict,
                    format!("{pointer}/insufficient"),
                    "`insufficient` extends a bake, which only an `at: end` gate decides",
                )
                .at_key()
                .depending_on(format!("{pointer}/at"))
                .with_help("move `insufficient` to an `at: end` gate, or drop it"),
            );
        }
    }
    for (i, item) in plan.preflight.iter().enumerate() {
        for (k, condition) in item.require.iter().enumerate() {
            interval_of(plan, &format!("/preflight/{i}/require/{k}"), condition, out);
        }
    }
    for (i, stage) in plan.stages.iter().enumerate() {
        let pointer = format!("/stages/{i}");
        planned(plan, &pointer, stage, out);
        early(plan, &pointer, stage, out);
    }
}

/// The interval a condition of a valid plan is judged on: `None` without `confidence`. What
/// the run loop asks; validation has reported any condition that has none.
pub fn interval_kind(plan: &Plan, condition: &Condition) -> Option<IntervalKind> {
    interval_of(plan, "", condition, &mut Vec::new())
}

/// The interval a condition is judged on: `None` without `confidence`, or when the condition
/// has none to offer (reported into `out`).
fn interval_of(
    plan: &Plan,
    pointer: &str,
    condition: &Condition,
    out: &mut Vec<Diagnostic>,
) -> Option<IntervalKind> {
    let Condition::Detailed(spec) = condition else {
        return None;
    };
    // Without `confidence`, `of` names a count nothing reads.
    if spec.confidence.is_none() {
        if spec.of.is_some() {
            out.push(
                Diagnostic::error(
                    Code::Conflict,
                    format!("{pointer}/of"),
                    "`of` names the count behind a ratio for `confidence`, and this condition has no `confidence`",
                )
                .at_key()
                .with_help("add `confidence: 95%`, or drop `of`"),
            );
        }
        return None;
    }
    // A condition that does not parse, or names what does not exist, is reported elsewhere.
    let expr = expr::parse(&spec.check).ok()?;
    let unit = unit_of(plan, &expr.metric)?;
    let check = format!("{pointer}/check");
    if matches!(expr.op, Op::Eq | Op::Ne) {
        out.push(
            Diagnostic::error(
                Code::ConfidenceOperator,
                &check,
                format!(
                    "`{}` takes no `confidence`: an interval judges only `<`, `<=`, `>` and `>=`",
                    expr.op
                ),
            )
            .depending_on(format!("{pointer}/confidence"))
            .with_help("use `<=`, `<`, `>=` or `>`, or drop `confidence`"),
        );
        return None;
    }
    if let Rhs::Metric { metric, .. } = &expr.rhs {
        out.push(
            Diagnostic::error(
                Code::NoInterval,
                &check,
                format!(
                    "`confidence` judges a metric against a threshold, and this condition compares `{}` with `{}`",
                    expr.metric.name, metric.name
                ),
            )
            .with_target(Target::Within {
                start: metric.start,
                len: metric.name.len(),
            })
            .with_help("write a threshold (e.g. `<= 300ms`), or drop `confidence`"),
        );
        return None;
    }
    let load = load_probe(plan, expr.metric.probe());
    let within = expr.metric.within_probe();
    let last = within.rsplit('.').next().unwrap_or_default();
    if load.is_some() {
        if let Some((_, p)) = PERCENTILES.iter().find(|(name, _)| *name == last) {
            if spec.of.is_some() {
                out.push(of_not_for(
                    pointer,
                    &expr.metric,
                    "a percentile of the probe's own latencies",
                ));
                return None;
            }
            return Some(IntervalKind::Percentile { p: *p });
        }
        if matches!(last, "error_rate" | "success_rate") && spec.of.is_none() {
            return Some(IntervalKind::Wilson { count: None });
        }
    }
    if let Some(of) = &spec.of {
        if !matches!(unit, MetricUnit::Ratio | MetricUnit::Unknown) {
            out.push(of_not_for(pointer, &expr.metric, unit.describe()));
            return None;
        }
        return count_metric(plan, pointer, of, out).then(|| IntervalKind::Wilson {
            count: Some(of.clone()),
        });
    }
    out.push(no_interval(&check, &expr, unit, load.is_some()));
    None
}

fn no_interval(check: &str, expr: &Expr, unit: MetricUnit, load: bool) -> Diagnostic {
    let name = &expr.metric.name;
    let (message, help) = if load {
        let target = name.rsplit_once('.').map_or(name.as_str(), |(t, _)| t);
        (
            format!(
                "`{name}` has no interval: of a load probe's metrics, only `error_rate`, `success_rate` and the percentiles have one"
            ),
            format!(
                "judge `{target}.p50` (or p90, p95, p99) or `{target}.error_rate` instead, or drop `confidence`"
            ),
        )
    } else if matches!(unit, MetricUnit::Ratio | MetricUnit::Unknown) {
        (
            format!("`{name}` has no interval: `confidence` needs the count it was measured over"),
            format!(
                "add `of: METRIC` naming that count (e.g. a query of `sum(increase(requests_total[5m]))`), if `{name}` is a ratio"
            ),
        )
    } else {
        (
            format!("`{name}` is {} and has no interval", unit.describe()),
            "`confidence` applies to ratios with a count and to load percentiles; drop it here"
                .to_owned(),
        )
    };
    Diagnostic::error(Code::NoInterval, check, message)
        .with_target(Target::Within {
            start: expr.metric.start,
            len: name.len(),
        })
        .depending_on(join("/probes", expr.metric.probe()))
        .with_help(help)
}

fn of_not_for(pointer: &str, metric: &MetricRef, what: &str) -> Diagnostic {
    Diagnostic::error(
        Code::Conflict,
        format!("{pointer}/of"),
        format!(
            "`of` names the count behind a ratio, and `{}` is {what}",
            metric.name
        ),
    )
    .at_key()
    .with_help("drop `of`")
}

/// Whether `of` names a metric that can be a count (reported when not).
fn count_metric(plan: &Plan, pointer: &str, of: &str, out: &mut Vec<Diagnostic>) -> bool {
    let of_pointer = format!("{pointer}/of");
    let Some((probe, within)) = of.split_once('.') else {
        out.push(
            Diagnostic::error(
                Code::BadExpression,
                &of_pointer,
                format!("`{of}` is not a metric: write `PROBE.NAME`"),
            )
            .with_help("e.g. `of: prom.requests`"),
        );
        return false;
    };
    let Some(definition) = plan.probes.get(probe) else {
        out.push(
            Diagnostic::error(
                Code::UnknownProbe,
                &of_pointer,
                format!("`{of}` reads probe `{probe}`, which is not defined in `probes`"),
            )
            .depending_on(join("/probes", probe)),
        );
        return false;
    };
    match Catalog::of(definition).unit(within) {
        None => {
            out.push(
                Diagnostic::error(
                    Code::UnknownMetric,
                    &of_pointer,
                    format!("probe `{probe}` cannot produce `{of}`"),
                )
                .depending_on(join("/probes", probe)),
            );
            false
        }
        Some(MetricUnit::Count | MetricUnit::Unknown) => true,
        Some(unit) => {
            out.push(
                Diagnostic::error(
                    Code::UnitMismatch,
                    &of_pointer,
                    format!("`of` names a count, and `{of}` is {}", unit.describe()),
                )
                .depending_on(join("/probes", probe)),
            );
            false
        }
    }
}

/// The unit of a metric, when its probe exists and produces it.
fn unit_of(plan: &Plan, metric: &MetricRef) -> Option<MetricUnit> {
    let probe = plan.probes.get(metric.probe())?;
    // A distribution in a condition is reported by the condition check; it has no interval.
    if crate::plan::metrics::is_distribution(probe, metric.within_probe()) {
        return None;
    }
    Catalog::of(probe).unit(metric.within_probe())
}

fn load_probe<'a>(plan: &'a Plan, name: &str) -> Option<&'a LoadProbeSpec> {
    match plan.probes.get(name)?.kind()? {
        ProbeKind::Load(load) => Some(load),
        _ => None,
    }
}

/// Requests a load probe sends each target in one check: `requests` (default 50), or
/// `rate` × `duration`; `None` when a duration is paced by `delay` (unknown ahead).
pub fn requests_per_check(load: &LoadProbeSpec) -> Option<u64> {
    match (load.duration, load.rate) {
        (None, _) => Some(load.requests.unwrap_or(DEFAULT_REQUESTS)),
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive rate times a duration of at most ten years"
        )]
        (Some(duration), Some(rate)) => Some((rate * duration.as_duration().as_secs_f64()) as u64),
        (Some(_), None) => None,
    }
}

/// What one `confidence` condition of a stage needs and what the stage gathers for it, as
/// `validate` warns and the dry run prints.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidencePlan {
    /// The gate and the condition's index in its `require` (in its `compare` when `compare`).
    pub gate: String,
    pub condition: usize,
    /// A `compare:` entry: `needed` is its `min_points`, on each side.
    pub compare: bool,
    /// The condition's text and its confidence (a fraction).
    pub check: String,
    pub confidence: f64,
    /// Requests (ratios) or latencies (percentiles) it needs, with no errors, before it can
    /// pass; `Never` when no amount will do.
    pub needed: Needed,
    /// What the stage gathers for it: one check's worth for `every_check` gates, the whole
    /// bake's for `at: end` gates.
    pub gathered: u64,
    /// Requests one check gathers.
    pub per_check: u64,
    /// Checks counted (1 for `every_check`).
    pub checks: u64,
    /// Checks the gate's `insufficient.extend` may add to an `at: end` gate.
    pub extension_checks: u64,
    pub at: GateAt,
    /// "requests" or "latencies".
    pub unit: &'static str,
}

impl EvidencePlan {
    /// Whether the condition cannot pass on what the stage gathers, even with no errors.
    pub fn short(&self) -> bool {
        match self.needed {
            Needed::Count(n) => n > self.gathered,
            Needed::Never => true,
        }
    }
}

/// Every `confidence` condition of `stage` whose data the plan can count ahead (load probes
/// with a known number of requests), in gate order.
pub fn stage_evidence(plan: &Plan, stage: &Stage) -> Vec<EvidencePlan> {
    let defaults = plan.defaults.as_ref();
    let Some(checks) = stage.effective_checks(defaults) else {
        return Vec::new();
    };
    let bake = stage.bake.as_duration();
    let count = check_count(bake, checks) as u64;
    // Checks in an extension come at the stage's cadence (one at its end without `every`).
    let every = checks
        .every
        .map(PlanDuration::as_duration)
        .filter(|e| !e.is_zero())
        .unwrap_or(bake);
    let mut out = Vec::new();
    for gate_name in stage.effective_gates(defaults) {
        let Some(gate) = plan.gates.get(gate_name) else {
            continue;
        };
        for (k, condition) in gate.require.iter().enumerate() {
            let Condition::Detailed(spec) = condition else {
                continue;
            };
            if let Some(entry) = condition_evidence(plan, gate_name, gate, k, spec, count, every) {
                out.push(entry);
            }
        }
        for (k, compare) in gate.compare.iter().enumerate() {
            if let Some(entry) = compare_evidence(plan, gate_name, gate, k, compare, count, every) {
                out.push(entry);
            }
        }
    }
    out
}

/// Checks an `at: end` gate's `insufficient.extend` may add at the stage's cadence.
fn extension_checks(gate: &Gate, every: Duration) -> u64 {
    if every.is_zero() {
        return 0;
    }
    let extend = gate.on_insufficient().extend();
    u64::try_from(extend.as_millis() / every.as_millis()).unwrap_or(u64::MAX)
}

/// What a `compare:` entry needs (`min_points` a side) and what the stage gathers: a load
/// target's latencies per check (one check's in an `every_check` gate, the bake's at its end),
/// or one value per check for a series.
fn compare_evidence(
    plan: &Plan,
    gate_name: &str,
    gate: &Gate,
    k: usize,
    compare: &Compare,
    count: u64,
    every: Duration,
) -> Option<EvidencePlan> {
    let distribution = compare_kind(plan, &compare.canary) == Some(CompareKind::Distribution);
    let (per_check, unit) = if distribution {
        let probe = compare.canary.split('.').next().unwrap_or_default();
        (requests_per_check(load_probe(plan, probe)?)?, "latencies")
    } else {
        (1, "values")
    };
    let min_points = compare.min_points.unwrap_or(if distribution {
        Compare::MIN_POINTS_DISTRIBUTION
    } else {
        Compare::MIN_POINTS_SERIES
    });
    let (checks, extension_checks) = match (gate.at, distribution) {
        // A check's own latencies; a series grows through the bake.
        (GateAt::EveryCheck, true) => (1, 0),
        (GateAt::EveryCheck, false) => (count, 0),
        (GateAt::End, _) => (count, extension_checks(gate, every)),
    };
    Some(EvidencePlan {
        gate: gate_name.to_owned(),
        condition: k,
        compare: true,
        check: compare.label(),
        confidence: compare.confidence(),
        needed: Needed::Count(u64::from(min_points)),
        gathered: per_check.saturating_mul(checks),
        per_check,
        checks,
        extension_checks,
        at: gate.at,
        unit,
    })
}

fn condition_evidence(
    plan: &Plan,
    gate_name: &str,
    gate: &Gate,
    k: usize,
    spec: &ConditionSpec,
    count: u64,
    every: Duration,
) -> Option<EvidencePlan> {
    let confidence = spec.confidence?.fraction();
    let kind = interval_kind(plan, &Condition::Detailed(spec.clone()))?;
    let expr = expr::parse(&spec.check).ok()?;
    let Rhs::Quantity { value, .. } = expr.rhs else {
        return None;
    };
    let (needed, unit) = match kind {
        // A count from a query is not known ahead.
        IntervalKind::Wilson { count: Some(_) } => return None,
        IntervalKind::Wilson { count: None } => {
            (ratio_needed(expr.op, value, confidence), "requests")
        }
        IntervalKind::Percentile { p } => (percentile_needed(expr.op, p, confidence), "latencies"),
    };
    let per_check = requests_per_check(load_probe(plan, expr.metric.probe())?)?;
    let (checks, extension_checks) = match gate.at {
        GateAt::EveryCheck => (1, 0),
        GateAt::End => (count, extension_checks(gate, every)),
    };
    Some(EvidencePlan {
        gate: gate_name.to_owned(),
        condition: k,
        compare: false,
        check: spec.check.clone(),
        confidence,
        needed,
        gathered: per_check.saturating_mul(checks),
        per_check,
        checks,
        extension_checks,
        at: gate.at,
        unit,
    })
}

/// `insufficient-evidence`: a condition that cannot pass on what the stage gathers.
fn planned(plan: &Plan, pointer: &str, stage: &Stage, out: &mut Vec<Diagnostic>) {
    let checks_pointer = if stage.checks.is_some() {
        format!("{pointer}/checks")
    } else {
        "/defaults/checks".to_owned()
    };
    for entry in stage_evidence(plan, stage) {
        if !entry.short() {
            continue;
        }
        let check = format!(
            "`{}` at {} confidence",
            entry.check,
            Confidence(entry.confidence)
        );
        let list = if entry.compare { "compare" } else { "require" };
        let needs = match (entry.needed, entry.unit) {
            (Needed::Count(n), unit) if entry.compare => format!(
                "`{}` needs {n} {unit} on each side (`min_points`) to decide",
                entry.check
            ),
            (Needed::Count(n), "latencies") => {
                format!("{check} needs {n} latencies to bound the percentile")
            }
            (Needed::Count(n), unit) => format!("{check} needs {n} {unit} with no errors to pass"),
            (Needed::Never, _) => {
                // No amount of data helps: say so, without numbers that suggest otherwise.
                let mut d = Diagnostic::warning(
                    Code::InsufficientEvidence,
                    format!(
                        "{}/require/{}",
                        join("/gates", &entry.gate),
                        entry.condition
                    ),
                    format!(
                        "{check} can never pass, whatever stage `{}` gathers",
                        stage.name
                    ),
                )
                .with_help("an interval never lies wholly beyond 0% or 100%: change the threshold");
                d.add_depends([format!("{}/at", join("/gates", &entry.gate))]);
                out.push(d);
                continue;
            }
        };
        let mut message = format!(
            "{needs}, but stage `{}` gathers {}",
            stage.name, entry.gathered
        );
        let _ = match entry.at {
            GateAt::EveryCheck => write!(message, " in each check"),
            GateAt::End => write!(
                message,
                " in its bake of {} ({} a check × {} checks)",
                format_duration(stage.bake.as_duration()),
                entry.per_check,
                entry.checks
            ),
        };
        let help = match (entry.at, entry.needed) {
            (GateAt::EveryCheck, _) if entry.compare && entry.unit == "values" => "bake longer or check more often (a series gains one value a check), or lower `min_points`".to_owned(),
            (GateAt::EveryCheck, _) if entry.compare => "send more requests a check, or judge it in an `at: end` gate, where the stage's latencies pool".to_owned(),
            (GateAt::EveryCheck, _) => "send more requests a check, or judge it in an `at: end` gate, where the stage's checks pool".to_owned(),
            (GateAt::End, Needed::Count(n))
                if entry.per_check * (entry.checks + entry.extension_checks) >= n =>
            {
                format!(
                    "`insufficient.extend` makes up the difference ({} checks more), so the bake always extends: bake longer, or send more requests a check",
                    entry.extension_checks
                )
            }
            (GateAt::End, _) => "bake longer, check more often, send more requests a check, or give the gate `insufficient: {extend: …}`".to_owned(),
        };
        let gate_pointer = join("/gates", &entry.gate);
        out.push(
            Diagnostic::warning(
                Code::InsufficientEvidence,
                format!("{gate_pointer}/{list}/{}", entry.condition),
                message,
            )
            .depending_on(format!("{gate_pointer}/at"))
            .depending_on(format!("{pointer}/bake"))
            .depending_on(checks_pointer.clone())
            .with_help(help),
        );
    }
}

/// `early` needs an end gate judged on intervals, and room before the bake ends.
fn early(plan: &Plan, pointer: &str, stage: &Stage, out: &mut Vec<Diagnostic>) {
    let Some(early) = stage.early else {
        return;
    };
    if early.after.as_duration() > stage.bake.as_duration() {
        out.push(
            Diagnostic::error(
                Code::OffsetBeyondBake,
                format!("{pointer}/early/after"),
                format!(
                    "`early.after` is {}, past the bake of {}: the bake ends first",
                    early.after,
                    format_duration(stage.bake.as_duration())
                ),
            )
            .depending_on(format!("{pointer}/bake"))
            .with_help("use an `after` shorter than `bake`"),
        );
    }
    let judged_on_intervals = stage
        .effective_gates(plan.defaults.as_ref())
        .iter()
        .filter_map(|name| plan.gates.get(name))
        .filter(|gate| gate.at == GateAt::End)
        .any(|gate| {
            // A comparison is judged on an interval too.
            !gate.compare.is_empty()
                || gate
                    .require
                    .iter()
                    .any(|c| matches!(c, Condition::Detailed(spec) if spec.confidence.is_some()))
        });
    if !judged_on_intervals {
        out.push(
            Diagnostic::warning(
                Code::EarlyWithoutConfidence,
                format!("{pointer}/early"),
                format!(
                    "stage `{}` may end early, but none of its `at: end` conditions has `confidence`: point values end bakes on luck",
                    stage.name
                ),
            )
            .at_key()
            .depending_on(format!("{pointer}/gates"))
            .with_help("give its end conditions `confidence: 95%`, or drop `early`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(gates: &str, stage_extra: &str) -> Plan {
        let yaml = format!(
            "version: 1\nname: t\nprobes:\n  load:\n    load:\n      targets: {{ canary: \"http://127.0.0.1:9/c\" }}\n  prom:\n    prometheus:\n      url: http://127.0.0.1:9\n      queries: {{ errors: x, requests: y }}\ngates:\n{gates}stages:\n  - name: one\n    traffic: 100\n    bake: 1h\n    checks: {{ every: 5m, probes: [load, prom] }}\n    gates: [g]\n{stage_extra}"
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn codes(plan: &Plan) -> Vec<&'static str> {
        let mut out = Vec::new();
        check(plan, &mut out);
        out.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn pooled_fifty_a_check_over_an_hour_is_short_of_765() {
        let p = plan(
            "  g:\n    at: end\n    require:\n      - { check: load.canary.error_rate <= 0.5%, confidence: 95% }\n",
            "",
        );
        let evidence = stage_evidence(&p, &p.stages[0]);
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0].needed, Needed::Count(765));
        assert_eq!(evidence[0].gathered, 600); // 50 × 12 checks
        assert!(evidence[0].short());
        assert_eq!(codes(&p), ["insufficient-evidence"]);
    }

    #[test]
    fn a_threshold_no_interval_can_meet_says_so() {
        let p = plan(
            "  g:\n    at: every_check\n    require:\n      - { check: load.canary.error_rate < 0%, confidence: 95% }\n",
            "",
        );
        let mut out = Vec::new();
        check(&p, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "`load.canary.error_rate < 0%` at 95% confidence can never pass, whatever stage `one` gathers"
        );
    }

    #[test]
    fn a_comparison_needs_min_points_on_each_side() {
        // A series gains one value a check: 12 in the hour, short of 20.
        let p = plan(
            "  g:\n    at: end\n    compare:\n      - { canary: prom.errors, baseline: prom.requests, min_points: 20 }\n",
            "",
        );
        let evidence = stage_evidence(&p, &p.stages[0]);
        assert_eq!(evidence.len(), 1);
        assert!(evidence[0].compare);
        assert_eq!(evidence[0].needed, Needed::Count(20));
        assert_eq!(evidence[0].gathered, 12);
        let mut out = Vec::new();
        check(&p, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].pointer, "/gates/g/compare/0");
        assert!(
            out[0].message.starts_with(
                "`prom.errors vs prom.requests` needs 20 values on each side (`min_points`) to decide"
            ),
            "{}",
            out[0].message
        );
        // Latencies: one check's 50 in an every_check gate, short of 100; pooled over the
        // hour at its end, enough.
        let latencies = |at: &str| {
            plan(
                &format!(
                    "  g:\n    at: {at}\n    compare:\n      - {{ canary: load.canary.latency, baseline: load.canary.latency, min_points: 100 }}\n"
                ),
                "",
            )
        };
        assert_eq!(codes(&latencies("every_check")), ["insufficient-evidence"]);
        assert!(codes(&latencies("end")).is_empty());
        // The default series and distribution minimums are 5 and 20.
        let p = plan(
            "  g:\n    at: every_check\n    compare:\n      - { canary: prom.errors, baseline: prom.requests }\n      - { canary: load.canary.latency, baseline: load.canary.latency }\n",
            "",
        );
        let needed: Vec<Needed> = stage_evidence(&p, &p.stages[0])
            .iter()
            .map(|e| e.needed)
            .collect();
        assert_eq!(needed, [Needed::Count(5), Needed::Count(20)]);
    }

    #[test]
    fn every_check_counts_one_check() {
        let p = plan(
            "  g:\n    at: every_check\n    require:\n      - { check: load.canary.p99 <= 200ms, confidence: 95% }\n",
            "",
        );
        let evidence = stage_evidence(&p, &p.stages[0]);
        assert_eq!(evidence[0].gathered, 50);
        assert_eq!(codes(&p), ["insufficient-evidence"]);
    }

    #[test]
    fn intervals_need_a_count_or_a_percentile() {
        let p = plan(
            "  g:\n    at: end\n    require:\n      - { check: prom.errors <= 1%, confidence: 95% }\n      - { check: load.canary.avg <= 1s, confidence: 95% }\n      - { check: prom.errors <= 1%, confidence: 95%, of: prom.requests }\n      - { check: load.canary.p50 == 1s, confidence: 95% }\n",
            "",
        );
        assert_eq!(
            codes(&p),
            ["no-interval", "no-interval", "confidence-operator"]
        );
    }

    #[test]
    fn confidence_reads_as_a_percentage_or_a_fraction() {
        let read = |text: &str| serde_saphyr::from_str::<ConditionSpec>(text).map(|s| s.confidence);
        let fraction = |text: &str| read(text).unwrap().unwrap().fraction();
        assert!((fraction("{check: a.b <= 1, confidence: 95%}") - 0.95).abs() < 1e-12);
        assert!((fraction("{check: a.b <= 1, confidence: 0.95}") - 0.95).abs() < 1e-12);
        assert!((fraction("{check: a.b <= 1, confidence: 99.99%}") - 0.9999).abs() < 1e-12);
        for bad in ["100%", "49.9%", "0.3", "1", "95", "high"] {
            assert!(
                read(&format!("{{check: a.b <= 1, confidence: {bad}}}")).is_err(),
                "{bad}"
            );
        }
        assert_eq!(Confidence(0.9999).to_string(), "99.99%");
        assert_eq!(Confidence(0.95).to_string(), "95%");
    }

    #[test]
    fn requests_of_a_timed_probe_are_rate_times_duration() {
        let load = |yaml: &str| serde_saphyr::from_str::<LoadProbeSpec>(yaml).unwrap();
        let targets = "targets: {c: \"http://127.0.0.1:9\"}";
        assert_eq!(
            requests_per_check(&load(&format!("{{{targets}}}"))),
            Some(50)
        );
        assert_eq!(
            requests_per_check(&load(&format!("{{{targets}, duration: 1m, rate: 20}}"))),
            Some(1200)
        );
        assert_eq!(
            requests_per_check(&load(&format!("{{{targets}, duration: 1m}}"))),
            None
        );
    }

    #[test]
    fn early_without_confidence_warns() {
        let p = plan(
            "  g:\n    at: end\n    require: [load.canary.error_rate <= 1%]\n",
            "    early: { after: 30m }\n",
        );
        assert_eq!(codes(&p), ["early-without-confidence"]);
    }
}
