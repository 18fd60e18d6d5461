//! `ion-plan validate PLAN...`: every problem of every file, in one run.

use std::io::Write;
use std::path::PathBuf;

use super::CliError;
use crate::exit_code;
use crate::plan::validate::{Checks, validate_file_with};
use crate::report::diagnostics::{FileOutcome, Format, render};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan validate plans/phase4.yaml\n  ion-plan validate plans/*.yaml --format github   # pull-request annotations\n  ion-plan validate plans/*.yaml --strict          # warnings fail too"
)]
pub struct Args {
    /// Plan files to check.
    #[arg(required = true, value_name = "PLAN")]
    plans: Vec<PathBuf>,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Fail on warnings too (a program not on PATH, an unused probe).
    #[arg(long)]
    strict: bool,
    /// Check with a plan var overridden, as `run --var` would run it (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = super::run::parse_var)]
    vars: Vec<(String, String)>,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    let outcomes = validate_all(&args.plans, &args.vars);
    // anstream's rule: a terminal, no `NO_COLOR`, `TERM` not `dumb`; `CLICOLOR_FORCE` forces it.
    let color = args.format == Format::Human
        && anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
    let text = render(&outcomes, args.format, args.strict, color);
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(CliError::Stdout {
            what: "report",
            source: error,
        });
    }
    // The findings are the answer, on stdout: their exit code is no error of the command.
    Ok(
        if outcomes
            .iter()
            .any(|o| matches!(o, FileOutcome::Unreadable(..)))
        {
            exit_code::RUNTIME_ERROR
        } else if outcomes.iter().any(|o| !o.is_valid(args.strict)) {
            exit_code::INVALID
        } else {
            exit_code::SUCCESS
        },
    )
}

/// Validates files on every core, keeping the order they were named in.
fn validate_all(paths: &[PathBuf], vars: &[(String, String)]) -> Vec<FileOutcome> {
    let check = |path: &PathBuf| match validate_file_with(path, Checks::default(), vars) {
        Ok(report) => FileOutcome::Checked(Box::new(report)),
        Err(error) => FileOutcome::Unreadable(path.clone(), error),
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(paths.len());
    if workers <= 1 {
        return paths.iter().map(check).collect();
    }
    let chunk = paths.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("validation does not panic"))
            .collect()
    })
}
