//! `ion-plan status PLAN` and `ion-plan report PLAN`: read a run's journal, change nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::CliError;
use crate::event::state::RunState;
use crate::exit_code;
use crate::journal::inbox;
use crate::journal::replay::Replay;
use crate::journal::store::Store;
use crate::plan::validate::{Checks, validate_file};
use crate::report::{decision_log, status};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan status plans/phase4.yaml\n  ion-plan status plans/phase4.yaml --format json"
)]
pub struct StatusArgs {
    /// The plan whose newest run to show.
    plan: PathBuf,
    #[command(flatten)]
    output: super::output::Output,
    #[command(flatten)]
    state: super::state::StateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The decision log in Markdown, for a pull request or a step summary.
    Md,
    /// Every sample and evaluation, as JSON.
    Json,
    /// One self-contained page: a chart per gate condition, no script, nothing fetched.
    Html,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan report plans/phase4.yaml --format md >> \"$GITHUB_STEP_SUMMARY\"\n  ion-plan report plans/phase4.yaml --format json\n  ion-plan report plans/phase4.yaml --format html > report.html"
)]
pub struct ReportArgs {
    /// The plan whose newest run to report.
    plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
    #[command(flatten)]
    state: super::state::StateArgs,
}

fn print(text: &str) -> Result<u8, CliError> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Unwritten(e)),
        _ => Ok(exit_code::SUCCESS),
    }
}

/// The plan's newest run, or why there is none; a torn tail is warned about.
fn newest_run(plan: &Path, store: &Store) -> Result<(Replay, RunState), CliError> {
    let Some((replay, run)) = store.latest(&mut |warning| eprintln!("warning: {warning}"))? else {
        return Err(CliError::NoRun {
            plan: plan.to_owned(),
            dir: store.dir().to_owned(),
        });
    };
    if let Some(warning) = &replay.torn {
        eprintln!("warning: {warning}");
    }
    Ok((replay, run))
}

pub fn status(args: &StatusArgs) -> Result<u8, CliError> {
    let report = validate_file(&args.plan, Checks { filesystem: false })?;
    let Some(plan) = report.plan else {
        return Err(report.into());
    };
    let store = args
        .state
        .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
    let (_, run) = newest_run(&args.plan, &store)?;
    // Only this run's requests not taken yet; none once the run is over.
    let pending = if run.unfinished() {
        let current = run.current_wait();
        store
            .inbox(&run.run_id, run.taken.clone())
            .pending()
            .into_iter()
            // An approval of a wait that is over will never be taken: not pending.
            .filter(|e| match &e.request {
                inbox::Request::Approve {
                    wait: Some(seq), ..
                } => current.is_some_and(|w| w.seq == *seq),
                _ => true,
            })
            .collect()
    } else {
        Vec::new()
    };
    let status = status::build(&plan, &run, &pending, store.holder(), Utc::now());
    if args.output.json() {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        ))
    } else {
        print(&status::text(&status))
    }
}

pub fn report(args: &ReportArgs) -> Result<u8, CliError> {
    let store = args
        .state
        .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
    let (replay, _) = newest_run(&args.plan, &store)?;
    let log = decision_log::build(&replay);
    match args.format {
        ReportFormat::Md => print(&decision_log::markdown(&log)),
        ReportFormat::Html => print(&crate::report::html::render(&log)),
        ReportFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&log).unwrap_or_default()
        )),
    }
}
