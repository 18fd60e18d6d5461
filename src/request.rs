//! What a caller asks of a run: which plan, with which overrides, in which mode, and what the
//! operator decided about an unfinished run. `ion-plan run` and `ion-plan demo` both start runs
//! from one.

use std::path::PathBuf;
use std::time::Duration;

/// A run to start or resume (README, "Running plans").
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of the command line"
)]
pub struct RunRequest {
    /// The plan, as the caller named it: journals and hints show it so.
    pub plan: PathBuf,
    /// `--var NAME=VALUE` overrides, in order: part of the run's digest.
    pub vars: Vec<(String, String)>,
    /// Show the timeline and execute nothing.
    pub dry_run: bool,
    /// Judge the gates on samples from this scenario file, on simulated time.
    pub scenario: Option<PathBuf>,
    /// Events as JSON lines instead of text.
    pub json: bool,
    /// Where journals are kept; `None`: `.ion-plan/` beside the plan.
    pub state_dir: Option<PathBuf>,
    /// A PostgreSQL store instead of the folder (`--state`, `ION_PLAN_STATE`).
    pub state_url: Option<String>,
    /// How long the runner's lease on a PostgreSQL store lasts without renewal.
    pub lease: Duration,
    /// Do what is due now and stop.
    pub once: bool,
    /// Start a new run even though an unfinished one exists.
    pub restart: bool,
    /// Run again the interrupted non-idempotent step of the run being resumed.
    pub retry_step: bool,
    /// Skip the interrupted non-idempotent step of the run being resumed.
    pub skip_step: bool,
    /// How long a process group gets after SIGTERM before SIGKILL.
    pub kill_grace: Duration,
    /// What to tell a person whose run stopped before its end; `None`: how to resume it.
    pub stopped_hint: Option<String>,
}

impl RunRequest {
    /// A live run of `plan` with every switch off.
    pub fn new(plan: impl Into<PathBuf>) -> RunRequest {
        RunRequest {
            plan: plan.into(),
            vars: Vec::new(),
            dry_run: false,
            scenario: None,
            json: false,
            state_dir: None,
            state_url: None,
            lease: crate::journal::postgres::DEFAULT_LEASE,
            once: false,
            restart: false,
            retry_step: false,
            skip_step: false,
            kill_grace: crate::process::DEFAULT_GRACE,
            stopped_hint: None,
        }
    }

    /// Whether the run executes for real (not `--dry-run`, not `--scenario`).
    pub fn is_live(&self) -> bool {
        !self.dry_run && self.scenario.is_none()
    }

    /// What to tell a person whose run stopped before its end.
    pub fn stopped_hint(&self) -> String {
        self.stopped_hint.clone().unwrap_or_else(|| {
            format!(
                "the run is resumable: ion-plan run {}{}",
                if self.once { "--once " } else { "" },
                self.plan.display()
            )
        })
    }
}
