//! Which of a sample's metrics an event line shows, and in which unit: those the gates of its
//! stage read (a load probe gives 24; a person reads the two a gate judges), each in its unit
//! (`5.9ms`, `0.55%`). `--format json` events keep every metric.

use std::collections::{HashMap, HashSet};

use crate::event::evaluation::show;
use crate::plan::metrics::{Catalog, LOAD_METRICS};
use crate::plan::model::Plan;
use crate::plan::units::LiteralUnit;
use crate::probe::{Reading, Sample};

/// What the gates of each stage (`None`: preflight) read, and each metric's unit.
#[derive(Debug, Clone, Default)]
pub struct MetricView {
    /// Full metric names (`load.canary.p95`) read, by stage; absent: show every metric.
    read: HashMap<Option<String>, HashSet<String>>,
    /// Full metric name → the unit it is shown in.
    units: HashMap<String, LiteralUnit>,
}

impl MetricView {
    pub fn of(plan: &Plan) -> MetricView {
        let mut view = MetricView::default();
        for (probe, spec) in &plan.probes {
            if let Catalog::Fixed(metrics) = Catalog::of(spec) {
                for (name, unit) in metrics {
                    // A metric of unknown unit is left to the conditions that read it.
                    if unit.shown_as() != LiteralUnit::Plain {
                        view.units
                            .insert(format!("{probe}.{name}"), unit.shown_as());
                    }
                }
            }
        }
        let note = |view: &mut MetricView, stage: Option<&str>, condition: &str| {
            let read = view.read.entry(stage.map(str::to_owned)).or_default();
            if let Ok(expr) = crate::plan::expr::parse(condition) {
                let unit = match expr.rhs {
                    crate::plan::expr::Rhs::Quantity { unit, .. } => unit,
                    crate::plan::expr::Rhs::Metric { .. } => LiteralUnit::Plain,
                };
                for metric in expr.metrics() {
                    read.insert(metric.name.clone());
                    // A metric of unknown unit reads in the unit its threshold is written in.
                    if unit != LiteralUnit::Plain {
                        view.units.entry(metric.name.clone()).or_insert(unit);
                    }
                }
            }
        };
        for item in &plan.preflight {
            view.read.entry(None).or_default();
            for condition in &item.require {
                note(&mut view, None, condition.check());
            }
        }
        for stage in &plan.stages {
            view.read.entry(Some(stage.name.clone())).or_default();
            for name in stage.effective_gates(plan.defaults.as_ref()) {
                let Some(gate) = plan.gates.get(name) else {
                    continue;
                };
                for condition in &gate.require {
                    note(&mut view, Some(&stage.name), condition.check());
                }
                for compare in &gate.compare {
                    if let Some(read) = view.read.get_mut(&Some(stage.name.clone())) {
                        read.insert(compare.canary.clone());
                        read.insert(compare.baseline.clone());
                    }
                }
            }
        }
        view
    }

    /// The unit of `probe.metric`: as the plan says, else by a load probe's metric names.
    fn unit(&self, sample: &Sample, metric: &str) -> LiteralUnit {
        if let Some(unit) = self.units.get(&format!("{}.{metric}", sample.probe)) {
            return *unit;
        }
        if !crate::report::summary::load_shaped(sample) {
            return LiteralUnit::Plain;
        }
        let kind = metric.rsplit('.').next().unwrap_or(metric);
        LOAD_METRICS
            .iter()
            .find(|(m, _)| *m == kind)
            .map_or(LiteralUnit::Plain, |(_, unit)| unit.shown_as())
    }

    /// `canary.p95=42.9ms canary.error_rate=12.5%`: the metrics the stage's gates read, in
    /// their units; every metric when the view knows no plan, or when no condition reads the
    /// probe (it must only answer) and it has a few.
    pub fn line(&self, stage: Option<&str>, sample: &Sample) -> String {
        let read = self.read.get(&stage.map(str::to_owned));
        let is_read = |k: &str| read.is_none_or(|r| r.contains(&format!("{}.{k}", sample.probe)));
        let none_read = !sample.metrics.keys().any(|k| is_read(k));
        if none_read && sample.metrics.len() > 3 {
            let n = sample.metrics.len();
            return format!("{n} metrics, none read here");
        }
        sample
            .metrics
            .iter()
            .filter(|(k, _)| none_read || is_read(k))
            .map(|(k, v)| format!("{k}={}", reading(v, self.unit(sample, k))))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn reading(r: &Reading, unit: LiteralUnit) -> String {
    match r {
        Reading::Value(v) => show(*v, unit),
        Reading::NoData => "no data".to_owned(),
        Reading::Error(e) => format!("error ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_load_sample_shows_what_the_stages_gates_read_in_their_units() {
        let plan: Plan = serde_saphyr::from_str(
            r"
version: 1
name: t
probes:
  load:
    load:
      targets: { canary: 'http://127.0.0.1:1/', legacy: 'http://127.0.0.1:1/' }
  stats:
    http: { url: 'http://127.0.0.1:1/', metrics: { memory: '$.memory' } }
gates:
  guard:
    at: every_check
    require: ['load.canary.p95 <= 200ms', 'load.canary.error_rate <= 1%', 'stats.memory <= 85%']
stages:
  - { name: one, traffic: 5, bake: 1m, gates: [guard] }
",
        )
        .unwrap();
        let view = MetricView::of(&plan);
        let metrics: BTreeMap<String, Reading> = [
            ("canary.p95", 0.0059),
            ("canary.error_rate", 0.0055),
            ("canary.avg", 0.0069),
            ("legacy.p95", 0.004),
            ("canary.requests", 40.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Reading::Value(v)))
        .collect();
        let sample = Sample::ok("load", metrics.clone());
        assert_eq!(
            view.line(Some("one"), &sample),
            "canary.error_rate=0.55% canary.p95=5.9ms"
        );
        // Without a plan: every metric, a load probe's in their units.
        assert_eq!(
            MetricView::default().line(Some("one"), &sample),
            "canary.avg=6.9ms canary.error_rate=0.55% canary.p95=5.9ms canary.requests=40 legacy.p95=4ms"
        );
        let stats = Sample::ok(
            "stats",
            [("memory".to_owned(), Reading::Value(0.48))].into(),
        );
        assert_eq!(view.line(Some("one"), &stats), "memory=48%");
    }
}
