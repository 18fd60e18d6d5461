//! Why a command failed, and the exit code it maps to (README, "Exit codes"). Every subcommand
//! returns `Result<u8, CliError>`: `Ok` carries an exit code that is an answer (0, or 3, 4, 5
//! for where a run stands; findings of `validate`), `Err` a failure, printed once by
//! [`CliError::print`].

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::engine::context::MissingEnv;
use crate::engine::run::EngineError;
use crate::exit_code;
use crate::journal::lock::LockError;
use crate::journal::store::StoreError;
use crate::plan::load::ReadError;
use crate::plan::validate::Report;
use crate::report::diagnostics::{FileOutcome, Format, render};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A plan or scenario file that cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Read(#[from] ReadError),
    /// A plan or scenario with errors: its diagnostics are the message.
    #[error("the plan is invalid")]
    Invalid(Box<Report>),
    #[error("{0}; nothing was run")]
    MissingEnv(#[from] MissingEnv),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The probes of a live run could not be set up.
    #[error("{0}")]
    Probes(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
    /// A journal `backtest` cannot read (it names the file and the line).
    #[error("{}; nothing was judged", .0.with_cause())]
    Journal(#[source] crate::journal::replay::ReplayError),
    /// A journal `state import` cannot read: the runs before it are in the database.
    #[error(
        "{}; the import stopped there (the runs before it are in the database, and another import skips them)",
        .0.with_cause()
    )]
    Import(#[source] crate::journal::replay::ReplayError),
    /// A state folder named on the command line that is not there.
    #[error("no state folder at `{}`", .0.display())]
    NoFolder(PathBuf),
    /// A plan without any run to show.
    #[error("{} has no run yet (looked in {})", plan.display(), dir.display())]
    NoRun { plan: PathBuf, dir: PathBuf },
    /// A person's request that no runner could ever take.
    #[error("{0}")]
    Refused(String),
    /// A command line that cannot be carried out as given (beyond what clap checks).
    #[error("{0}")]
    Usage(String),
    #[error("cannot write to the inbox in {}: {source}", dir.display())]
    Inbox {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `what` says where: `on 127.0.0.1` for the demo, nothing for `--serve`.
    #[error("cannot start the demo service{what}: {source}")]
    DemoService {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Load(String),
    /// `init` refused to overwrite a file, or could not write one.
    #[error("{0}")]
    Init(String),
    /// Writing the answer to stdout failed (not a closed pipe): `what` names the answer.
    #[error("failed to write the {what}: {source}")]
    Stdout {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Writing a run's status or report to stdout failed: said by the exit code alone, as
    /// `status` and `report` always have.
    #[error("failed to write the output: {0}")]
    Unwritten(#[source] std::io::Error),
}

impl CliError {
    /// The exit code (see [`crate::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) | CliError::MissingEnv(_) | CliError::Usage(_) => {
                exit_code::INVALID
            }
            CliError::Store(error) if error.is_conflict() => exit_code::STATE_CONFLICT,
            CliError::Engine(EngineError::Conflict(_)) | CliError::Refused(_) => {
                exit_code::STATE_CONFLICT
            }
            CliError::Runtime(_)
            | CliError::Read(_)
            | CliError::Store(_)
            | CliError::Probes(_)
            | CliError::Engine(_)
            | CliError::NoRun { .. }
            | CliError::NoFolder(_)
            | CliError::Journal(_)
            | CliError::Import(_)
            | CliError::Inbox { .. }
            | CliError::DemoService { .. }
            | CliError::Load(_)
            | CliError::Init(_)
            | CliError::Stdout { .. }
            | CliError::Unwritten(_) => exit_code::RUNTIME_ERROR,
        }
    }

    /// Prints the error on stderr, the one place errors are printed: a plan's diagnostics as
    /// rendered by `validate`, errors with a source and help through miette, the rest as
    /// `error: MESSAGE`.
    pub fn print(self) {
        match self {
            CliError::Invalid(report) => eprint!(
                "{}",
                render(
                    &[FileOutcome::Checked(report)],
                    Format::Human,
                    false,
                    std::io::stderr().is_terminal(),
                )
            ),
            CliError::Read(error) => eprintln!("{:?}", miette::Report::new(error)),
            CliError::Store(StoreError::Journal(error)) => {
                eprintln!("{:?}", miette::Report::new(error));
            }
            CliError::Engine(EngineError::Conflict(message)) => eprintln!("error: {message}"),
            CliError::Engine(error) => eprintln!("{:?}", miette::Report::new(error)),
            // Said as a fact, not an error: the plan exists, it has not run.
            CliError::NoRun { .. } => eprintln!("{self}"),
            CliError::Unwritten(_) => {}
            error => eprintln!("error: {error}"),
        }
    }
}

impl From<LockError> for CliError {
    fn from(error: LockError) -> CliError {
        CliError::Store(StoreError::Lock(error))
    }
}

impl From<Report> for CliError {
    fn from(report: Report) -> CliError {
        CliError::Invalid(Box::new(report))
    }
}
