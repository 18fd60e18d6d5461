//! The events of a run: what the journal stores, reporters print and notifications send.
//! They sit below the engine and the journal: the engine emits them, the journal stores them,
//! and run state ([`state::RunState`]) is their one fold, which resume, `status`, `report` and
//! the live view all read.

pub mod control;
pub mod evaluation;
pub mod state;

pub use control::{BakeFor, Control, Sink, WaitFor};
pub use evaluation::{Comparison, Evaluation, ShiftWay};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::model::Action;
use crate::probe::Sample;

/// The journal's on-disk format version.
pub const FORMAT_VERSION: u32 = 1;

/// How a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Real steps, real probes, real time.
    Live,
    /// The timeline only: nothing executed, simulated time.
    DryRun,
    /// Samples from a scenario file, simulated time, no steps executed.
    Scenario,
}

/// Where a step belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    Preflight,
    Stage,
    Rollback,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The last stage ended.
    Completed,
    /// A NO-GO ran the rollback steps.
    RolledBack,
    /// A person aborted; the rollback steps ran.
    Aborted,
    /// Preflight failed: no traffic moved.
    PreflightFailed,
    /// A rollback step failed: people must finish by hand.
    Failed,
    /// Waiting for a person (approval or pause) and nobody can answer in this run. Not final:
    /// the run resumes.
    Waiting,
    /// `--once` did what was due; more is due later. Not final.
    InProgress,
}

impl Outcome {
    /// The process exit code for this outcome (README, "Exit codes").
    pub fn exit_code(self) -> u8 {
        use crate::exit_code;
        match self {
            Outcome::Completed => exit_code::SUCCESS,
            Outcome::RolledBack | Outcome::Aborted | Outcome::PreflightFailed => {
                exit_code::ROLLED_BACK
            }
            Outcome::Failed => exit_code::RUNTIME_ERROR,
            Outcome::Waiting => exit_code::WAITING,
            Outcome::InProgress => exit_code::IN_PROGRESS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Aborted => "aborted",
            Outcome::PreflightFailed => "preflight_failed",
            Outcome::Failed => "failed",
            Outcome::Waiting => "waiting",
            Outcome::InProgress => "in_progress",
        }
    }

