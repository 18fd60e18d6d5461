//! `ion-plan status PLAN` and `ion-plan report PLAN`: read a run's journal, change nothing.

use std::io::Write as _;
use std::path::PathBuf;

use chrono::Utc;

use crate::event::state::RunState;
use crate::exit_code;
use crate::journal::inbox::{self, Inbox};
use crate::journal::lock;
use crate::journal::replay::Replay;
use crate::plan::validate::{Checks, validate_file};
use crate::report::{decision_log, status};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The plan whose newest run to show.
    plan: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Where the journals are. Default: `.ion-plan/` beside the plan.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The plan whose newest run to report.
    plan: PathBuf,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
    /// Where the journals are. Default: `.ion-plan/` beside the plan.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn print(text: &str) -> u8 {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => exit_code::RUNTIME_ERROR,
        _ => exit_code::SUCCESS,
    }
}

/// The plan's newest run, or why there is none (said on stderr); a torn tail is warned about.
fn newest_run(
    plan: &std::path::Path,
    state: &std::path::Path,
    stem: &str,
) -> Result<(Replay, RunState), u8> {
    let Some((replay, run)) = super::run::latest_run(state, stem)? else {
        eprintln!(
            "{} has no run yet (looked in {})",
            plan.display(),
            state.display()
        );
        return Err(exit_code::RUNTIME_ERROR);
    };
    if let Some(warning) = &replay.torn {
        eprintln!("warning: {warning}");
    }
    Ok((replay, run))
}

pub fn status(args: &StatusArgs) -> u8 {
    let plan = match validate_file(&args.plan, Checks { filesystem: false }) {
        Ok(report) => match report.plan {
            Some(plan) => plan,
            None => return super::run::invalid(report),
        },
        Err(error) => {
            eprintln!("{:?}", miette::Report::new(error));
            return exit_code::RUNTIME_ERROR;
        }
    };
    let (state, stem) = super::run::state_of(&args.plan, args.state_dir.as_deref());
    let (_, run) = match newest_run(&args.plan, &state, &stem) {
        Ok(found) => found,
        Err(code) => return code,
    };
    // Only this run's requests not taken yet; none once the run is over.
    let pending = if run.unfinished() {
        let current = run.current_wait();
        Inbox::new(inbox::path(&state, &stem), &run.run_id, run.taken.clone())
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
    let runner = lock::holder(&state, &stem);
    let status = status::build(&plan, &run, &pending, runner, Utc::now());
    if args.json {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        ))
    } else {
        print(&status::text(&status))
    }
}

pub fn report(args: &ReportArgs) -> u8 {
    let (state, stem) = super::run::state_of(&args.plan, args.state_dir.as_deref());
    let (replay, _) = match newest_run(&args.plan, &state, &stem) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let log = decision_log::build(&replay);
    match args.format {
        ReportFormat::Md => print(&decision_log::markdown(&log)),
        ReportFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&log).unwrap_or_default()
        )),
    }
}
