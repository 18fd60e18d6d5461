//! A stage's evidence, pooled over its checks (`docs/plan.md`, "Evidence"): ratios as Σk / Σn,
//! latencies as one histogram. An `at: end` condition with `confidence` is judged on it.
//! Rebuilt from the journal's samples on resume, so pooling survives a crash.

use std::collections::{HashMap, HashSet};

use hdrhistogram::Histogram;

use crate::engine::gates::{CompiledCondition, reading};
use crate::plan::evidence::IntervalKind;
use crate::plan::expr::MetricRef;
use crate::probe::{Reading, Sample};
use crate::stats;

/// A ratio measured as `k` in `n`, over `checks` checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ratio {
    pub k: u64,
    pub n: u64,
    pub checks: u32,
}

/// Where an interval's data come from.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    /// One check's samples.
    Check(&'a HashMap<String, Sample>),
    /// The stage's pool.
    Pool(&'a Pool),
}

impl Data<'_> {
    /// The ratio `metric` as `k` in `n`; its count is the metric `count` names, or (a load
    /// probe's rate) the target's `requests`.
    pub fn ratio(self, metric: &MetricRef, count: Option<&str>) -> Result<Ratio, String> {
        match self {
            Data::Check(samples) => ratio_in(samples, metric, count),
            Data::Pool(pool) => {
                let key = ratio_key(metric, count);
                pool.ratios.get(&key).copied().ok_or_else(|| {
                    pool.failures.get(&key).map_or_else(
                        || format!("no sample of `{}` in this stage", metric.name),
                        |why| format!("no usable sample of `{}` in this stage: {why}", metric.name),
                    )
                })
            }
        }
    }

    /// The latencies behind a load percentile (`load.canary.p95`), in microseconds, and the
    /// checks they come from.
    pub fn latencies(self, metric: &MetricRef) -> Result<(Histogram<u64>, u32), String> {
        let key = target_of(metric);
        match self {
            Data::Check(samples) => {
                let sample = samples
                    .get(metric.probe())
                    .ok_or_else(|| format!("probe `{}` was not run", metric.probe()))?;
                if let Some(error) = &sample.error {
                    return Err(error.clone());
                }
                match sample.histograms.get(target_name(metric)) {
                    Some(text) => {
                        Ok((stats::decode_histogram(text).map_err(|e| e.to_string())?, 1))
                    }
                    None => stated(samples, metric).map(|h| (h, 1)),
                }
            }
            Data::Pool(pool) => pool
                .histograms
                .get(&key)
                .or_else(|| pool.stated.get(&metric.name))
                .map(|(h, checks)| (h.clone(), *checks))
                .ok_or_else(|| format!("no latencies recorded for `{key}` in this stage")),
        }
    }
}

/// A stage's samples, pooled.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// (ratio metric, count metric) → Σk, Σn.
    ratios: HashMap<String, Ratio>,
    /// `probe.target` → every latency of the stage.
    histograms: HashMap<String, (Histogram<u64>, u32)>,
    /// Percentile metric → its stated value over the check's requests, for samples without
    /// latencies (scenarios).
    stated: HashMap<String, (Histogram<u64>, u32)>,
    /// Why a ratio's last sample could not be pooled (no data for its count, say).
    failures: HashMap<String, String>,
    /// A compared scalar metric → its values at the stage's checks, errors and no data dropped.
    series: HashMap<String, Vec<f64>>,
}

impl Pool {
    /// Adds one check's samples: the ratios `conditions` judge with an interval, and every
    /// latency histogram. A failed probe adds nothing.
    pub fn add<'a>(
        &mut self,
        conditions: impl Iterator<Item = &'a CompiledCondition>,
        samples: &HashMap<String, Sample>,
    ) {
        let mut seen = HashSet::new();
        for condition in conditions {
            let Some(on) = &condition.interval else {
                continue;
            };
            let metric = &condition.expr.metric;
            let count = match &on.kind {
                IntervalKind::Wilson { count } => count.as_deref(),
                IntervalKind::Percentile { .. } => {
                    self.add_stated(samples, metric);
                    continue;
                }
            };
            let key = ratio_key(metric, count);
            if !seen.insert(key.clone()) {
                continue;
            }
            match ratio_in(samples, metric, count) {
                Ok(ratio) => {
                    let pooled = self.ratios.entry(key).or_default();
                    // A hostile count (a scenario's `requests: 1e300`) saturates, never wraps.
                    pooled.k = pooled.k.saturating_add(ratio.k);
                    pooled.n = pooled.n.saturating_add(ratio.n);
                    pooled.checks = pooled.checks.saturating_add(1);
                }
                Err(why) => {
                    self.failures.insert(key, why);
                }
            }
        }
        for sample in samples.values().filter(|s| s.error.is_none()) {
            for (target, text) in &sample.histograms {
                let Ok(histogram) = stats::decode_histogram(text) else {
                    continue;
                };
                let key = format!("{}.{target}", sample.probe);
                match self.histograms.get_mut(&key) {
                    Some((pooled, checks)) => {
                        if pooled.add(&histogram).is_ok() {
                            *checks += 1;
                        }
                    }
                    None => {
                        self.histograms.insert(key, (histogram, 1));
                    }
                }
            }
        }
    }
}

