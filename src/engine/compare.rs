//! A gate's `compare:` entries judged (`docs/plan.md`, "Compare"): the canary's values against
//! the baseline's, by the Mann–Whitney interval of the shift canary − baseline
//! ([`crate::stats::compare`]).
//!
//! - A **series** is a scalar metric's values at the stage's checks so far (errors and no data
//!   dropped), kept in the stage's [`Pool`].
//! - A **distribution** is a load target's latencies: the check's own histogram in an
//!   `every_check` gate, the stage's pooled histogram in an `at: end` gate.
//!
//! margin = tolerance × |median(baseline)|; `higher` (a violation) when the direction counts an
//! increase and the interval's lower end is above the margin, `lower` when it counts a decrease
//! and the upper end is below −margin, *insufficient* when a side has fewer than `min_points`
//! values, else a pass.

use std::collections::HashMap;

use crate::engine::pool::{Data, Pool};
use crate::event::evaluation::{Comparison, Outcome, ShiftWay};
use crate::plan::compare::{CompareKind, compare_kind};
use crate::plan::expr::MetricRef;
use crate::plan::model::{Compare, Direction, Plan};
use crate::plan::units::LiteralUnit;
use crate::probe::{Reading, Sample};
use crate::stats::compare::{Points, ShiftError, shift};

/// A `compare:` entry, parsed once.
#[derive(Debug, Clone)]
pub struct CompiledCompare {
    /// "`load.canary.latency` vs `load.legacy.latency`": what reports call it.
    pub label: String,
    pub canary: MetricRef,
    pub baseline: MetricRef,
    /// Latencies (`PROBE.TARGET.latency`) rather than a scalar metric's values.
    pub distribution: bool,
    pub direction: Direction,
    /// A fraction of the baseline's median.
    pub tolerance: f64,
    pub min_points: u32,
    /// A fraction (0.98).
    pub confidence: f64,
    /// The unit values are shown in.
    pub unit: LiteralUnit,
}

impl CompiledCompare {
    /// Compiles a validated entry; `plan` tells the metrics' units (without it, values show
    /// as plain numbers, latencies as durations).
    pub fn compile(compare: &Compare, plan: Option<&Plan>) -> CompiledCompare {
        let metric = |name: &str| MetricRef {
            name: name.to_owned(),
            start: 0,
        };
        let (canary, baseline) = (metric(&compare.canary), metric(&compare.baseline));
        let distribution = is_distribution(&canary, plan);
        let unit = if distribution {
            LiteralUnit::Duration
        } else {
            crate::engine::gates::shown_unit(&canary, plan)
        };
        CompiledCompare {
            label: compare.label(),
            canary,
            baseline,
            distribution,
            direction: compare.direction(),
            tolerance: compare.tolerance(),
            min_points: compare.min_points.unwrap_or(if distribution {
                Compare::MIN_POINTS_DISTRIBUTION
            } else {
                Compare::MIN_POINTS_SERIES
            }),
            confidence: compare.confidence(),
            unit,
        }
    }

    /// The metrics it reads.
    pub fn metrics(&self) -> [&MetricRef; 2] {
        [&self.canary, &self.baseline]
    }
}

/// `PROBE.TARGET.latency` of a load probe: the target's raw latencies. Without the plan, the
/// name alone says it.
fn is_distribution(metric: &MetricRef, plan: Option<&Plan>) -> bool {
    match plan {
        Some(plan) => compare_kind(plan, &metric.name) == Some(CompareKind::Distribution),
        None => metric
            .within_probe()
            .rsplit_once('.')
            .is_some_and(|(_, name)| name == "latency"),
    }
}

/// What one comparison gave.
pub struct Judged {
    pub outcome: Outcome,
    pub comparison: Comparison,
}