    /// Whether the run is over (it cannot resume).
    pub fn is_final(self) -> bool {
        !matches!(self, Outcome::Waiting | Outcome::InProgress)
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … within the run.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
}

/// Everything that happens in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        plan: String,
        digest: String,
        mode: Mode,
        stages: usize,
    },
    /// A runner took up an unfinished run.
    RunResumed {
        run_id: String,
    },
    /// The run stopped without ending (`--once`, or waiting for a person); `run` resumes it.
    Suspended {
        outcome: Outcome,
        reason: String,
        next: Option<DateTime<Utc>>,
    },
    /// `run --restart` left this run for a new one.
    Superseded {
        by: String,
    },
    PreflightPassed {
        name: String,
    },
    PreflightFailed {
        name: String,
        reason: String,
    },
    /// The next stage waits for `not_before` or the window.
    StageWaiting {
        stage: String,
        until: DateTime<Utc>,
        reason: String,
    },
    StageStarted {
        stage: String,
        index: usize,
        traffic: f64,
    },
    /// Durable before the program starts: a crash after it means "maybe ran".
    StepStarted {
        phase: Phase,
        stage: Option<String>,
        index: usize,
        name: String,
        /// The command or request, secrets as `***`.
        command: String,
        attempt: u32,
        /// The process group the program runs in (a program step, started by the binary):
        /// a resumed run waits for it to end before anyone is asked about the step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pgid: Option<u32>,
        /// The machine's boot id when it started: a group of another boot is gone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot: Option<String>,
        /// When the group's leader started (clock ticks since boot): a process with the same id
        /// and another start is not this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_start: Option<u64>,
    },
    StepFinished {
        phase: Phase,
        stage: Option<String>,
        index: usize,
        attempt: u32,
        ok: bool,
        detail: String,
        duration_ms: u64,
    },
    /// Checks that fell due while no runner ran: recorded, not back-filled.
    ChecksMissed {
        stage: String,
        /// How many checks were missed: a count and a range, so the line stays short whatever
        /// the downtime.
        #[serde(default)]
        count: u64,
        /// Seconds since the stage started, of the first and the last missed check.
        #[serde(default)]
        first: f64,
        #[serde(default)]
        last: f64,
    },
    /// An interrupted step's process group still runs (its runner died): the runner waits for
    /// it to end before the step runs again or anyone is asked about it.
    StepStillRunning {
        phase: Phase,
        stage: Option<String>,
        index: usize,
        pgid: u32,
    },
    /// An interrupted step the operator chose to skip (`--skip-step`).
    StepSkipped {
        phase: Phase,
        stage: Option<String>,
        index: usize,
        name: String,
    },
    CheckStarted {
        stage: String,
        number: u32,
        /// Seconds since the stage started.
        offset: f64,
        probes: Vec<String>,
    },
    SampleTaken {
        stage: Option<String>,
        check: u32,
        sample: Sample,
    },
    Evaluated {
        stage: Option<String>,
        check: u32,
        evaluation: Evaluation,
    },
    /// In a dry run: a gate that would be evaluated here.
    GatePlanned {
        stage: Option<String>,
        gate: String,
        conditions: Vec<String>,
    },
    GateFailed {
        stage: String,
        gate: String,
        action: Action,
        reason: String,
    },
    /// The bake is over and the `at: end` gates passed (or a person promoted the stage).
    BakeEnded {
        stage: String,
        /// Before its time: `early.after` had passed and every end gate passed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        early: bool,
    },
    /// The end gates lacked evidence: checks go on until `until`, the gates judged after each.
    BakeExtended {
        stage: String,
        until: DateTime<Utc>,
        reason: String,
    },
    /// A person ended the stage's bake now (`ion-plan promote`); the end gates still judge.
    Promoted {
        stage: String,
        by: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// In a dry run: what a `confidence` condition needs before it can pass, and what the
    /// stage gathers for it.
    EvidencePlanned {
        stage: String,
        gate: String,
        condition: String,
        /// Requests or latencies needed with no errors; `None`: no amount will do.
        needed: Option<u64>,
        gathered: u64,
        per_check: u64,
        checks: u64,
        /// Checks the gate's `insufficient.extend` may add.
        extension_checks: u64,
        /// `requests` or `latencies`.
        unit: String,
    },
    ApprovalRequested {
        stage: String,
        deadline: Option<DateTime<Utc>>,
    },
    Approved {
        stage: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    ApprovalTimedOut {
        stage: String,
        action: Action,
    },
    Paused {
        stage: String,
        reason: String,
    },
    Resumed {
        stage: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    StageCompleted {
        stage: String,
    },
    AbortRequested {
        by: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    RollbackStarted {
        reason: String,
    },
    RolledBack {},
    RollbackFailed {
        reason: String,
        /// What people must do by hand: the failed step and the ones after it.
        left_to_do: Vec<String>,
    },
    NotifyFailed {
        url: String,
        event: String,
        reason: String,
    },
    RunEnded {
        outcome: Outcome,
        reason: Option<String>,
    },
}

impl Event {
    /// The event's name, as `notify.on` lists them (only some events are notifiable).
    pub fn notify_name(&self) -> Option<&'static str> {
        Some(match self {
            Event::RunStarted { .. } => "run_started",
            Event::PreflightFailed { .. } => "preflight_failed",
            Event::StageStarted { .. } => "stage_started",
            Event::StageCompleted { .. } => "stage_completed",
            Event::GateFailed {
                action: Action::Warn,
                ..
            } => "gate_warned",
            Event::GateFailed { .. } => "gate_failed",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::Approved { .. } => "approved",
            Event::Paused { .. } => "paused",
            Event::RolledBack {} => "rolled_back",
            Event::AbortRequested { .. } => "aborted",
            Event::RunEnded {
                outcome: Outcome::Completed,
                ..
            } => "completed",
            Event::RunEnded {
                outcome: Outcome::Failed,
                ..
            } => "failed",
            _ => return None,
        })
    }
}
