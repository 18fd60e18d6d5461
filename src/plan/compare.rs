//! What a `compare:` side reads (`docs/plan.md`, "Compare"): a series of a scalar metric's
//! values at the stage's checks, or a distribution of raw latencies — asked by validation and
//! by the engine that judges the entry.

use crate::plan::metrics::{Catalog, is_distribution};
use crate::plan::model::Plan;

/// The kind of values one side of a `compare:` entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareKind {
    /// A scalar metric: one value per check (errors and no-data dropped).
    Series,
    /// A load probe's `TARGET.latency`: the raw latencies of a check, from its histogram.
    Distribution,
}

impl CompareKind {
    pub fn describe(self) -> &'static str {
        match self {
            CompareKind::Series => "a series (one value per check)",
            CompareKind::Distribution => "a distribution of latencies",
        }
    }
}

/// The kind of `metric` (`PROBE.NAME`), or `None` when no probe of the plan produces it.
pub fn compare_kind(plan: &Plan, metric: &str) -> Option<CompareKind> {
    let (probe, within) = metric.split_once('.')?;
    let spec = plan.probes.get(probe)?;
    Catalog::of(spec).unit(within)?;
    Some(if is_distribution(spec, within) {
        CompareKind::Distribution
    } else {
        CompareKind::Series
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        serde_saphyr::from_str(
            r#"
version: 1
name: t
probes:
  load:
    load:
      targets: { canary: "http://127.0.0.1:9/c", legacy: "http://127.0.0.1:9/l" }
  app:
    http:
      url: http://127.0.0.1:9/stats.json
      metrics: { memory: /memory/used_ratio }
  cmd:
    command: [true]
gates:
  g: { at: end, require: [load.canary.p95 <= 1s] }
stages:
  - { name: full, traffic: 100, bake: 1m, checks: { every: 1m, probes: [load] }, gates: [g] }
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_load_targets_latency_is_a_distribution_and_everything_else_a_series() {
        let plan = plan();
        let kind = |m| compare_kind(&plan, m);
        assert_eq!(kind("load.canary.latency"), Some(CompareKind::Distribution));
        assert_eq!(kind("load.legacy.latency"), Some(CompareKind::Distribution));
        assert_eq!(kind("load.canary.p95"), Some(CompareKind::Series));
        // An http probe's `latency` is one number per check.
        assert_eq!(kind("app.latency"), Some(CompareKind::Series));
        assert_eq!(kind("app.memory"), Some(CompareKind::Series));
        assert_eq!(kind("cmd.anything"), Some(CompareKind::Series));
        assert_eq!(kind("load.nope.latency"), None);
        assert_eq!(kind("nope.x"), None);
        assert_eq!(kind("load"), None);
    }
}
