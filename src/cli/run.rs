//! `ion-plan run PLAN`: a live run, `--dry-run` (the timeline, nothing executed) or
//! `--scenario FILE` (recorded or made-up samples judged by the gates). The arguments become a
//! [`RunRequest`]; which run to open is the store's rule ([`Store::open`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::CliError;
use crate::engine::clock::{Clock, RealClock, SimClock};
use crate::engine::context::Resolver;
use crate::engine::dry_run::{ApproveAtOnce, NoProbes, ShowSteps};
use crate::engine::live::{Live, TerminalControl};
use crate::engine::notify::{DRAIN, Notifier, Pending};
use crate::engine::run::{Engine, Options, Parts, RunInfo};
use crate::engine::scenario::{ScenarioControl, ScenarioSampler};
use crate::engine::{Sink, scenario};
use crate::event::state::RunState;
use crate::event::{Mode, Outcome};
use crate::journal::SharedJournal;
use crate::journal::store::{self, Guard, Opened, Opening, Start, Store};
use crate::plan::model::Plan;
use crate::plan::validate::{Checks, plan_dir, validate_file_with, validate_scenario};
use crate::report::live::LiveView;
use crate::report::progress::{Progress, Style};
use crate::request::RunRequest;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan run --dry-run plans/demo.yaml        # the timeline; runs nothing\n  ion-plan run plans/demo.yaml --scenario plans/scenarios/demo-regression.yaml\n  ion-plan run plans/demo.yaml --var canary=http://127.0.0.1:28082\n  ion-plan run plans/phase4.yaml --once          # a scheduled CI job's step\n  ion-plan run plans/demo.yaml --format json     # events as JSON lines"
)]
#[expect(clippy::struct_excessive_bools, reason = "clap flags")]
pub struct Args {
    /// The plan to run.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// Print the timeline and execute nothing: no program, no request.
    #[arg(long, conflicts_with = "scenario")]
    dry_run: bool,
    /// Judge the gates on samples from this scenario file, on simulated time; run nothing.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    output: super::output::Output,
    #[command(flatten)]
    state: super::state::StateArgs,
    /// Do what is due now and exit: 0 completed, 3 rolled back, 4 waiting for a person,
    /// 5 in progress. For a scheduled CI job that drives a rollout that bakes for days.
    #[arg(long, conflicts_with_all = ["dry_run", "scenario"])]
    once: bool,
    /// Start a new run even though an unfinished one exists (the old journal is kept).
    #[arg(long, conflicts_with_all = ["dry_run", "scenario"])]
    restart: bool,
    /// Run again the interrupted non-idempotent step of the run being resumed.
    #[arg(long, conflicts_with = "skip_step")]
    retry_step: bool,
    /// Skip the interrupted non-idempotent step of the run being resumed (it took effect).
    #[arg(long)]
    skip_step: bool,
    /// Override a plan var for this run (repeatable): `--var image=v2.3.1`. The overrides are
    /// part of the run's digest and recorded in its journal.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// How long a step's or command probe's process group gets to end after SIGTERM (at a
    /// timeout, Ctrl-C or SIGTERM) before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_grace)]
    kill_grace: std::time::Duration,
    /// With a PostgreSQL store: how long this runner's lease on the plan lasts unless renewed
    /// (every third of it). A runner that dies is taken over this long after its last renewal.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::state::parse_lease)]
    lease: std::time::Duration,
}

impl Args {
    fn request(&self) -> RunRequest {
        RunRequest {
            plan: self.plan.clone(),
            vars: self.vars.clone(),
            dry_run: self.dry_run,
            scenario: self.scenario.clone(),
            json: self.output.json(),
            state_dir: self.state.dir().map(Path::to_owned),
            state_url: self.state.url(),
            lease: self.lease,
            once: self.once,
            restart: self.restart,
            retry_step: self.retry_step,
            skip_step: self.skip_step,
            kill_grace: self.kill_grace,
            stopped_hint: None,
        }
    }
}

fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    crate::plan::units::parse_duration(text)
        .map_err(|e| format!("{e} (a duration such as 500ms, 10s, 1m)"))
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    let request = args.request();
    crate::process::set_grace(request.kill_grace);
    let report = validate_file_with(&request.plan, Checks::default(), &request.vars)?;
    let Some(plan) = report.plan.clone().filter(|_| report.is_valid(false)) else {
        return Err(report.into());
    };
    let digest = store::digest(&report.source.text, &request.vars);
    super::runtime()?.block_on(execute(
        &request,
        Arc::new(plan),
        digest,
        &report.source.text,
    ))
}

