//! `ion-plan approve PLAN`, `ion-plan abort PLAN --reason TEXT` and `ion-plan promote PLAN
//! --reason TEXT`: a person's decision for one
//! run (the plan's unfinished run, or `--run ID`), left in the plan's inbox for that run's runner
//! (taken within a second), or for its next `run --once`. A decision nothing can take is refused
//! (exit 6) rather than recorded: no run in progress, or a stage that is not waiting.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::CliError;
use crate::event::state::RunState;
use crate::exit_code;
use crate::journal::inbox::{self, Entry, Request};
use crate::journal::store::Store;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan approve plans/phase4.yaml --by sena\n  ion-plan approve plans/phase4.yaml --stage full --ahead"
)]
pub struct ApproveArgs {
    /// The plan whose run to approve.
    plan: PathBuf,
    /// The stage to approve; it must be the one waiting (unless `--ahead`). Default: the stage
    /// waiting now.
    #[arg(long)]
    stage: Option<String>,
    /// Approve `--stage` before it asks: it takes this approval when it does.
    #[arg(long, requires = "stage")]
    ahead: bool,
    /// The run to approve (its id). Default: the plan's unfinished run.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Who approves. Default: $USER, else the user id's name.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    state: super::state::StateArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan abort plans/phase4.yaml --reason \"customer complaints\""
)]
pub struct AbortArgs {
    /// The plan whose run to abort: its rollback steps run.
    plan: PathBuf,
    /// Why, for the journal and the report.
    #[arg(long, required = true)]
    reason: String,
    /// The run to abort (its id). Default: the plan's unfinished run.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Who aborts. Default: $USER, else the user id's name.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    state: super::state::StateArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan promote plans/phase4.yaml --reason \"metrics clean for 6h\""
)]
pub struct PromoteArgs {
    /// The plan whose baking stage to promote: its bake ends now, the end gates judge what it
    /// has, and the run goes on.
    plan: PathBuf,
    /// Why, for the journal and the report.
    #[arg(long, required = true)]
    reason: String,
    /// The run to promote (its id). Default: the plan's unfinished run.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Who promotes. Default: $USER, else the user id's name.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    state: super::state::StateArgs,
}

fn refuse(message: String) -> CliError {
    CliError::Refused(message)
}

/// The unfinished run a request is for: `--run ID`, or the plan's newest run.
fn unfinished_run(plan: &Path, store: &Store, id: Option<&str>) -> Result<RunState, CliError> {
    let found = match id {
        Some(id) => store.find(id)?,
        None => store.latest(&mut |warning| eprintln!("warning: {warning}"))?,
    };
    let Some((_, run)) = found else {
        return Err(refuse(match id {
            Some(id) => format!(
                "{} has no run `{id}` in {}",
                plan.display(),
                store.dir().display()
            ),
            None => format!(
                "{} has no run in progress (looked in {}): nothing to take the request",
                plan.display(),
                store.dir().display()
            ),
        }));
    };
    if !run.unfinished() {
        let how = run.ended.as_ref().map_or_else(
            || "was superseded by a newer run".to_owned(),
            |(outcome, _)| format!("has ended: {}", outcome.as_str()),
        );
        return Err(refuse(format!(
            "run {} of {} {how}; a request for it would never be taken",
            run.run_id,
            plan.display()
        )));
    }
    Ok(run)
}

fn record(
    store: &Store,
    plan: &Path,
    run: &RunState,
    by: String,
    request: Request,
) -> Result<u8, CliError> {
    let now = Utc::now();
    let entry = Entry {
        id: inbox::new_id(now),
        run_id: run.run_id.clone(),
        at: now,
        by,
        request,
    };
    store.request(&entry)?;
    let what = match &entry.request {
        Request::Approve {
            stage: Some(stage),
            ahead: true,
            ..
        } => format!("approval of stage `{stage}` ahead of its asking"),
        Request::Approve {
            stage: Some(stage), ..
        } => format!("approval of stage `{stage}`"),
        Request::Approve { stage: None, .. } => "approval".to_owned(),
        Request::Abort { .. } => "abort".to_owned(),
        Request::Promote { stage, .. } => format!("promotion of stage `{stage}`"),
    };
    eprintln!(
        "{what} recorded for run {}: its running runner takes it within a second; otherwise the next `ion-plan run {}` does",
        run.run_id,
        plan.display()
    );
    Ok(exit_code::SUCCESS)
}

/// The plan's stage names, if the plan can be read.
fn stage_names(plan: &Path) -> Vec<String> {
    crate::plan::validate::validate_file(plan, crate::plan::validate::Checks { filesystem: false })
        .ok()
        .and_then(|report| report.plan)
        .map(|plan| plan.stages.into_iter().map(|s| s.name).collect())
        .unwrap_or_default()
}

