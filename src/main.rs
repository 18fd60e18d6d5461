//! The `ion-plan` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ExitCode::from(ion_plan::cli::Cli::parse().run())
}
