//! `ion-plan schema`: the JSON Schema that `schemas/plan.schema.json` holds.

use std::io::Write;

use crate::exit_code;
use crate::plan::schema::plan_schema_text;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(plan_schema_text().as_bytes()) {
        Ok(()) => exit_code::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => exit_code::SUCCESS,
        Err(error) => {
            eprintln!("error: failed to write the schema: {error}");
            exit_code::RUNTIME_ERROR
        }
    }
}