impl Pool {
    /// Adds one check's values of the scalar metrics a `compare:` entry reads.
    pub fn add_series<'a>(
        &mut self,
        metrics: impl Iterator<Item = &'a MetricRef>,
        samples: &HashMap<String, Sample>,
    ) {
        let mut seen = HashSet::new();
        for metric in metrics {
            if !samples.contains_key(metric.probe()) || !seen.insert(metric.name.as_str()) {
                continue;
            }
            if let Reading::Value(value) = reading(samples, metric) {
                self.series
                    .entry(metric.name.clone())
                    .or_default()
                    .push(value);
            }
        }
    }

    /// A compared metric's values at the stage's checks so far.
    pub fn series(&self, metric: &str) -> &[f64] {
        self.series.get(metric).map_or(&[], Vec::as_slice)
    }

    /// A percentile a sample states without latencies (a scenario's `load.canary.p95`).
    fn add_stated(&mut self, samples: &HashMap<String, Sample>, metric: &MetricRef) {
        let has_latencies = samples
            .get(metric.probe())
            .is_some_and(|s| !s.histograms.is_empty());
        if has_latencies {
            return;
        }
        let Ok(histogram) = stated(samples, metric) else {
            return;
        };
        match self.stated.get_mut(&metric.name) {
            Some((pooled, checks)) => {
                if pooled.add(&histogram).is_ok() {
                    *checks += 1;
                }
            }
            None => {
                self.stated.insert(metric.name.clone(), (histogram, 1));
            }
        }
    }
}

/// A sample with no latencies (a scenario) that states a percentile and its target's
/// `requests`: taken as that many latencies at the stated value, so the interval is the value
/// itself once the count suffices (`docs/scenario.md`).
fn stated(samples: &HashMap<String, Sample>, metric: &MetricRef) -> Result<Histogram<u64>, String> {
    let count = MetricRef {
        name: format!("{}.requests", target_of(metric)),
        start: 0,
    };
    let (Reading::Value(value), Reading::Value(n)) =
        (reading(samples, metric), reading(samples, &count))
    else {
        return Err(format!(
            "no latencies recorded for `{}` (a scenario states `{}` and `{}`)",
            target_of(metric),
            metric.name,
            count.name
        ));
    };
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())?;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "seconds to whole microseconds, clamped to the histogram's range"
    )]
    let micros = (value * 1e6).round().clamp(1.0, 3_600_000_000.0) as u64;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a request count, clamped"
    )]
    let n = n.round().clamp(0.0, 1e9) as u64;
    if n > 0 {
        histogram.record_n(micros, n).map_err(|e| e.to_string())?;
    }
    Ok(histogram)
}

fn ratio_key(metric: &MetricRef, count: Option<&str>) -> String {
    format!("{} of {}", metric.name, count.unwrap_or("requests"))
}

/// `load.canary` of `load.canary.p95`.
fn target_of(metric: &MetricRef) -> String {
    metric
        .name
        .rsplit_once('.')
        .map_or_else(|| metric.name.clone(), |(target, _)| target.to_owned())
}

/// `canary` of `load.canary.p95`.
fn target_name(metric: &MetricRef) -> &str {
    metric
        .within_probe()
        .rsplit_once('.')
        .map_or("", |(target, _)| target)
}

/// The largest count one sample adds: 2^53, past which an f64 holds no whole numbers.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// A ratio in one check's samples, as `k` in `n`.
fn ratio_in(
    samples: &HashMap<String, Sample>,
    metric: &MetricRef,
    count: Option<&str>,
) -> Result<Ratio, String> {
    let count_ref = MetricRef {
        name: match count {
            Some(count) => count.to_owned(),
            None => format!("{}.requests", target_of(metric)),
        },
        start: 0,
    };
    let value = |m: &MetricRef| match reading(samples, m) {
        Reading::Value(v) => Ok(v),
        Reading::NoData => Err(format!("no data for `{}`", m.name)),
        Reading::Error(e) => Err(e),
    };
    let ratio = value(metric)?;
    let n = value(&count_ref)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!(
            "`{}` is {ratio}, not a ratio between 0 and 1",
            metric.name
        ));
    }
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{}` is {n}, not a count", count_ref.name));
    }
    // Counts past 2^53 are not whole numbers in an f64 anyway; capped there, a stage's pool
    // of thousands of such checks still sums k and n alike instead of saturating n first.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite count, checked non-negative, at most 2^53"
    )]
    let n = n.round().min(MAX_COUNT) as u64;
    Ok(Ratio {
        k: stats::count_from_ratio(ratio, n),
        n,
        checks: 1,
    })
}
