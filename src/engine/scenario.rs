//! `run --scenario`: samples, approvals and aborts from a scenario file, on simulated time.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::engine::clock::Clock;
use crate::engine::dry_run::ShowSteps;
use crate::engine::{CheckContext, Control, ControlSource, Sampler, StepContext};
use crate::event::Phase;
use crate::plan::scenario::{SampleValue, Scenario};
use crate::probe::{Reading, Sample};

/// Samples as the scenario describes them at each check.
pub struct ScenarioSampler {
    pub scenario: Arc<Scenario>,
}

impl ScenarioSampler {
    /// The values a check sees: the baseline, then every change in force, in order.
    fn values(&self, stage: &str, offset: std::time::Duration) -> BTreeMap<&str, &SampleValue> {
        let mut values: BTreeMap<&str, &SampleValue> = self
            .scenario
            .metrics
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        for change in &self.scenario.changes {
            let from = change.from.map_or(
                std::time::Duration::ZERO,
                super::super::plan::units::PlanDuration::as_duration,
            );
            let in_force = change.stage == stage
                && offset >= from
                && change.until.is_none_or(|u| offset < u.as_duration());
            if in_force {
                values.extend(change.metrics.iter().map(|(k, v)| (k.as_str(), v)));
            }
        }
        values
    }
}

impl Sampler for ScenarioSampler {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        let values = self.values(context.stage.unwrap_or("preflight"), context.offset);
        let sample = match values.get(probe) {
            Some(SampleValue::Error(reason)) => Sample::failed(probe, reason.clone()),
            Some(SampleValue::NoData) => Sample::ok(probe, BTreeMap::new()),
            _ => {
                let prefix = format!("{probe}.");
                Sample::ok(
                    probe,
                    values
                        .iter()
                        .filter_map(|(name, value)| {
                            let metric = name.strip_prefix(&prefix)?;
                            let reading = match value {
                                SampleValue::Number(n) => Reading::from_number(*n),
                                SampleValue::NoData => Reading::NoData,
                                SampleValue::Error(e) => Reading::Error(e.clone()),
                            };
                            Some((metric.to_owned(), reading))
                        })
                        .collect(),
                )
            }
        };
        Box::pin(std::future::ready(sample))
    }
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
        let after = script.after.map_or(
            std::time::Duration::ZERO,
            super::super::plan::units::PlanDuration::as_duration,
        );
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
