//! Where runs are kept, as every command that reads or writes them is told (`--state-dir DIR`,
//! or `--state postgres://…` / `ION_PLAN_STATE` for a team's database), and the commands of the
//! database store itself: `ion-plan state migrate`, `ion-plan state import DIR`, `ion-plan runs`
//! (README, "Running as a team").

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CliError;
use crate::exit_code;
use crate::journal::postgres::{self, Db};
use crate::journal::replay;
use crate::journal::store::{Store, plan_name};

/// The environment variable naming the team's state database when `--state` is not given.
pub const STATE_ENV: &str = "ION_PLAN_STATE";

#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Where journals are kept. Default: `.ion-plan/` beside the plan (unless `ION_PLAN_STATE`
    /// names a database).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A PostgreSQL store a team shares: `postgres://USER@HOST:PORT/DB[?sslmode=verify-full]`.
    /// Default: `ION_PLAN_STATE`. The password comes from `PGPASSWORD` or `~/.pgpass`, never the URL.
    #[arg(long, value_name = "URL", conflicts_with = "state_dir")]
    state: Option<String>,
}

impl StateArgs {
    /// The database URL in effect: `--state`, else `ION_PLAN_STATE` unless `--state-dir` is given.
    pub fn url(&self) -> Option<String> {
        if self.state_dir.is_some() {
            return None;
        }
        self.state.clone().or_else(|| {
            std::env::var(STATE_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// The store of `plan`: the database if one is named, else the folder.
    pub fn store(&self, plan: &Path, lease: Duration) -> Result<Store, CliError> {
        match self.url() {
            Some(url) => Ok(Store::in_postgres(plan, &checked(&url)?, lease)?),
            None => Ok(Store::for_plan(plan, self.state_dir.as_deref())),
        }
    }
}

/// A `--state` value must be a database URL: a folder is `--state-dir`.
fn checked(url: &str) -> Result<String, CliError> {
    if postgres::is_url(url) {
        Ok(url.to_owned())
    } else {
        Err(CliError::Usage(format!(
            "--state (or ${STATE_ENV}) takes a postgres:// URL, not `{url}`; a folder is `--state-dir DIR`"
        )))
    }
}

/// Parses `--lease`: a duration of at least 3 s (it is renewed every third of it).
pub fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = crate::plan::units::parse_duration(text)
        .map_err(|e| format!("{e} (a duration such as 30s, 2m)"))?;
    if lease < Duration::from_secs(3) {
        return Err(format!(
            "a lease of `{text}` is too short: at least 3s (it is renewed every third of it)"
        ));
    }
    Ok(lease)
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan state migrate --state postgres://ion@db.internal:5432/rollouts\n  ion-plan state import plans/.ion-plan --state postgres://ion@db.internal/rollouts"
)]
pub struct Args {
    #[command(subcommand)]
    command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StateCommand {
    /// Create or upgrade the store's tables (safe to run again; two at once wait for each
    /// other).
    #[command(
        after_help = "Examples:\n  ion-plan state migrate --state postgres://ion@db.internal:5432/rollouts\n  ion-plan state migrate            # the database in $ION_PLAN_STATE"
    )]
    Migrate(DbArgs),
    /// Copy the journals of a state folder into the store (runs already there are skipped).
    #[command(
        after_help = "Examples:\n  ion-plan state import plans/.ion-plan --state postgres://ion@db.internal:5432/rollouts"
    )]
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
struct DbArgs {
    /// The database: `postgres://USER@HOST:PORT/DB`. Default: `ION_PLAN_STATE`.
    #[arg(long, value_name = "URL")]
    state: Option<String>,
}

impl DbArgs {
    fn connect(&self) -> Result<std::sync::Arc<Db>, CliError> {
        let url = self
            .state
            .clone()
            .or_else(|| std::env::var(STATE_ENV).ok().filter(|v| !v.trim().is_empty()))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "no database named: give `--state postgres://USER@HOST:PORT/DB` or set ${STATE_ENV} (for `runs`, `--state-dir DIR` lists a state folder)"
                ))
            })?;
        Ok(Db::connect(&checked(&url)?).map_err(crate::journal::store::StoreError::from)?)
    }
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The state folder whose journals to copy (`.ion-plan/` beside the plans).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    match &args.command {
        StateCommand::Migrate(db) => {
            let db = db.connect()?;
            let (from, to) = db
                .migrate()
                .map_err(crate::journal::store::StoreError::from)?;
            if from == to {
                eprintln!("{}: schema version {to}, up to date", db.shown());
            } else {
                eprintln!("{}: schema version {from} → {to}", db.shown());
            }
            Ok(exit_code::SUCCESS)
        }
        StateCommand::Import(import) => self::import(import),
    }
}