/// Judges one entry. `series` holds the stage's values so far; `latencies` the histograms to
/// rank (the check's, or the stage's pooled); `check` is the check just taken, when judged
/// after one: a side whose probe failed in it is an error, as a condition's would be.
pub fn judge(
    compare: &CompiledCompare,
    series: &Pool,
    latencies: Data<'_>,
    check: Option<&HashMap<String, Sample>>,
) -> Judged {
    let mut comparison = Comparison {
        nx: 0,
        ny: 0,
        lower: None,
        upper: None,
        estimate: None,
        margin: 0.0,
        median_canary: None,
        median_baseline: None,
        confidence: compare.confidence,
        shift: None,
    };
    let points = |metric: &MetricRef| -> Result<Points, String> {
        if let Some(Reading::Error(e)) = check.map(|c| crate::engine::gates::reading(c, metric)) {
            return Err(e);
        }
        if compare.distribution {
            latencies
                .latencies(metric)
                .map(|(histogram, _)| Points::from_histogram(&histogram, 1e-6))
        } else {
            Ok(Points::from_values(series.series(&metric.name)))
        }
    };
    let (canary, baseline) = match (points(&compare.canary), points(&compare.baseline)) {
        (Ok(canary), Ok(baseline)) => (canary, baseline),
        (Err(e), _) | (_, Err(e)) => {
            return Judged {
                outcome: Outcome::Error(e),
                comparison,
            };
        }
    };
    comparison.nx = canary.len();
    comparison.ny = baseline.len();
    comparison.median_canary = canary.median();
    comparison.median_baseline = baseline.median();
    let margin = compare.tolerance * comparison.median_baseline.unwrap_or(0.0).abs();
    // JSON has no ∞: nothing non-finite may reach the record, or the journal stops reading
    // back (resume, `report`, `backtest`).
    if !margin.is_finite() {
        return Judged {
            outcome: Outcome::Error(
                "the margin (tolerance × |median of the baseline|) overflows an f64".to_owned(),
            ),
            comparison,
        };
    }
    comparison.margin = margin;
    let shifted = shifted(&canary, &baseline, &comparison);
    if let Ok((lower, upper, estimate)) = shifted {
        comparison.lower = Some(lower);
        comparison.upper = Some(upper);
        comparison.estimate = Some(estimate);
    }
    let min = u64::from(compare.min_points);
    if comparison.nx < min || comparison.ny < min {
        return Judged {
            outcome: Outcome::Insufficient,
            comparison,
        };
    }
    let (lower, upper) = match shifted {
        Ok((lower, upper, _)) => (lower, upper),
        Err(e) => {
            return Judged {
                outcome: Outcome::Error(e),
                comparison,
            };
        }
    };
    let margin = comparison.margin;
    let counts =
        |way: Direction| compare.direction == way || compare.direction == Direction::Either;
    comparison.shift = if counts(Direction::Increase) && lower > margin {
        Some(ShiftWay::Higher)
    } else if counts(Direction::Decrease) && upper < -margin {
        Some(ShiftWay::Lower)
    } else {
        None
    };
    Judged {
        outcome: if comparison.shift.is_some() {
            Outcome::Violation
        } else {
            Outcome::Pass
        },
        comparison,
    }
}

