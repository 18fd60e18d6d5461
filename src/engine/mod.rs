//! The engine: runs a plan stage by stage — steps, timed checks, gates, approvals, rollback.
//!
//! The run loop ([`run::Engine`]) owns the state and talks to the world through four seams, so
//! that a live run, a dry run and a scenario differ only in what they plug in:
//! [`clock::Clock`] (time), [`Sampler`] (probes), [`StepRunner`] (programs and HTTP calls) and
//! [`ControlSource`] (approvals and aborts). Everything that happens is an
//! [`Event`](crate::event::Event) handed to the [`Sink`]s: the journal, the progress
//! report, notifications.

pub mod clock;
pub mod compare;
pub mod context;
pub mod dry_run;
pub mod gates;
pub mod live;
pub mod notify;
pub mod pool;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod timeline;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::engine::clock::Clock;
use crate::event::Phase;
use crate::plan::model::{ProbeOverrides, Step};
use crate::probe::Sample;

/// Where a check stands: what a probe needs to know to take a sample.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// `None` in preflight.
    pub stage: Option<&'a str>,
    pub traffic: f64,
    /// Time since the stage started.
    pub offset: Duration,
    pub at: DateTime<Utc>,
    /// Preflight's `with`.
    pub overrides: Option<&'a ProbeOverrides>,
}

/// Takes samples from probes.
pub trait Sampler: Send + Sync {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample>;
}

/// Where a step runs.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub phase: Phase,
    pub stage: Option<&'a str>,
    pub traffic: f64,
    pub index: usize,
}

/// What one attempt of a step gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub ok: bool,
    /// Exit status and the tail of the output, or the HTTP status; secrets scrubbed.
    pub detail: String,
}

/// Runs steps: programs and HTTP calls.
pub trait StepRunner: Send + Sync {
    /// The step as it may be printed: interpolated, secrets as `***`.
    fn describe(&self, step: &Step, context: StepContext<'_>) -> String;
    /// One attempt. Before its effect begins, the runner calls [`Announce::started`] (with the
    /// process group of a program), and goes on only if it returns `true`.
    fn run<'a>(
        &'a self,
        step: &'a Step,
        context: StepContext<'a>,
        announce: Announce,
    ) -> BoxFuture<'a, StepResult>;
}

/// How a step runner tells the engine its effect is about to begin: the engine journals
/// `step_started` (with the process group, if any) and only then lets it go on.
#[derive(Debug)]
pub struct Announce {
    started: Option<tokio::sync::oneshot::Sender<Option<u32>>>,
    go: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Announce {
    pub fn new(
        started: tokio::sync::oneshot::Sender<Option<u32>>,
        go: tokio::sync::oneshot::Receiver<()>,
    ) -> Announce {
        Announce {
            started: Some(started),
            go: Some(go),
        }
    }

    /// For a runner used on its own: nobody to tell, always go on.
    pub fn none() -> Announce {
        Announce {
            started: None,
            go: None,
        }
    }

    /// Says the effect is about to begin (in process group `group`, for a program) and waits
    /// until the engine has journaled it; `false`: the engine could not, do not begin.
    pub async fn started(&mut self, group: Option<u32>) -> bool {
        let Some(started) = self.started.take() else {
            return true;
        };
        if started.send(group).is_err() {
            return false;
        }
        match self.go.take() {
            Some(go) => go.await.is_ok(),
            None => true,
        }
    }
}

/// Where approvals and aborts come from.
pub trait ControlSource: Send {
    /// Waits until `deadline`, or less if a decision arrives.
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>>;
    /// A stage asks for approval (or a gate paused) at `at`.
    fn person_needed(&mut self, stage: &str, at: DateTime<Utc>);
    /// Whether anyone can answer in this run; if not, the run stops and says it waits.
    fn can_answer(&self) -> bool;
    /// Whether an answer may still come at all (a scenario knows it will not): on simulated
    /// time, a wait with no deadline that no answer can end stops the run as waiting.
    fn may_answer(&self) -> bool {
        true
    }
    /// A decision already waiting, without waiting for one (`--once`, and before every action:
    /// an abort comes first).
    fn poll(&mut self) -> Option<Control> {
        None
    }
    /// What waits for a person now (`None`: nothing does). Only that wait takes approvals;
    /// aborts are taken at any time.
    fn waiting(&mut self, _wait: Option<WaitFor<'_>>) {}
    /// The stage whose bake a promotion may end now (`None`: none). Only then are
    /// promotions taken.
    fn baking(&mut self, _bake: Option<BakeFor<'_>>) {}
    /// Why this runner may not go on, if it lost the plan to another (a database store's
    /// lease): a wait ends early and the run stops.
    fn lost(&self) -> Option<String> {
        None
    }
}

pub use crate::event::control::BakeFor;
pub use crate::event::{Control, Sink, WaitFor};

/// Who the person at this machine is: `$USER`, else the name of the process's user id, else
/// the id itself (`uid 1000`).
pub fn who() -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.trim().is_empty()) {
        return user;
    }
    #[cfg(unix)]
    {
        let uid = nix::unistd::getuid();
        if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
            return user.name;
        }
        format!("uid {uid}")
    }
    #[cfg(not(unix))]
    "unknown".to_owned()
}