/// Every `STEM-RUNID.jsonl` of the folder, with its plan snapshot; each run in one transaction.
fn import(args: &ImportArgs) -> Result<u8, CliError> {
    let db = args.db.connect()?;
    db.check_schema()
        .map_err(crate::journal::store::StoreError::from)?;
    let mut journals: Vec<(String, PathBuf)> = folder_runs(&args.dir)?
        .into_iter()
        .map(|run| (run.key, run.path))
        .collect();
    // A plan's runs one after another, each plan under its lease: a run imported beside one a
    // runner is running would become the plan's newest, and take its requests and its status.
    journals.sort();
    let (mut copied, mut skipped) = (0, 0);
    let mut leased: Option<(String, postgres::Lease)> = None;
    for (plan, path) in &journals {
        // A journal without a header is no run (its start was cut short): the file store skips
        // it with a warning, and so does the move to the database.
        let replay = match replay::read(path) {
            Ok(replay) => replay,
            Err(error) if error.is_no_run() => {
                eprintln!(
                    "warning: ignoring `{}`: {error}; it is no run (remove it to silence this)",
                    path.display()
                );
                continue;
            }
            Err(error) => return Err(CliError::Import(error)),
        };
        // A torn last line (a crash in the middle of a write) is left out, as a resume leaves
        // it out; said, as nothing of a journal should go missing unannounced.
        if let Some(torn) = &replay.torn {
            eprintln!("warning: {torn}; imported without it, as a resume would read it");
        }
        if leased.as_ref().is_none_or(|(held, _)| held != plan) {
            let lease = db
                .lease(plan, postgres::DEFAULT_LEASE)
                .map_err(crate::journal::store::StoreError::from)?;
            leased = Some((plan.clone(), lease));
        }
        let text = snapshot(path);
        let name = plan_name(&text);
        let fresh = db
            .import(plan, name.as_deref(), &replay, &text)
            .map_err(crate::journal::store::StoreError::from)?;
        if fresh {
            copied += 1;
            eprintln!(
                "imported run {} of `{plan}` ({} events)",
                replay.header.run_id,
                replay.records.len()
            );
        } else {
            skipped += 1;
        }
    }
    eprintln!(
        "{copied} run{} imported into {}, {skipped} already there",
        if copied == 1 { "" } else { "s" },
        db.shown()
    );
    Ok(exit_code::SUCCESS)
}

/// A run's journal in a state folder.
struct FolderRun {
    /// The plan's key as a database keys it: its `name:` (from the plan copy beside the
    /// journal), else the file stem.
    key: String,
    /// The stem the folder names its files by.
    stem: String,
    run_id: String,
    path: PathBuf,
}

/// Every `STEM-RUNID.jsonl` of a state folder, after checking the folder as a runner does.
fn folder_runs(dir: &Path) -> Result<Vec<FolderRun>, CliError> {
    let unsafe_dir = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            // Not a refusal: nothing is there.
            CliError::NoFolder(dir.to_owned())
        } else {
            CliError::Store(crate::journal::store::StoreError::Unsafe(source))
        }
    };
    crate::journal::dir::check(dir).map_err(unsafe_dir)?;
    Ok(std::fs::read_dir(dir)
        .map_err(unsafe_dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?;
            let stem = name.strip_suffix(".jsonl")?;
            // `STEM-RUNID`: the run id is the last two `-`-separated parts.
            let (rest, salt) = stem.rsplit_once('-')?;
            let (plan, time) = rest.rsplit_once('-')?;
            let run_id = format!("{time}-{salt}");
            replay::is_run_id(&run_id).then(|| FolderRun {
                key: plan_name(&snapshot(&path)).unwrap_or_else(|| plan.to_owned()),
                stem: plan.to_owned(),
                run_id,
                path: path.clone(),
            })
        })
        .collect())
}

