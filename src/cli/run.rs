//! `ion-plan run PLAN`: a live run, `--dry-run` (the timeline, nothing executed) or
//! `--scenario FILE` (recorded or made-up samples judged by the gates).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::engine::clock::{Clock, RealClock, SimClock};
use crate::engine::context::Resolver;
use crate::engine::dry_run::{ApproveAtOnce, NoProbes, ShowSteps};
use crate::engine::live::{Live, TerminalControl};
use crate::engine::notify::{DRAIN, Notifier, Pending};
use crate::engine::run::{Engine, Parts, RunInfo};
use crate::engine::scenario::{ScenarioControl, ScenarioSampler};
use crate::engine::{Sink, scenario};
use crate::exit_code;
use crate::journal::event::{FORMAT_VERSION, Mode};
use crate::journal::{Header, Journal};
use crate::plan::model::Plan;
use crate::plan::validate::{Checks, Report, plan_dir, validate_file, validate_scenario};
use crate::report::diagnostics::{FileOutcome, Format, render};
use crate::report::progress::{Progress, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan to run.
    #[arg(value_name = "PLAN")]
    pub(super) plan: PathBuf,
    /// Print the timeline and execute nothing: no program, no request.
    #[arg(long, conflicts_with = "scenario")]
    pub(super) dry_run: bool,
    /// Judge the gates on samples from this scenario file, on simulated time; run nothing.
    #[arg(long, value_name = "FILE")]
    pub(super) scenario: Option<PathBuf>,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Where journals are kept. Default: `.ion-plan/` beside the plan.
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> u8 {
    let report = match validate_file(&args.plan, Checks::default()) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{:?}", miette::Report::new(error));
            return exit_code::RUNTIME_ERROR;
        }
    };
    let Some(plan) = report.plan.clone().filter(|_| report.is_valid(false)) else {
        return invalid(report);
    };
    let digest = Sha256::digest(report.source.text.as_bytes()).iter().fold(
        String::from("sha256:"),
        |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        },
    );
    let plan = Arc::new(plan);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return exit_code::RUNTIME_ERROR;
        }
    };
    runtime.block_on(execute(args, plan, digest))
}

/// `sha256:HEX` of a plan's text: what a run records to notice a changed plan.
pub(super) fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::from("sha256:"), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

pub(super) fn invalid(report: Report) -> u8 {
    let text = render(
        &[FileOutcome::Checked(Box::new(report))],
        Format::Human,
        false,
        std::io::stderr().is_terminal(),
    );
    eprint!("{text}");
    exit_code::INVALID
}

/// When simulated time starts: the scenario's `start`, else the plan's `not_before`, else now.
fn simulated_start(plan: &Plan, scenario_start: Option<&str>) -> DateTime<Utc> {
    scenario_start
        .or(plan.schedule.as_ref().and_then(|s| s.not_before.as_deref()))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.to_utc())
}

fn run_id(now: DateTime<Utc>) -> String {
    let salt = u64::from(std::process::id()) ^ u64::from(Utc::now().timestamp_subsec_nanos());
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), salt & 0xffff)
}

/// What a run needs, by mode.
struct Setup {
    mode: Mode,
    run_id: String,
    parts: Parts,
    journal: Option<PathBuf>,
    pending: Option<Pending>,
}

pub(super) async fn execute(args: &Args, plan: Arc<Plan>, digest: String) -> u8 {
    let style = if args.json { Style::Json } else { Style::Plain };
    let progress: Box<dyn Sink> = Box::new(Progress::new(std::io::stdout(), style));
    let setup = if let Some(path) = &args.scenario {
        scenario_setup(path, &plan, progress)
    } else if args.dry_run {
        Ok(dry_run_setup(&plan, progress))
    } else {
        live_setup(args, &plan, &digest, progress)
    };
    let setup = match setup {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    let info = RunInfo {
        run_id: setup.run_id,
        plan_path: args.plan.display().to_string(),
        digest,
        mode: setup.mode,
    };
    let engine = match Engine::new(&plan, info, setup.parts) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("{:?}", miette::Report::new(error));
            return exit_code::RUNTIME_ERROR;
        }
    };
    let result = engine.run().await;
    if let Some(pending) = setup.pending {
        pending.drain(DRAIN).await;
    }
    if let Some(path) = &setup.journal {
        eprintln!("journal: {}", path.display());
    }
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("{:?}", miette::Report::new(error));
            exit_code::RUNTIME_ERROR
        }
    }
}

