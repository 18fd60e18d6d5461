//! `ion-plan approve PLAN` and `ion-plan abort PLAN --reason TEXT`: a person's decision, left
//! in the plan's inbox for the runner (taken within a second), or for the next `run --once`.

use std::path::PathBuf;

use chrono::Utc;

use crate::exit_code;
use crate::journal::inbox::{self, Entry, Request};

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The plan whose run to approve.
    plan: PathBuf,
    /// Approve only this stage (the runner ignores it for another stage).
    #[arg(long)]
    stage: Option<String>,
    /// Who approves. Default: $USER.
    #[arg(long)]
    by: Option<String>,
    /// Where the run's journal is. Default: `.ion-plan/` beside the plan.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AbortArgs {
    /// The plan whose run to abort: its rollback steps run.
    plan: PathBuf,
    /// Why, for the journal and the report.
    #[arg(long, required = true)]
    reason: String,
    /// Who aborts. Default: $USER.
    #[arg(long)]
    by: Option<String>,
    /// Where the run's journal is. Default: `.ion-plan/` beside the plan.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn who(by: Option<&String>) -> String {
    by.cloned()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn send(
    plan: &std::path::Path,
    state_dir: Option<&std::path::Path>,
    by: String,
    request: Request,
) -> u8 {
    let (state, stem) = super::run::state_of(plan, state_dir);
    let run = match super::run::latest_run(&state, &stem) {
        Ok(Some((_, run))) if run.unfinished() => run,
        Ok(_) => {
            eprintln!(
                "error: {} has no run in progress (looked in {})",
                plan.display(),
                state.display()
            );
            return exit_code::RUNTIME_ERROR;
        }
        Err(code) => return code,
    };
    let now = Utc::now();
    let entry = Entry {
        id: inbox::new_id(now),
        at: now,
        by,
        request,
    };
    if let Err(error) = inbox::append(&inbox::path(&state, &stem), &entry) {
        eprintln!(
            "error: cannot write to the inbox in {}: {error}",
            state.display()
        );
        return exit_code::RUNTIME_ERROR;
    }
    let what = match &entry.request {
        Request::Approve { .. } => "approval",
        Request::Abort { .. } => "abort",
    };
    eprintln!(
        "{what} recorded for run {}: a running runner takes it within a second; otherwise the next `ion-plan run {}` does",
        run.run_id,
        plan.display()
    );
    exit_code::SUCCESS
}

pub fn approve(args: &ApproveArgs) -> u8 {
    send(
        &args.plan,
        args.state_dir.as_deref(),
        who(args.by.as_ref()),
        Request::Approve {
            stage: args.stage.clone(),
        },
    )
}

pub fn abort(args: &AbortArgs) -> u8 {
    send(
        &args.plan,
        args.state_dir.as_deref(),
        who(args.by.as_ref()),
        Request::Abort {
            reason: args.reason.clone(),
        },
    )
}