/// The plan text kept beside a journal (empty if there is none).
fn snapshot(journal: &Path) -> String {
    crate::journal::dir::read_snapshot(journal).unwrap_or_default()
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan runs --state postgres://ion@db.internal:5432/rollouts\n  ion-plan runs --plan ion-mentoring-phase4 --format json   # a plan by its name:\n  ion-plan runs --state-dir plans/.ion-plan                # a state folder's runs"
)]
pub struct RunsArgs {
    /// Only the runs of this plan (its `name:`).
    #[arg(long, value_name = "NAME")]
    plan: Option<String>,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u32,
    /// A state folder (`.ion-plan/` beside the plans) instead of the database.
    #[arg(long, value_name = "DIR", conflicts_with = "state")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    output: super::output::Output,
}

/// One line of `ion-plan runs`.
#[derive(Debug, serde::Serialize)]
struct RunLine {
    plan: String,
    run_id: String,
    outcome: String,
    stage: Option<String>,
    started: Option<chrono::DateTime<chrono::Utc>>,
    holder: Option<String>,
}

/// The runs of a state folder to list, newest first.
fn folder_listing(dir: &Path, args: &RunsArgs) -> Result<Vec<(String, Store, String)>, CliError> {
    let mut runs: Vec<FolderRun> = folder_runs(dir)?
        .into_iter()
        .filter(|run| {
            args.plan
                .as_ref()
                .is_none_or(|plan| *plan == run.key || *plan == run.stem)
        })
        .collect();
    // Newest first: run ids sort by their start.
    runs.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    runs.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));
    Ok(runs
        .into_iter()
        .map(|run| (run.key, Store::in_folder(dir, &run.stem), run.run_id))
        .collect())
}

/// The runs of the database to list, newest first.
fn db_listing(args: &RunsArgs) -> Result<Vec<(String, Store, String)>, CliError> {
    let db = args.db.connect()?;
    db.check_schema()
        .map_err(crate::journal::store::StoreError::from)?;
    Ok(db
        .runs(args.plan.as_deref(), i64::from(args.limit))
        .map_err(crate::journal::store::StoreError::from)?
        .into_iter()
        .map(|(plan, run_id)| {
            let store =
                Store::with_db_key(&plan, std::sync::Arc::clone(&db), postgres::DEFAULT_LEASE);
            (plan, store, run_id)
        })
        .collect())
}

/// `ion-plan runs`: the store's runs (the database's, or a state folder's with `--state-dir`),
/// newest first: plan, id, outcome, stage, started, holder.
pub fn runs(args: &RunsArgs) -> Result<u8, CliError> {
    // Each run with the plan's name to show and the store that holds it.
    let listed = if let Some(dir) = &args.state_dir {
        folder_listing(dir, args)?
    } else {
        db_listing(args)?
    };
    let mut lines = Vec::with_capacity(listed.len());
    for (plan, store, run_id) in listed {
        let found = match store.find(&run_id) {
            Ok(found) => found,
            // One damaged journal does not hide the others: named, and left out.
            Err(error) if args.state_dir.is_some() => {
                eprintln!("warning: run {run_id} of `{plan}` left out: {error}");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let Some((_, run)) = found else {
            continue;
        };
        let outcome = match &run.ended {
            Some((outcome, _)) => outcome.as_str().to_owned(),
            None if run.superseded => "superseded".to_owned(),
            None => "unfinished".to_owned(),
        };
        let holder = run.unfinished().then(|| store.holder()).flatten();
        lines.push(RunLine {
            plan,
            stage: run.stage.as_ref().map(|s| s.name.clone()),
            started: run.started,
            run_id,
            outcome,
            holder,
        });
    }
    let text = if args.output.json() {
        let mut text =
            serde_json::to_string_pretty(&serde_json::json!({ "runs": lines })).unwrap_or_default();
        text.push('\n');
        text
    } else {
        let mut text = format!(
            "{:<16} {:<26} {:<12} {:<14} {:<20} HOLDER\n",
            "PLAN", "RUN", "OUTCOME", "STAGE", "STARTED"
        );
        for line in &lines {
            let _ = writeln!(
                text,
                "{:<16} {:<26} {:<12} {:<14} {:<20} {}",
                line.plan,
                line.run_id,
                line.outcome,
                line.stage.as_deref().unwrap_or("-"),
                line.started.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()
                ),
                line.holder.as_deref().unwrap_or("-")
            );
        }
        text
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Unwritten(e)),
        _ => Ok(exit_code::SUCCESS),
    }
}
