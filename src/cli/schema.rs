//! `ion-plan schema`: the JSON Schema that `schemas/plan.schema.json` holds.

use std::io::Write;

use super::CliError;
use crate::exit_code;
use crate::plan::schema::{plan_schema_text, scenario_schema_text};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan schema > schemas/plan.schema.json\n  ion-plan schema --scenario > schemas/scenario.schema.json"
)]
pub struct Args {
    /// The schema of scenario files (`run --scenario`) instead of plans.
    #[arg(long)]
    scenario: bool,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    let text = if args.scenario {
        scenario_schema_text()
    } else {
        plan_schema_text()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Stdout {
            what: "schema",
            source: error,
        }),
        _ => Ok(exit_code::SUCCESS),
    }
}