pub fn approve(args: &ApproveArgs) -> Result<u8, CliError> {
    let store = args
        .state
        .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
    let run = unfinished_run(&args.plan, &store, args.run.as_deref())?;
    let stage = stage_to_approve(args, &run)?;
    // An approval answers the wait open now (named by the journal event that opened it), so
    // a second approval of a pause never answers the approval asked for after it. `--ahead`
    // for a stage that waits for its approval now is that approval; for a paused stage it stays
    // a pre-approval, which a pause does not take.
    let wait = run
        .current_wait()
        .filter(|w| w.stage == stage && !(args.ahead && w.paused))
        .map(|w| w.seq);
    let by = args.by.clone().unwrap_or_else(crate::engine::who);
    let request = Request::Approve {
        stage: Some(stage),
        ahead: wait.is_none(),
        wait,
    };
    record(&store, &args.plan, &run, by, request)
}

/// The stage an approval is for: `--stage` (waiting now, or `--ahead` and not over yet), else
/// the stage waiting now.
fn stage_to_approve(args: &ApproveArgs, run: &RunState) -> Result<String, CliError> {
    let waiting = run.waiting_for_person().map(str::to_owned);
    match (&args.stage, args.ahead) {
        (Some(stage), true) => {
            let stages = stage_names(&args.plan);
            if !stages.is_empty() && !stages.contains(stage) {
                return Err(refuse(format!(
                    "the plan has no stage `{stage}`; its stages: {}",
                    stages.join(", ")
                )));
            }
            if run.stages_completed.contains(stage) {
                return Err(refuse(format!(
                    "stage `{stage}` of run {} is over; an approval ahead would never be taken",
                    run.run_id
                )));
            }
            Ok(stage.clone())
        }
        (Some(stage), false) if waiting.as_ref() == Some(stage) => Ok(stage.clone()),
        (Some(stage), false) => {
            let now = waiting.map_or_else(
                || "no stage is waiting for a person".to_owned(),
                |w| format!("stage `{w}` is"),
            );
            Err(refuse(format!(
                "stage `{stage}` of run {} is not waiting for approval ({now}); `--ahead` approves it before it asks",
                run.run_id
            )))
        }
        (None, _) => waiting.ok_or_else(|| {
            refuse(format!(
                "no stage of run {} is waiting for approval; `ion-plan approve {} --stage NAME --ahead` approves a stage before it asks",
                run.run_id,
                args.plan.display()
            ))
        }),
    }
}

pub fn abort(args: &AbortArgs) -> Result<u8, CliError> {
    let store = args
        .state
        .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
    let run = unfinished_run(&args.plan, &store, args.run.as_deref())?;
    if let Some(rollback) = &run.rollback {
        return Err(refuse(format!(
            "run {} is already rolling back ({}); an abort would change nothing",
            run.run_id, rollback.reason
        )));
    }
    let by = args.by.clone().unwrap_or_else(crate::engine::who);
    let request = Request::Abort {
        reason: args.reason.clone(),
    };
    record(&store, &args.plan, &run, by, request)
}

/// A promotion is for the stage baking now: started, its bake not over, not paused, not
/// rolling back. Anything else is refused: it would be taken by no bake, or by the wrong one.
pub fn promote(args: &PromoteArgs) -> Result<u8, CliError> {
    let store = args
        .state
        .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
    let run = unfinished_run(&args.plan, &store, args.run.as_deref())?;
    let baking = run
        .stage
        .as_ref()
        .filter(|s| !s.bake_ended && s.paused.is_none() && run.rollback.is_none() && !run.aborted);
    let Some(stage) = baking else {
        let now = match (&run.stage, run.rollback.is_some()) {
            (_, true) => "it is rolling back".to_owned(),
            (Some(s), _) if s.paused.is_some() => {
                format!(
                    "stage `{}` is paused: `ion-plan approve` resumes it",
                    s.name
                )
            }
            (Some(s), _) => format!("the bake of stage `{}` is over", s.name),
            (None, _) => "no stage has started".to_owned(),
        };
        return Err(refuse(format!(
            "no stage of run {} is baking ({now}); a promotion ends a bake in progress",
            run.run_id
        )));
    };
    let by = args.by.clone().unwrap_or_else(crate::engine::who);
    let request = Request::Promote {
        stage: stage.name.clone(),
        reason: args.reason.clone(),
        // The bake as it goes on now: since the stage started, or since its newest pause.
        bake: stage.started_seq.max(stage.paused_seq),
    };
    record(&store, &args.plan, &run, by, request)
}
