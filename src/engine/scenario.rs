//! `run --scenario`: samples, approvals and aborts from a scenario file, on simulated time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;

use crate::engine::clock::Clock;
use crate::engine::dry_run::ShowSteps;
use crate::engine::{CheckContext, Control, ControlSource, Sampler, StepContext};
use crate::event::Phase;
use crate::plan::scenario::{SampleValue, Scenario};
use crate::plan::units::PlanDuration;
use crate::probe::{Reading, Sample};

/// Samples as the scenario describes them at each check.
pub struct ScenarioSampler {
    pub scenario: Arc<Scenario>,
    /// The offsets of the checks seen so far, by stage and probe: a `series` value is picked by
    /// how many checks of the stage came since its range began.
    seen: Mutex<HashMap<(String, String), Vec<Duration>>>,
}

/// A value in force at a check, and the offset its range began at.
struct InForce<'a> {
    value: &'a SampleValue,
    from: Duration,
}

impl ScenarioSampler {
    pub fn new(scenario: Arc<Scenario>) -> ScenarioSampler {
        ScenarioSampler {
            scenario,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The values a check sees: the baseline, then every change in force, in order.
    fn values(&self, stage: &str, offset: Duration) -> BTreeMap<&str, InForce<'_>> {
        let mut values: BTreeMap<&str, InForce<'_>> = self
            .scenario
            .metrics
            .iter()
            .map(|(k, value)| {
                (
                    k.as_str(),
                    InForce {
                        value,
                        from: Duration::ZERO,
                    },
                )
            })
            .collect();
        for change in &self.scenario.changes {
            let from = change
                .from
                .map_or(Duration::ZERO, PlanDuration::as_duration);
            let in_force = change.stage == stage
                && offset >= from
                && change.until.is_none_or(|u| offset < u.as_duration());
            if in_force {
                values.extend(
                    change
                        .metrics
                        .iter()
                        .map(|(k, value)| (k.as_str(), InForce { value, from })),
                );
            }
        }
        values
    }

    /// Records this check of `probe` and returns the offsets of the stage's checks so far.
    fn checks_so_far(&self, stage: &str, probe: &str, offset: Duration) -> Vec<Duration> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let offsets = seen
            .entry((stage.to_owned(), probe.to_owned()))
            .or_default();
        if offsets.last() != Some(&offset) {
            offsets.push(offset);
        }
        offsets.clone()
    }
}

impl Sampler for ScenarioSampler {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        let stage = context.stage.unwrap_or("preflight");
        let values = self.values(stage, context.offset);
        let checks = self.checks_so_far(stage, probe, context.offset);
        // The value of the i-th check since `from` (i from 0): a series' Vi, the last repeating.
        let pick = |in_force: &InForce<'a>| -> &'a SampleValue {
            match in_force.value {
                SampleValue::Series(series) => {
                    let i = checks.iter().filter(|o| **o >= in_force.from).count();
                    &series[i.saturating_sub(1).min(series.len().saturating_sub(1))]
                }
                value => value,
            }
        };
        let sample = match values.get(probe).map(&pick) {
            Some(SampleValue::Error(reason)) => Sample::failed(probe, reason.clone()),
            Some(SampleValue::NoData) => Sample::ok(probe, BTreeMap::new()),
            _ => {
                let prefix = format!("{probe}.");
                let mut histograms = BTreeMap::new();
                let metrics = values
                    .iter()
                    .filter_map(|(name, in_force)| {
                        let metric = name.strip_prefix(&prefix)?;
                        let reading = match pick(in_force) {
                            SampleValue::Number(n) => Reading::from_number(*n),
                            // Validation keeps series out of series.
                            SampleValue::NoData | SampleValue::Series(_) => Reading::NoData,
                            SampleValue::Error(e) => Reading::Error(e.clone()),
                            SampleValue::Distribution(latencies) => {
                                // What the live load probe keeps: its target's histogram.
                                let target = metric.strip_suffix(".latency")?;
                                histograms.insert(target.to_owned(), histogram_of(latencies));
                                return None;
                            }
                        };
                        Some((metric.to_owned(), reading))
                    })
                    .collect();
                let mut sample = Sample::ok(probe, metrics);
                sample.histograms = histograms;
                sample
            }
        };
        Box::pin(std::future::ready(sample))
    }
}

/// Latencies in seconds as the load probe records them: a histogram in microseconds, from 1 µs
/// to an hour at 3 significant digits, encoded for the journal.
fn histogram_of(latencies: &[f64]) -> String {
    const MAX_MICROS: u64 = 3_600_000_000;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds");
    for seconds in latencies {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "clamped to the histogram's range, an hour in µs, exact in f64"
        )]
        let micros = (seconds * 1e6).round().clamp(1.0, MAX_MICROS as f64) as u64;
        histogram.record(micros).expect("within bounds");
    }
    crate::stats::encode_histogram(&histogram)
}

/// Steps that fail where the scenario says so, and are otherwise shown, not run.
pub fn steps(scenario: &Arc<Scenario>, steps: ShowSteps) -> ShowSteps {
    let scenario = Arc::clone(scenario);
    ShowSteps {
        fail: Box::new(move |context: StepContext<'_>| match context.phase {
            Phase::Rollback => scenario.fail_rollback,
            Phase::Preflight => scenario.fail_steps.iter().any(|s| s == "preflight"),
            Phase::Stage => context
                .stage
                .is_some_and(|stage| scenario.fail_steps.iter().any(|s| s == stage)),
        }),
        ..steps
    }
}

/// Approvals and the abort, at the times the scenario gives.
pub struct ScenarioControl {
    scenario: Arc<Scenario>,
    /// Decisions due at an instant, earliest first.
    pending: Vec<(DateTime<Utc>, Control)>,
}

impl ScenarioControl {
    pub fn new(scenario: Arc<Scenario>, start: DateTime<Utc>) -> ScenarioControl {
        let mut pending = Vec::new();
        if let Some(abort) = &scenario.abort {
            let at = crate::engine::clock::after(start, abort.at.as_duration());
            pending.push((
                at,
                Control::Abort {
                    by: abort.by.clone().unwrap_or_else(|| "scenario".to_owned()),
                    reason: abort.reason.clone(),
                    request: None,
                },
            ));
        }
        ScenarioControl { scenario, pending }
    }
}

impl ControlSource for ScenarioControl {
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>> {
        Box::pin(async move {
            self.pending.sort_by_key(|(at, _)| *at);
            if self.pending.first().is_some_and(|(at, _)| *at <= deadline) {
                let (at, control) = self.pending.remove(0);
                clock.sleep_until(at).await;
                return Some(control);
            }
            clock.sleep_until(deadline).await;
            None
        })
    }

    fn person_needed(&mut self, stage: &str, at: DateTime<Utc>) {
        let script = self
            .scenario
            .approvals
            .get(stage)
            .cloned()
            .unwrap_or_default();
        if script.never {
            return;
        }
        let after = script
            .after
            .map_or(Duration::ZERO, PlanDuration::as_duration);
        self.pending.push((
            crate::engine::clock::after(at, after),
            Control::Approve {
                by: script.by.unwrap_or_else(|| "scenario".to_owned()),
                stage: Some(stage.to_owned()),
                request: None,
            },
        ));
    }

    fn can_answer(&self) -> bool {
        true
    }

    fn may_answer(&self) -> bool {
        !self.pending.is_empty()
    }
}
