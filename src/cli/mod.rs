//! The command line: clap arguments, each subcommand in its own file turning them into calls of
//! the library. Nothing outside `cli` depends on it.

mod backtest;
mod control;
mod demo;
mod error;
mod generate;
mod init;
mod inspect;
mod output;
mod probe;
mod run;
mod schema;
mod signal;
mod state;
mod validate;

pub use error::CliError;

use clap::{Parser, Subcommand};

/// Validate and run progressive-deployment plans: canary stages, timed checks, gates, rollback.
#[derive(Debug, Parser)]
#[command(name = "ion-plan", version, about, propagate_version = true)]
#[command(
    after_help = "Examples:\n  ion-plan demo\n  ion-plan validate plans/*.yaml\n  ion-plan run --dry-run plans/demo.yaml\n  ion-plan COMMAND --help"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Approve the stage a run waits on (or resume a paused one).
    Approve(control::ApproveArgs),
    /// Abort a run: its rollback steps run.
    Abort(control::AbortArgs),
    /// End the baking stage's bake now; its end gates still judge what it has.
    Promote(control::PromoteArgs),
    /// A whole canary against a bundled demo service on 127.0.0.1, in under a minute.
    Demo(demo::Args),
    /// Write a commented starting plan that validates, from a template.
    Init(init::Args),
    /// Check plans: YAML, JSON schema, and meaning. Runs nothing and opens no socket.
    Validate(validate::Args),
    /// Run a plan, or show its timeline (`--dry-run`), or judge it on a scenario.
    Run(run::Args),
    /// Try one probe on its own: `load` (canary vs legacy), `http`, `prometheus`, `command`.
    Probe(probe::Args),
    /// Where a run stands: stage, traffic, next action, last values against thresholds.
    Status(inspect::StatusArgs),
    /// The decision log of a run: every sample, every evaluation, what fired, who approved.
    Report(inspect::ReportArgs),
    /// Re-judge past runs' recorded samples with the plan as it is now; runs nothing. Exit 3
    /// when an outcome flips.
    ///
    /// The n-th check of a stage is judged on the sample each probe gave at the n-th check of
    /// the same stage in the recorded run (by position, not by time). Approvals and resumed
    /// pauses are granted as long after the wait began as they were; aborts, promotions and
    /// failed steps are not replayed. When the samples run out before the plan decides, the
    /// outcome now is `undecided` (`paused` if a gate paused it); `undecided` counts as a flip
    /// only when a gate ended the recorded run (a rollback or a pause). Conditions on metrics the journal never recorded are left
    /// out and listed as skipped, with stages only one side has.
    ///
    /// Exit codes: 0 no outcome flips, 3 one does, 1 a journal cannot be read, 2 an invalid
    /// plan or a usage error.
    Backtest(backtest::Args),
    /// Print the JSON Schema of the plan format (or of scenario files).
    Schema(schema::Args),
    /// The PostgreSQL state store a team shares: create its tables, import state folders.
    State(state::Args),
    /// The runs in a PostgreSQL state store, newest first: plan, id, outcome, stage, started,
    /// holder.
    Runs(state::RunsArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), for `man`.
    Man(generate::ManArgs),
}

/// The async runtime of commands that run probes or plans: two workers, the machine's size.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

impl Cli {
    /// Runs the command; returns the process exit code (see [`crate::exit_code`]). A failure is
    /// printed here, and only here.
    pub fn run(self) -> u8 {
        self.dispatch().unwrap_or_else(|error| {
            let code = error.exit_code();
            error.print();
            code
        })
    }

    fn dispatch(self) -> Result<u8, CliError> {
        match self.command {
            Command::Approve(args) => control::approve(&args),
            Command::Abort(args) => control::abort(&args),
            Command::Promote(args) => control::promote(&args),
            Command::Demo(args) => demo::run(&args),
            Command::Init(args) => init::run(&args),
            Command::Validate(args) => validate::run(&args),
            Command::Probe(args) => probe::run(&args),
            Command::Run(args) => run::run(&args),
            Command::Status(args) => inspect::status(&args),
            Command::Report(args) => inspect::report(&args),
            Command::Schema(args) => schema::run(&args),
            Command::State(args) => state::run(&args),
            Command::Runs(args) => state::runs(&args),
            Command::Backtest(args) => backtest::run(&args),
            Command::Completions(args) => generate::completions(&args),
            Command::Man(args) => generate::man(&args),
        }
    }
}