/// `NAME=VALUE` for `--var`.
pub(super) fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no name before `=`"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// When simulated time starts: the scenario's `start`, else the plan's `not_before`, else now.
fn simulated_start(plan: &Plan, scenario_start: Option<&str>) -> DateTime<Utc> {
    scenario_start
        .or(plan.schedule.as_ref().and_then(|s| s.not_before.as_deref()))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.to_utc())
}

/// What a run needs, by mode.
struct Setup {
    mode: Mode,
    run_id: String,
    parts: Parts,
    journal: Option<PathBuf>,
    pending: Option<Pending>,
    resume: Option<RunState>,
    /// Held for the whole run.
    _lock: Option<Guard>,
}

/// Where a run stands before its engine starts: ready, or nothing to do (its exit code).
enum Begun<T> {
    Ready(T),
    AlreadyEnded(u8),
}

/// Runs `plan` (validated from `text`, whose digest with the `--var` overrides is `digest`).
pub(super) async fn execute(
    request: &RunRequest,
    plan: Arc<Plan>,
    digest: String,
    text: &str,
) -> Result<u8, CliError> {
    let progress = progress_sink(request, &plan);
    let setup = if let Some(path) = &request.scenario {
        scenario_setup(path, &plan, progress)?
    } else if request.dry_run {
        dry_run_setup(&plan, progress)
    } else {
        match live_setup(request, &plan, (&digest, text), progress)? {
            Begun::Ready(setup) => setup,
            Begun::AlreadyEnded(code) => return Ok(code),
        }
    };
    let info = RunInfo {
        run_id: setup.run_id,
        plan_path: request.plan.display().to_string(),
        digest,
        mode: setup.mode,
    };
    let options = Options {
        once: request.once,
        retry_step: request.retry_step,
        skip_step: request.skip_step,
    };
    let engine = Engine::resume(&plan, info, setup.parts, setup.resume, options)?;
    let result = engine.run().await;
    if let Some(pending) = setup.pending {
        pending.drain(DRAIN).await;
    }
    if let Some(path) = &setup.journal {
        eprintln!("journal: {}", path.display());
        if request.stopped_hint.is_none() {
            eprintln!(
                "report: ion-plan report {} --format md",
                request.plan.display()
            );
        }
    }
    let outcome = result?;
    if setup.mode == Mode::Live {
        say_how_to_go_on(request, outcome);
    }
    Ok(outcome.exit_code())
}

/// Where the events go on screen. A live run on a terminal gets the live view: event lines
/// above a status line with countdowns and streaks, redrawn every second.
fn progress_sink(request: &RunRequest, plan: &Arc<Plan>) -> Box<dyn Sink> {
    let style = if request.json {
        Style::Json
    } else {
        Style::Plain
    };
    let live_view = !request.json && request.is_live() && crate::report::live::wanted();
    if live_view {
        Box::new(LiveView::start(Arc::clone(plan)))
    } else {
        Box::new(Progress::new(std::io::stdout(), style).with_plan(plan))
    }
}

/// After a live run stopped before its end: what the person does next.
fn say_how_to_go_on(request: &RunRequest, outcome: Outcome) {
    if outcome == Outcome::Waiting {
        eprintln!(
            "the run is resumable, and waits for a person: `ion-plan approve {plan}` (or `ion-plan abort {plan} --reason TEXT`) from any shell, then `ion-plan run {once}{plan}` again",
            plan = request.plan.display(),
            once = if request.once { "--once " } else { "" }
        );
    } else if !outcome.is_final() {
        eprintln!("{}", request.stopped_hint());
    }
}

fn scenario_setup(path: &Path, plan: &Plan, progress: Box<dyn Sink>) -> Result<Setup, CliError> {
    let (report, scenario) = validate_scenario(path, plan)?;
    let Some(scenario) = scenario.filter(|_| report.is_valid(false)) else {
        return Err(report.into());
    };
    let scenario = Arc::new(scenario);
    let start = simulated_start(plan, scenario.start.as_deref());
    let run_id = store::run_id(start);
    let resolver = Arc::new(Resolver::without_secrets(plan, &run_id));
    Ok(Setup {
        mode: Mode::Scenario,
        run_id,
        parts: Parts {
            clock: Arc::new(SimClock::new(start)),
            sampler: Arc::new(ScenarioSampler::new(Arc::clone(&scenario))),
            steps: Arc::new(scenario::steps(&scenario, ShowSteps::new(resolver))),
            control: Box::new(ScenarioControl::new(Arc::clone(&scenario), start)),
            sinks: vec![progress],
        },
        journal: None,
        pending: None,
        resume: None,
        _lock: None,
    })
}

