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
use crate::engine::run::{Engine, EngineError, Options, Parts, RunInfo};
use crate::engine::scenario::{ScenarioControl, ScenarioSampler};
use crate::engine::{Sink, scenario};
use crate::event::state::RunState;
use crate::event::{Event, FORMAT_VERSION, Mode};
use crate::exit_code;
use crate::journal::inbox::{self, Inbox};
use crate::journal::lock::{self, LockError, RunLock};
use crate::journal::replay::{self, Replay};
use crate::journal::{Header, Journal, SharedJournal};
use crate::plan::load::Source;
use crate::plan::model::Plan;
use crate::plan::validate::{
    Checks, Report, plan_dir, validate_file_with, validate_scenario, validate_source_with,
};
use crate::report::diagnostics::{FileOutcome, Format, render};
use crate::report::live::LiveView;
use crate::report::progress::{Progress, Style};

#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "clap flags")]
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
    /// Do what is due now and exit: 0 completed, 3 rolled back, 4 waiting for a person,
    /// 5 in progress. For a scheduled CI job that drives a rollout that bakes for days.
    #[arg(long, conflicts_with_all = ["dry_run", "scenario"])]
    pub(super) once: bool,
    /// Start a new run even though an unfinished one exists (the old journal is kept).
    #[arg(long, conflicts_with_all = ["dry_run", "scenario"])]
    pub(super) restart: bool,
    /// Run again the interrupted non-idempotent step of the run being resumed.
    #[arg(long, conflicts_with = "skip_step")]
    pub(super) retry_step: bool,
    /// Skip the interrupted non-idempotent step of the run being resumed (it took effect).
    #[arg(long)]
    pub(super) skip_step: bool,
    /// Override a plan var for this run (repeatable): `--var image=v2.3.1`. The overrides are
    /// part of the run's digest and recorded in its journal.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub(super) vars: Vec<(String, String)>,
    /// How long a step's or command probe's process group gets to end after SIGTERM (at a
    /// timeout, Ctrl-C or SIGTERM) before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_grace)]
    pub(super) kill_grace: std::time::Duration,
    /// What to tell a person whose run stopped before its end; `None`: how to resume it.
    #[arg(skip)]
    pub(super) stopped_hint: Option<String>,
}

impl Args {
    fn stopped_hint(&self) -> String {
        self.stopped_hint.clone().unwrap_or_else(|| {
            format!(
                "the run is resumable: ion-plan run {}{}",
                if self.once { "--once " } else { "" },
                self.plan.display()
            )
        })
    }
}

fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    crate::plan::units::parse_duration(text)
        .map_err(|e| format!("{e} (a duration such as 500ms, 10s, 1m)"))
}

pub fn run(args: &Args) -> u8 {
    crate::process::set_grace(args.kill_grace);
    let report = match validate_file_with(&args.plan, Checks::default(), &args.vars) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{:?}", miette::Report::new(error));
            return exit_code::RUNTIME_ERROR;
        }
    };
    let Some(plan) = report.plan.clone().filter(|_| report.is_valid(false)) else {
        return invalid(report);
    };
    let digest = digest_with(&report.source.text, &args.vars);
    let plan = Arc::new(plan);
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(execute(args, plan, digest, &report.source.text))
}

/// `sha256:HEX` of a plan's text: what a run records to notice a changed plan.
pub(super) fn digest(text: &str) -> String {
    digest_with(text, &[])
}