fn scenario_setup(path: &Path, plan: &Plan, progress: Box<dyn Sink>) -> Result<Setup, u8> {
    let (report, scenario) = validate_scenario(path, plan).map_err(|error| {
        eprintln!("{:?}", miette::Report::new(error));
        exit_code::RUNTIME_ERROR
    })?;
    let Some(scenario) = scenario.filter(|_| report.is_valid(false)) else {
        return Err(invalid(report));
    };
    let scenario = Arc::new(scenario);
    let start = simulated_start(plan, scenario.start.as_deref());
    let run_id = run_id(start);
    let resolver = Arc::new(Resolver::without_secrets(plan, &run_id));
    Ok(Setup {
        mode: Mode::Scenario,
        run_id,
        parts: Parts {
            clock: Arc::new(SimClock::new(start)),
            sampler: Arc::new(ScenarioSampler {
                scenario: Arc::clone(&scenario),
            }),
            steps: Arc::new(scenario::steps(&scenario, ShowSteps::new(resolver))),
            control: Box::new(ScenarioControl::new(Arc::clone(&scenario), start)),
            sinks: vec![progress],
        },
        journal: None,
        pending: None,
    })
}

fn dry_run_setup(plan: &Plan, progress: Box<dyn Sink>) -> Setup {
    let start = simulated_start(plan, None);
    let run_id = run_id(start);
    let resolver = Arc::new(Resolver::without_secrets(plan, &run_id));
    Setup {
        mode: Mode::DryRun,
        run_id,
        parts: Parts {
            clock: Arc::new(SimClock::new(start)),
            sampler: Arc::new(NoProbes),
            steps: Arc::new(ShowSteps::new(resolver)),
            control: Box::new(ApproveAtOnce::default()),
            sinks: vec![progress],
        },
        journal: None,
        pending: None,
    }
}

fn live_setup(
    args: &Args,
    plan: &Arc<Plan>,
    digest: &str,
    progress: Box<dyn Sink>,
) -> Result<Setup, u8> {
    let clock = RealClock;
    let run_id = run_id(clock.now());
    let resolver = Resolver::from_environment(plan, &run_id).map_err(|error| {
        eprintln!("error: {error}; nothing was run");
        exit_code::INVALID
    })?;
    let dir = plan_dir(&args.plan);
    let live = Live::new(Arc::clone(plan), resolver, dir.clone()).map_err(|error| {
        eprintln!("error: {error}");
        exit_code::RUNTIME_ERROR
    })?;
    let live = Arc::new(live);
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| dir.join(".ion-plan"));
    let stem = args
        .plan
        .file_stem()
        .map_or_else(|| "plan".to_owned(), |s| s.to_string_lossy().into_owned());
    let header = Header {
        format: FORMAT_VERSION,
        run_id: run_id.clone(),
        plan: args.plan.display().to_string(),
        digest: digest.to_owned(),
        created: clock.now(),
    };
    let journal =
        Journal::create(&state, &format!("{stem}-{run_id}.jsonl"), &header).map_err(|error| {
            eprintln!(
                "error: cannot create the journal in {}: {error}",
                state.display()
            );
            exit_code::RUNTIME_ERROR
        })?;
    let journal_path = journal.path().to_owned();
    let (notifier, pending) = Notifier::new(
        plan.notify.clone(),
        Arc::clone(&live.resolver),
        &plan.name,
        &run_id,
        live.client.clone(),
    );
    Ok(Setup {
        mode: Mode::Live,
        run_id,
        parts: Parts {
            clock: Arc::new(clock),
            sampler: Arc::clone(&live) as _,
            steps: live as _,
            control: Box::new(TerminalControl::new()),
            sinks: vec![Box::new(journal), progress, Box::new(notifier)],
        },
        journal: Some(journal_path),
        pending: Some(pending),
    })
}
