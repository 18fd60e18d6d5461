//! `compare:` entries of gates (`docs/plan.md`, "Compare"): both sides exist, are of one kind
//! (series or distribution) and one unit, and are not the same metric. That the stage runs
//! their probes is checked with the stage's other gate reads (`stages.rs`).

use crate::plan::compare::{CompareKind, compare_kind};
use crate::plan::diagnostic::{Code, Diagnostic, Target};
use crate::plan::expr::MetricRef;
use crate::plan::metrics::MetricUnit;
use crate::plan::model::Compare;
use crate::plan::span::join;

use super::Checker;

impl Checker<'_> {
    pub(super) fn compares(&mut self) {
        let plan = self.plan;
        for (name, gate) in &plan.gates {
            for (k, compare) in gate.compare.iter().enumerate() {
                self.compare(&format!("{}/compare/{k}", join("/gates", name)), compare);
            }
        }
    }

    fn compare(&mut self, pointer: &str, compare: &Compare) {
        let canary_pointer = format!("{pointer}/canary");
        let baseline_pointer = format!("{pointer}/baseline");
        let canary = self.side(&canary_pointer, &compare.canary);
        let baseline = self.side(&baseline_pointer, &compare.baseline);
        if compare.canary == compare.baseline {
            self.push(
                Diagnostic::error(
                    Code::CompareSelf,
                    &baseline_pointer,
                    format!(
                        "`{}` is compared with itself: the shift is always zero",
                        compare.baseline
                    ),
                )
                .depending_on(&canary_pointer)
                .with_help("compare the canary's metric with the version it replaces, e.g. `load.canary.latency` with `load.legacy.latency`"),
            );
            return;
        }
        let (Some((canary_kind, canary_unit)), Some((baseline_kind, baseline_unit))) =
            (canary, baseline)
        else {
            return;
        };
        let probes = [&compare.canary, &compare.baseline]
            .into_iter()
            .flat_map(|m| self.catalog_nodes(m.split('.').next().unwrap_or_default()))
            .collect::<Vec<_>>();
        if canary_kind != baseline_kind {
            let mut d = Diagnostic::error(
                Code::CompareKind,
                &baseline_pointer,
                format!(
                    "`{}` is {} but `{}` is {}: compare like with like",
                    compare.canary,
                    canary_kind.describe(),
                    compare.baseline,
                    baseline_kind.describe()
                ),
            )
            .depending_on(&canary_pointer)
            .with_help(
                "compare a load target's `latency` with another target's `latency`, or two scalar metrics",
            );
            d.add_depends(probes);
            self.push(d);
        } else if !canary_unit.comparable(baseline_unit) {
            let mut d = Diagnostic::error(
                Code::UnitMismatch,
                &baseline_pointer,
                format!(
                    "`{}` is {} but `{}` is {}: they cannot be compared",
                    compare.canary,
                    canary_unit.describe(),
                    compare.baseline,
                    baseline_unit.describe()
                ),
            )
            .depending_on(&canary_pointer);
            d.add_depends(probes);
            self.push(d);
        }
    }

    /// The kind and unit of one side, or `None` (reported) when it does not resolve.
    fn side(&mut self, pointer: &str, name: &str) -> Option<(CompareKind, MetricUnit)> {
        if !name.contains('.') {
            self.push(
                Diagnostic::error(
                    Code::BadExpression,
                    pointer,
                    format!("`{name}` is not a metric: write `PROBE.NAME`"),
                )
                .with_help("e.g. `load.canary.latency` or `prom.error_rate`"),
            );
            return None;
        }
        let metric = MetricRef {
            name: name.to_owned(),
            start: 0,
        };
        let unit = self.metric_unit(pointer, &metric, Target::Value)?;
        let kind = compare_kind(self.plan, name)?;
        Some((kind, unit))
    }
}