/// The digest of a plan's text and its `--var` overrides (in order): the same plan run with
/// another `--var` value is another release.
fn digest_with(text: &str, vars: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    for (name, value) in vars {
        // Lengths first, so that no two lists of overrides hash alike.
        hasher.update(format!("\n--var {}:{}:{name}={value}", name.len(), value.len()).as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .fold(String::from("sha256:"), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
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

/// A run id: its start to the millisecond, then a salt. Journals sort by it, so the newest run
/// is the last one.
fn run_id(now: DateTime<Utc>) -> String {
    let salt = u64::from(std::process::id()) ^ u64::from(Utc::now().timestamp_subsec_nanos());
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%S%3fZ"), salt & 0xffff)
}

/// A run id that sorts after `previous` (the newest run's), even within one millisecond or
/// when that run's clock was ahead.
fn run_id_after(now: DateTime<Utc>, previous: Option<&str>) -> String {
    let previous = previous
        .and_then(|id| id.rsplit_once('-'))
        .and_then(|(time, _)| {
            chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S%3fZ")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%SZ"))
                .ok()
        })
        .map(|t| t.and_utc());
    let at = match previous {
        Some(previous) if previous >= now => {
            previous
                + chrono::Duration::milliseconds(if previous.timestamp_subsec_millis() == 0 {
                    1000
                } else {
                    1
                })
        }
        _ => now,
    };
    run_id(at)
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
    _lock: Option<RunLock>,
}

/// Runs `plan` (validated from `text`, whose digest with the `--var` overrides is `digest`).
pub(super) async fn execute(args: &Args, plan: Arc<Plan>, digest: String, text: &str) -> u8 {
    let style = if args.json { Style::Json } else { Style::Plain };
    // A live run on a terminal gets the live view: event lines above a status line with
    // countdowns and streaks, redrawn every second.
    let live_view =
        !args.json && !args.dry_run && args.scenario.is_none() && crate::report::live::wanted();
    let progress: Box<dyn Sink> = if live_view {
        Box::new(LiveView::start(Arc::clone(&plan)))
    } else {
        Box::new(Progress::new(std::io::stdout(), style))
    };
    let setup = if let Some(path) = &args.scenario {
        scenario_setup(path, &plan, progress)
    } else if args.dry_run {
        Ok(dry_run_setup(&plan, progress))
    } else {
        live_setup(args, &plan, (&digest, text), progress)
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
    let options = Options {
        once: args.once,
        retry_step: args.retry_step,
        skip_step: args.skip_step,
    };
    let engine = match Engine::resume(&plan, info, setup.parts, setup.resume, options) {
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
        if args.stopped_hint.is_none() {
            eprintln!(
                "report: ion-plan report {} --format md",
                args.plan.display()
            );
        }
    }
    match result {
        Ok(outcome) => {
            if outcome == crate::event::Outcome::Waiting && setup.mode == Mode::Live {
                eprintln!(
                    "the run is resumable, and waits for a person: `ion-plan approve {plan}` (or `ion-plan abort {plan} --reason TEXT`) from any shell, then `ion-plan run {once}{plan}` again",
                    plan = args.plan.display(),
                    once = if args.once { "--once " } else { "" }
                );
            } else if !outcome.is_final() && setup.mode == Mode::Live {
                eprintln!("{}", args.stopped_hint());
            }
            outcome.exit_code()
        }
        Err(EngineError::Conflict(message)) => {
            eprintln!("error: {message}");
            exit_code::STATE_CONFLICT
        }
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
        resume: None,
        _lock: None,
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
        resume: None,
        _lock: None,
    }
}

/// The state folder of a plan, and the stem its files are named by.
pub(super) fn state_of(plan: &Path, state_dir: Option<&Path>) -> (PathBuf, String) {
    let state = state_dir.map_or_else(|| plan_dir(plan).join(".ion-plan"), Path::to_owned);
    let stem = plan
        .file_stem()
        .map_or_else(|| "plan".to_owned(), |s| s.to_string_lossy().into_owned());
    (state, stem)
}

/// Checks the state folder if it exists (a symlink, another owner, loose permissions are
/// refused: exit 6); `Ok(false)` when there is none.
fn checked_state(state: &Path) -> Result<bool, u8> {
    if state.symlink_metadata().is_err() {
        return Ok(false);
    }
    crate::journal::dir::check(state).map_err(|error| {
        eprintln!("error: {error}");
        exit_code::STATE_CONFLICT
    })?;
    Ok(true)
}

/// The newest run of a plan and its state, if it has one (journals without a header are no run:
/// skipped with a warning).
pub(super) fn latest_run(state: &Path, stem: &str) -> Result<Option<(Replay, RunState)>, u8> {
    if !checked_state(state)? {
        return Ok(None);
    }
    replay::latest(state, stem, &mut |warning| eprintln!("warning: {warning}")).map_err(|error| {
        eprintln!("{:?}", miette::Report::new(error));
        exit_code::STATE_CONFLICT
    })
}

/// The run `id` of a plan, if its journal exists.
pub(super) fn named_run(
    state: &Path,
    stem: &str,
    id: &str,
) -> Result<Option<(Replay, RunState)>, u8> {
    if !checked_state(state)? {
        return Ok(None);
    }
    let Some(path) = replay::runs(state, stem)
        .into_iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(&format!("{stem}-{id}.jsonl")))
    else {
        return Ok(None);
    };
    let replay = replay::read(&path).map_err(|error| {
        eprintln!("{:?}", miette::Report::new(error));
        exit_code::STATE_CONFLICT
    })?;
    let run = replay.state();
    Ok(Some((replay, run)))
}

/// A journal ready to append to: the unfinished run taken up, or a new one.
struct Opened {
    journal: Journal,
    run_id: String,
    resume: Option<RunState>,
}

/// The plan a run starts from: its digest (with the `--var` overrides) and the text validated.
type Started<'a> = (&'a str, &'a str);

fn open_run(
    args: &Args,
    plan: &Plan,
    source: Started<'_>,
    state: &Path,
    stem: &str,
    now: DateTime<Utc>,
) -> Result<Opened, u8> {
    let (digest, text) = source;
    let conflict = |message: String| {
        eprintln!("error: {message}");
        exit_code::STATE_CONFLICT
    };
    let io = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::WouldBlock {
            return conflict(error.to_string());
        }
        eprintln!(
            "error: cannot write the journal in {}: {error}",
            state.display()
        );
        exit_code::RUNTIME_ERROR
    };
    let latest = latest_run(state, stem)?;
    if let Some((replay, run)) = latest.as_ref().filter(|(_, r)| r.unfinished()) {
        if let Some(warning) = &replay.torn {
            eprintln!("warning: {warning}");
        }
        if !args.restart {
            if run.digest != digest {
                return Err(conflict(stale_plan(args, plan, replay, run)));
            }
            let journal =
                Journal::open_append(&replay.path, replay.intact_len, run.last_seq).map_err(io)?;
            // A journal whose run never started (cut short after its header) starts afresh.
            let resume = run.started.is_some().then(|| run.clone());
            if resume.is_some() {
                eprintln!("resuming run {} ({})", run.run_id, replay.path.display());
            }
            return Ok(Opened {
                journal,
                run_id: run.run_id.clone(),
                resume,
            });
        }
        // A new run must not start its steps beside a step of the old one that still runs:
        // wait for it as a resume would (at most until its timeout, then end it).
        for (_, step) in run.interrupted_steps() {
            if let Some(group) = step
                .group
                .as_ref()
                .filter(|g| crate::process::still_runs(g))
            {
                wait_for_old_step(plan, run, step, group);
            }
        }
        let new_id = run_id_after(now, Some(&run.run_id));
        let mut old =
            Journal::open_append(&replay.path, replay.intact_len, run.last_seq).map_err(io)?;
        old.append(now, Event::Superseded { by: new_id.clone() })
            .map_err(io)?;
        eprintln!(
            "run {} left unfinished; its journal is kept: {}",
            run.run_id,
            replay.path.display()
        );
        return new_run(args, (digest, text), state, stem, new_id, now).map_err(io);
    }
    if args.retry_step || args.skip_step {
        return Err(conflict("there is no unfinished run to resume".to_owned()));
    }
    // An ended run is not started again by accident (a scheduler re-running `--once` after a
    // rollback): only a changed plan (a new release) or `--restart` starts a new one.
    if let Some((replay, run)) = &latest
        && let Some((outcome, reason)) = &run.ended
        && run.digest == digest
        && !args.restart
    {
        eprintln!(
            "run {} of this plan ended{}: {}{}; nothing to do. The plan has not changed since; `ion-plan run {} --restart` starts a new run.",
            run.run_id,
            run.ended_at
                .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%SZ")))
                .unwrap_or_default(),
            outcome.as_str(),
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            args.plan.display()
        );
        eprintln!("journal: {}", replay.path.display());
        return Err(outcome.exit_code());
    }
    let previous = latest.as_ref().map(|(_, run)| run.run_id.as_str());
    new_run(
        args,
        (digest, text),
        state,
        stem,
        run_id_after(now, previous),
        now,
    )
    .map_err(io)
}

/// Waits for an interrupted step's process group that outlived its runner to end: at most until
/// the step's timeout, counted from its recorded start; then ends it.
fn wait_for_old_step(
    plan: &Plan,
    run: &RunState,
    step: &crate::event::state::StepStatus,
    group: &crate::process::GroupRecord,
) {
    let timeout = run
        .stage
        .as_ref()
        .and_then(|p| plan.stages.iter().find(|s| s.name == p.name))
        .and_then(|stage| {
            let steps = stage.effective_steps(plan.defaults.as_ref());
            steps
                .iter()
                .find(|s| s.name.as_deref() == Some(step.name.as_str()))
                .and_then(|s| s.timeout)
        })
        .map_or(
            crate::engine::live::STEP_TIMEOUT,
            crate::plan::units::PlanDuration::as_duration,
        );
    let ran = step
        .started
        .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
        .unwrap_or_default();
    let until = std::time::Instant::now() + timeout.saturating_sub(ran);
    eprintln!(
        "step `{}` of run {} still runs (process group {}, its runner is gone): waiting for it to end before the new run starts",
        step.name, run.run_id, group.pgid
    );
    while crate::process::still_runs(group) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if crate::process::still_runs(group) {
        crate::process::end_blocking(i32::try_from(group.pgid).unwrap_or(0));
    }
}

/// Why a run cannot resume on a changed plan, and what changed.
fn stale_plan(args: &Args, plan: &Plan, replay: &Replay, run: &RunState) -> String {
    let snapshot = replay.path.with_extension("plan.yaml");
    let changes = crate::journal::dir::open_read(&snapshot)
        .and_then(|file| {
            use std::io::Read as _;
            let mut text = String::new();
            file.take(crate::plan::load::MAX_PLAN_BYTES)
                .read_to_string(&mut text)
                .map(|_| text)
        })
        .ok()
        .and_then(|text| {
            validate_source_with(
                Source::new(&snapshot, text),
                Checks { filesystem: false },
                &replay.header.vars,
            )
            .plan
        })
        .map_or_else(
            || vec!["(the plan the run started from was not kept)".to_owned()],
            |old| crate::plan::diff::summarize(&old, plan),
        );
    format!(
        "the plan changed since run {} started, so it cannot resume:\n{}\nrestore the plan, or start a new run with `ion-plan run {} --restart`",
        run.run_id,
        changes
            .iter()
            .map(|c| format!("  - {c}"))
            .collect::<Vec<_>>()
            .join("\n"),
        args.plan.display()
    )
}

fn new_run(
    args: &Args,
    (digest, text): Started<'_>,
    state: &Path,
    stem: &str,
    run_id: String,
    now: DateTime<Utc>,
) -> std::io::Result<Opened> {
    let header = Header {
        format: FORMAT_VERSION,
        run_id: run_id.clone(),
        plan: args.plan.display().to_string(),
        digest: digest.to_owned(),
        created: now,
        vars: args.vars.clone(),
    };
    crate::journal::dir::ensure(state)?;
    // Keep the plan the run starts from: a changed plan is then explained, not just refused.
    // Written first, so that a journal on disk always has its snapshot.
    let name = format!("{stem}-{run_id}.jsonl");
    // The text that was validated and digested, not the file as it may be by now.
    crate::journal::write_private(
        &state.join(&name).with_extension("plan.yaml"),
        text.as_bytes(),
    )?;
    let journal = Journal::create(state, &name, &header)?;
    Ok(Opened {
        journal,
        run_id,
        resume: None,
    })
}

/// On SIGINT or SIGTERM: wait for the journal write in flight, say how to resume, and exit
/// 130 or 143. The run stays resumable.
fn on_signal(journal: SharedJournal, hint: String) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        // A dropped terminal (SIGHUP) stops the run like SIGTERM: nothing the run started goes
        // on without a runner watching it.
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
            _ = hangup.recv() => 129,
        };
        // Every step's and probe's process group goes first (SIGTERM, SIGKILL after the
        // grace): nothing the run started outlives it. The interrupted step stays unfinished in
        // the journal, so a resume asks before running it again.
        tokio::task::spawn_blocking(crate::process::end_all)
            .await
            .ok();
        let _in_flight = journal.0.lock();
        eprintln!("\ninterrupted: the journal is intact; {hint}");
        std::process::exit(code);
    });
}

