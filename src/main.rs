//! The `ion-plan` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started by a runner as the gate of a step's program (see `engine::process`).
    if let Some(code) = ion_plan::process::gate_main() {
        return ExitCode::from(code);
    }
    ion_plan::process::enable_gate();
    ExitCode::from(ion_plan::cli::Cli::parse().run())
}
