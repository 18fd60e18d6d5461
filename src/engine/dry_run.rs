//! `run --dry-run`: the timeline on simulated time. Steps are shown, not run; probes are not
//! sampled; approvals are taken as given at once. No process, no socket.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::engine::clock::Clock;
use crate::engine::context::Resolver;
use crate::engine::live::describe_step;
use crate::engine::{
    Announce, CheckContext, Control, ControlSource, Sampler, StepContext, StepResult, StepRunner,
};
use crate::plan::model::Step;
use crate::probe::Sample;

/// Shows steps instead of running them.
pub struct ShowSteps {
    pub resolver: Arc<Resolver>,
    /// Scenario runs may make some steps fail: (phase-and-stage matcher) → fails.
    pub fail: Box<dyn Fn(StepContext<'_>) -> bool + Send + Sync>,
}

impl ShowSteps {
    pub fn new(resolver: Arc<Resolver>) -> ShowSteps {
        ShowSteps {
            resolver,
            fail: Box::new(|_| false),
        }
    }
}

impl StepRunner for ShowSteps {
    fn describe(&self, step: &Step, context: StepContext<'_>) -> String {
        describe_step(&self.resolver, step, context)
    }

    fn run<'a>(
        &'a self,
        _: &'a Step,
        context: StepContext<'a>,
        _: Announce,
    ) -> BoxFuture<'a, StepResult> {
        let result = if (self.fail)(context) {
            StepResult {
                ok: false,
                detail: "failed (scenario)".to_owned(),
            }
        } else {
            StepResult {
                ok: true,
                detail: "not executed".to_owned(),
            }
        };
        Box::pin(std::future::ready(result))
    }
}

/// Never called in a dry run (the engine skips sampling); answers with an error if it were.
pub struct NoProbes;

impl Sampler for NoProbes {
    fn sample<'a>(&'a self, probe: &'a str, _: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        Box::pin(std::future::ready(Sample::failed(
            probe,
            "not sampled in a dry run",
        )))
    }
}

/// Approves every request at once.
#[derive(Default)]
pub struct ApproveAtOnce {
    pending: Option<String>,
}

impl ControlSource for ApproveAtOnce {
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>> {
        if let Some(stage) = self.pending.take() {
            return Box::pin(std::future::ready(Some(Control::Approve {
                by: "dry run".to_owned(),
                stage: Some(stage),
                request: None,
            })));
        }
        Box::pin(async move {
            clock.sleep_until(deadline).await;
            None
        })
    }

    fn person_needed(&mut self, stage: &str, _: DateTime<Utc>) {
        self.pending = Some(stage.to_owned());
    }

    fn can_answer(&self) -> bool {
        true
    }
}
