//! A plan and a journal of another shape: the plan as the backtest judges it (conditions on
//! metrics the journal never recorded left out) and what was skipped, said in words
//! (README, "Backtest").

use std::collections::HashSet;

use crate::backtest::recorded::Recorded;
use crate::plan::evidence::{IntervalKind, interval_kind};
use crate::plan::model::{Condition, Plan};

/// The metrics a journal recorded (`PROBE.METRIC`, latency distributions as
/// `PROBE.TARGET.latency`) and the probes it recorded a failure of.
struct Seen {
    metrics: HashSet<String>,
    failed: HashSet<String>,
}

impl Seen {
    fn of(recorded: &Recorded) -> Seen {
        let mut seen = Seen {
            metrics: HashSet::new(),
            failed: HashSet::new(),
        };
        for ((_, probe), samples) in &recorded.samples {
            for sample in samples {
                if sample.error.is_some() {
                    seen.failed.insert(probe.clone());
                }
                seen.metrics
                    .extend(sample.metrics.keys().map(|m| format!("{probe}.{m}")));
                seen.metrics.extend(
                    sample
                        .histograms
                        .keys()
                        .map(|t| format!("{probe}.{t}.latency")),
                );
            }
        }
        seen
    }

    /// The first metric of `names` the journal has no reading of; a probe recorded as failed
    /// has errors for every metric, which the gates judge.
    fn missing<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
        names.find(|name| {
            let probe = name.split('.').next().unwrap_or_default();
            !self.metrics.contains(*name) && !self.failed.contains(probe)
        })
    }

    /// The first metric a condition of `plan` reads that the journal lacks: its expression's,
    /// and the count its interval is measured over (`of:`, or a load rate's `requests`),
    /// without which every check would be an error.
    fn condition_missing(&self, plan: &Plan, condition: &Condition) -> Option<String> {
        let expr = crate::plan::expr::parse(condition.check()).ok()?;
        let count = match interval_kind(plan, condition) {
            Some(IntervalKind::Wilson { count: Some(count) }) => Some(count),
            Some(IntervalKind::Wilson { count: None }) => expr
                .metric
                .name
                .rsplit_once('.')
                .map(|(target, _)| format!("{target}.requests")),
            _ => None,
        };
        let names: Vec<&str> = expr
            .metrics()
            .map(|m| m.name.as_str())
            .chain(count.as_deref())
            .collect();
        self.missing(names.into_iter()).map(str::to_owned)
    }
}

/// `plan` with the conditions and comparisons whose metrics `recorded` lacks left out, and
/// what was skipped: those, stages only one side has, and probes a plan stage checks that the
/// recorded stage never sampled.
pub fn fit(original: &Plan, recorded: &Recorded) -> (Plan, Vec<String>) {
    let seen = Seen::of(recorded);
    let mut plan = original.clone();
    let mut skipped = Vec::new();
    // Sets, not lists: a journal may name a great many stages.
    let in_plan: HashSet<&str> = original.stages.iter().map(|s| s.name.as_str()).collect();
    let in_journal: HashSet<&str> = recorded.stages.iter().map(String::as_str).collect();
    for stage in &recorded.stages {
        if !in_plan.contains(stage.as_str()) {
            skipped.push(format!("stage `{stage}`: recorded, not in the plan"));
        }
    }
    let defaults = plan.defaults.clone().unwrap_or_default();
    // A plan stage the recorded run never reached is no difference of shape: the run ended
    // before it. One it passed over, or any after a completed run, is.
    let reached = plan
        .stages
        .iter()
        .rposition(|s| in_journal.contains(s.name.as_str()))
        .unwrap_or(0);
    let completed = recorded.completed;
    for (index, stage) in plan.stages.iter().enumerate() {
        if !in_journal.contains(stage.name.as_str()) {
            if index > reached && !completed {
                continue;
            }
            skipped.push(format!(
                "stage `{}`: in the plan, not recorded (undecided from there)",
                stage.name
            ));
            continue;
        }
        let probes = stage
            .checks
            .as_ref()
            .or(defaults.checks.as_ref())
            .map(|c| c.probes.clone())
            .unwrap_or_default();
        for probe in probes {
            if !recorded
                .samples
                .contains_key(&(Some(stage.name.clone()), probe.clone()))
            {
                skipped.push(format!(
                    "stage `{}`, probe `{probe}`: not recorded there (its metrics read as no data)",
                    stage.name
                ));
            }
        }
    }
    for (name, gate) in &mut plan.gates {
        gate.require.retain(|condition| {
            let Some(metric) = seen.condition_missing(original, condition) else {
                return true;
            };
            skipped.push(format!(
                "gate `{name}`, `{}`: `{metric}` never recorded",
                condition.check()
            ));
            false
        });
        gate.compare.retain(|compare| {
            let names = [compare.canary.as_str(), compare.baseline.as_str()];
            let Some(metric) = seen.missing(names.into_iter()) else {
                return true;
            };
            skipped.push(format!(
                "gate `{name}`, `{} vs {}`: `{metric}` never recorded",
                compare.canary, compare.baseline
            ));
            false
        });
    }
    // A preflight probe the recorded run never took: the item is not judged (the run would
    // otherwise be undecided before its first stage).
    plan.preflight.retain(|item| {
        let Some(probe) = &item.probe else {
            return true;
        };
        if recorded.samples.contains_key(&(None, probe.clone())) {
            return true;
        }
        skipped.push(format!(
            "preflight `{}`: probe `{probe}` not recorded in preflight",
            item.name
        ));
        false
    });
    for item in &mut plan.preflight {
        let name = item.name.clone();
        item.require.retain(|condition| {
            let Some(metric) = seen.condition_missing(original, condition) else {
                return true;
            };
            skipped.push(format!(
                "preflight `{name}`, `{}`: `{metric}` never recorded",
                condition.check()
            ));
            false
        });
    }
    (plan, skipped)
}