/// The shift's interval and estimate, all finite, or why not. Both sides one constant value
/// each: the shift is exactly their difference, with no spread to doubt it (R gives up here;
/// a canary at 0% errors beside a legacy at 0% is no reason to stop a rollout).
fn shifted(
    canary: &Points,
    baseline: &Points,
    comparison: &Comparison,
) -> Result<(f64, f64, f64), String> {
    match shift(canary, baseline, comparison.confidence) {
        Ok(s) => Ok((s.lower, s.upper, s.estimate)),
        Err(ShiftError::AllTied) => match (comparison.median_canary, comparison.median_baseline) {
            (Some(c), Some(b)) => Ok((c - b, c - b, c - b)),
            _ => Err(ShiftError::AllTied.to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
    .and_then(|(lower, upper, estimate)| {
        if [lower, upper, estimate].iter().all(|v| v.is_finite()) {
            Ok((lower, upper, estimate))
        } else {
            Err("the shift overflows an f64".to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A pool holding `canary.rate` and `legacy.rate` series of these values.
    fn pool(canary: &[f64], legacy: &[f64], entry: &CompiledCompare) -> Pool {
        let mut pool = Pool::default();
        for i in 0..canary.len().max(legacy.len()) {
            let mut metrics = BTreeMap::new();
            if let Some(v) = canary.get(i) {
                metrics.insert("rate".to_owned(), Reading::Value(*v));
            }
            let canary = Sample::ok("canary", metrics);
            let mut metrics = BTreeMap::new();
            if let Some(v) = legacy.get(i) {
                metrics.insert("rate".to_owned(), Reading::Value(*v));
            }
            let legacy = Sample::ok("legacy", metrics);
            let samples =
                HashMap::from([("canary".to_owned(), canary), ("legacy".to_owned(), legacy)]);
            pool.add_series(entry.metrics().into_iter(), &samples);
        }
        pool
    }

    fn entry(yaml: &str) -> CompiledCompare {
        let compare: Compare = serde_saphyr::from_str(yaml).unwrap();
        CompiledCompare::compile(&compare, None)
    }

    fn judged(yaml: &str, canary: &[f64], legacy: &[f64]) -> Judged {
        let entry = entry(yaml);
        let pool = pool(canary, legacy, &entry);
        judge(&entry, &pool, Data::Pool(&pool), None)
    }

    const RATE: &str = "{canary: canary.rate, baseline: legacy.rate}";

    #[test]
    fn fewer_than_min_points_is_insufficient_but_still_shown() {
        let j = judged(RATE, &[5.0, 6.0, 7.0, 8.0], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(j.outcome, Outcome::Insufficient);
        assert_eq!((j.comparison.nx, j.comparison.ny), (4, 4));
        assert!(j.comparison.estimate.is_some());
    }

    #[test]
    fn a_clear_increase_is_higher_and_only_where_the_direction_counts_it() {
        let canary = [11.0, 12.0, 13.0, 14.0, 15.0, 16.0];
        let legacy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let j = judged(RATE, &canary, &legacy);
        assert_eq!(j.outcome, Outcome::Violation);
        assert_eq!(j.comparison.shift, Some(ShiftWay::Higher));
        let decrease = "{canary: canary.rate, baseline: legacy.rate, direction: decrease}";
        assert_eq!(judged(decrease, &canary, &legacy).outcome, Outcome::Pass);
        let either = "{canary: canary.rate, baseline: legacy.rate, direction: either}";
        let swapped = judged(either, &legacy, &canary);
        assert_eq!(swapped.comparison.shift, Some(ShiftWay::Lower));
        assert_eq!(
            judged(decrease, &legacy, &canary).outcome,
            Outcome::Violation
        );
    }

    #[test]
    fn a_shift_within_the_tolerance_of_the_baselines_median_passes() {
        // Legacy's median is 100; the canary is 5 higher, surely, but within 10%.
        let legacy = [99.0, 99.5, 100.0, 100.5, 101.0];
        let canary: Vec<f64> = legacy.iter().map(|v| v + 5.0).collect();
        let tolerant = "{canary: canary.rate, baseline: legacy.rate, tolerance: 10%}";
        let j = judged(tolerant, &canary, &legacy);
        assert_eq!(j.outcome, Outcome::Pass, "{:?}", j.comparison);
        assert!((j.comparison.margin - 10.0).abs() < 1e-9);
        assert_eq!(judged(RATE, &canary, &legacy).outcome, Outcome::Violation);
    }

    #[test]
    fn both_sides_constant_compare_exactly() {
        // A canary at 0% errors beside a legacy at 0%: no shift, a pass (not R's error).
        let zeros = [0.0; 6];
        let j = judged(RATE, &zeros, &zeros);
        assert_eq!(j.outcome, Outcome::Pass);
        assert_eq!(j.comparison.estimate, Some(0.0));
        // Constant but apart: the shift is their difference.
        let j = judged(RATE, &[0.02; 6], &zeros);
        assert_eq!(j.outcome, Outcome::Violation);
        assert_eq!(j.comparison.lower, Some(0.02));
    }

    #[test]
    fn a_failed_probe_in_the_check_is_an_error() {
        let entry = entry(RATE);
        let pool = pool(&[1.0; 6], &[1.0; 6], &entry);
        let check = HashMap::from([
            (
                "canary".to_owned(),
                Sample::failed("canary", "connection refused"),
            ),
            ("legacy".to_owned(), Sample::ok("legacy", BTreeMap::new())),
        ]);
        let j = judge(&entry, &pool, Data::Check(&check), Some(&check));
        assert_eq!(j.outcome, Outcome::Error("connection refused".into()));
    }

    #[test]
    fn latency_of_a_load_target_is_a_distribution() {
        assert!(entry("{canary: load.canary.latency, baseline: load.legacy.latency}").distribution);
        assert!(!entry(RATE).distribution);
        assert_eq!(
            entry("{canary: load.canary.latency, baseline: load.legacy.latency}").min_points,
            20
        );
    }
}