fn dry_run_setup(plan: &Plan, progress: Box<dyn Sink>) -> Setup {
    let start = simulated_start(plan, None);
    let run_id = store::run_id(start);
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
        resume: None,
        _lock: None,
    }
}

/// The plan a run starts from: its digest (with the `--var` overrides) and the text validated.
type Started<'a> = (&'a str, &'a str);

/// Takes the plan's lock and opens its run by the store's resume rule; an ended run of the same
/// plan is said and left alone (its outcome is the exit code).
fn open_journal(
    request: &RunRequest,
    plan: &Plan,
    (digest, text): Started<'_>,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Begun<(Opened, Guard)>, CliError> {
    let lock = store.lock()?;
    let start = Start {
        plan,
        plan_path: &request.plan,
        digest,
        text,
        vars: &request.vars,
        restart: request.restart,
        resolves_step: request.retry_step || request.skip_step,
        default_step_timeout: crate::engine::live::STEP_TIMEOUT,
        now,
    };
    match store.open(&start, &lock, &mut |notice| eprintln!("{notice}"))? {
        Opening::Opened(opened) => Ok(Begun::Ready((*opened, lock))),
        Opening::Ended {
            run_id,
            at,
            outcome,
            reason,
            journal,
        } => {
            eprintln!(
                "run {run_id} of this plan ended{}: {}{}; nothing to do. The plan has not changed since; `ion-plan run {} --restart` starts a new run.",
                at.map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%SZ")))
                    .unwrap_or_default(),
                outcome.as_str(),
                reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                request.plan.display()
            );
            eprintln!("journal: {}", journal.display());
            Ok(Begun::AlreadyEnded(outcome.exit_code()))
        }
    }
}

fn live_setup(
    request: &RunRequest,
    plan: &Arc<Plan>,
    source: Started<'_>,
    progress: Box<dyn Sink>,
) -> Result<Begun<Setup>, CliError> {
    let clock = RealClock;
    // Every `env` name must be set before anything happens, even a journal.
    Resolver::from_environment(plan, "")?;
    let store = match &request.state_url {
        Some(url) => Store::in_postgres(&request.plan, url, request.lease)?,
        None => Store::for_plan(&request.plan, request.state_dir.as_deref()),
    };
    let (mut opened, lock) = match open_journal(request, plan, source, &store, clock.now())? {
        Begun::Ready(ready) => ready,
        Begun::AlreadyEnded(code) => return Ok(Begun::AlreadyEnded(code)),
    };
    opened.journal.guard_with(&lock);
    let run_id = opened.run_id;
    let resolver = Resolver::from_environment(plan, &run_id)?;
    let mut live =
        Live::new(Arc::clone(plan), resolver, plan_dir(&request.plan)).map_err(CliError::Probes)?;
    let hold = match &lock {
        Guard::Lease(lease) => Some(lease.hold()),
        Guard::File(_) => None,
    };
    live.hold.clone_from(&hold);
    let live = Arc::new(live);
    let journal_path = opened.journal.path();
    let journal = SharedJournal(Arc::new(std::sync::Mutex::new(opened.journal)));
    super::signal::stop_run_on_signal(journal.clone(), request.stopped_hint());
    let (notifier, pending) = Notifier::new(
        plan.notify.clone(),
        Arc::clone(&live.resolver),
        &plan.name,
        &run_id,
        live.client.clone(),
    );
    let taken = opened
        .resume
        .as_ref()
        .map(|r| r.taken.clone())
        .unwrap_or_default();
    let inbox = store.inbox(&run_id, taken);
    let redact = Arc::clone(&live.redact);
    Ok(Begun::Ready(Setup {
        mode: Mode::Live,
        run_id,
        parts: Parts {
            clock: Arc::new(clock),
            sampler: Arc::clone(&live) as _,
            steps: live as _,
            control: Box::new(
                TerminalControl::with_inbox(
                    Some(inbox),
                    (!request.once).then(|| request.plan.display().to_string()),
                )
                .with_hold(hold),
            ),
            // Every event is redacted once more before any sink sees it.
            sinks: vec![Box::new(crate::redact::Redacting::new(
                redact,
                vec![Box::new(journal), progress, Box::new(notifier)],
            ))],
        },
        journal: Some(journal_path),
        pending: Some(pending),
        resume: opened.resume,
        _lock: Some(lock),
    }))
}
