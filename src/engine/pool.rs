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
            Data::Pool(pool) => pool
                .ratios
                .get(&ratio_key(metric, count))
                .copied()
                .ok_or_else(|| format!("no sample of `{}` in this stage", metric.name)),
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
                let text = sample
                    .histograms
                    .get(target_name(metric))
                    .ok_or_else(|| format!("no latencies recorded for `{key}`"))?;
                let histogram = stats::decode_histogram(text).map_err(|e| e.to_string())?;
                Ok((histogram, 1))
            }
            Data::Pool(pool) => pool
                .histograms
                .get(&key)
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
            let IntervalKind::Wilson { count } = &on.kind else {
                continue;
            };
            let metric = &condition.expr.metric;
            let key = ratio_key(metric, count.as_deref());
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Ok(ratio) = ratio_in(samples, metric, count.as_deref()) {
                let pooled = self.ratios.entry(key).or_default();
                pooled.k += ratio.k;
                pooled.n += ratio.n;
                pooled.checks += 1;
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
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite count, checked non-negative; `as` saturates"
    )]
    let n = n.round() as u64;
    Ok(Ratio {
        k: stats::count_from_ratio(ratio, n),
        n,
        checks: 1,
    })
}