fn live_setup(
    args: &Args,
    plan: &Arc<Plan>,
    source: Started<'_>,
    progress: Box<dyn Sink>,
) -> Result<Setup, u8> {
    let clock = RealClock;
    // Every `env` name must be set before anything happens, even a journal.
    if let Err(error) = Resolver::from_environment(plan, "") {
        eprintln!("error: {error}; nothing was run");
        return Err(exit_code::INVALID);
    }
    let (state, stem) = state_of(&args.plan, args.state_dir.as_deref());
    checked_state(&state)?;
    let lock = lock::acquire(&state, &stem).map_err(|error| {
        eprintln!("error: {error}");
        match error {
            LockError::Held(_) => exit_code::STATE_CONFLICT,
            LockError::Io { .. } => exit_code::RUNTIME_ERROR,
        }
    })?;
    let mut opened = open_run(args, plan, source, &state, &stem, clock.now())?;
    opened.journal.guard_with(&lock);
    let run_id = opened.run_id;
    let resolver = Resolver::from_environment(plan, &run_id).map_err(|error| {
        eprintln!("error: {error}; nothing was run");
        exit_code::INVALID
    })?;
    let dir = plan_dir(&args.plan);
    let live = Live::new(Arc::clone(plan), resolver, dir).map_err(|error| {
        eprintln!("error: {error}");
        exit_code::RUNTIME_ERROR
    })?;
    let live = Arc::new(live);
    let journal_path = opened.journal.path().to_owned();
    let journal = SharedJournal(Arc::new(std::sync::Mutex::new(opened.journal)));
    on_signal(journal.clone(), args.stopped_hint());
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
    let inbox = Inbox::new(inbox::path(&state, &stem), &run_id, taken);
    let redact = Arc::clone(&live.redact);
    Ok(Setup {
        mode: Mode::Live,
        run_id,
        parts: Parts {
            clock: Arc::new(clock),
            sampler: Arc::clone(&live) as _,
            steps: live as _,
            control: Box::new(TerminalControl::with_inbox(
                Some(inbox),
                (!args.once).then(|| args.plan.display().to_string()),
            )),
            // Every event is redacted once more before any sink sees it.
            sinks: vec![Box::new(crate::engine::redact::Redacting::new(
                redact,
                vec![Box::new(journal), progress, Box::new(notifier)],
            ))],
        },
        journal: Some(journal_path),
        pending: Some(pending),
        resume: opened.resume,
        _lock: Some(lock),
    })
}
