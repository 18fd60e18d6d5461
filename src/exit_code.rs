//! Process exit codes: the contract scripts and CI jobs rely on (README, "Exit codes"). The CLI
//! maps its errors to them in one place (`CliError::exit_code`); a run's outcome maps itself
//! (`Outcome::exit_code`).

/// Success: the plan is valid, or the run completed.
pub const SUCCESS: u8 = 0;
/// A runtime error: a file could not be read, a probe server could not start.
pub const RUNTIME_ERROR: u8 = 1;
/// An invalid plan, or a usage error on the command line.
pub const INVALID: u8 = 2;
/// The run was rolled back or aborted.
pub const ROLLED_BACK: u8 = 3;
/// `backtest`: the plan would have ended a recorded run otherwise.
pub const OUTCOME_FLIPPED: u8 = 3;
/// The run waits for a person: an approval, or a pause.
pub const WAITING: u8 = 4;
/// The run is in progress: `--once` did what was due.
pub const IN_PROGRESS: u8 = 5;
/// A state conflict: the plan is locked by another runner, changed since the run started, or a
/// non-idempotent step was interrupted.
pub const STATE_CONFLICT: u8 = 6;
/// Stopped by Ctrl-C (SIGINT): 128 + 2, as a shell reports it. A live run stays resumable.
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM: 128 + 15. A live run stays resumable.
pub const TERMINATED: u8 = 143;
/// Stopped by SIGHUP (the terminal went away): 128 + 1. A live run stays resumable.
pub const HUNG_UP: u8 = 129;
