//! Where a plan's runs are kept, and which run a command is about: the state folder's layout
//! (`STATE/STEM-RUNID.jsonl` journals, their plan snapshots, `STEM.lock`, the inbox), finding
//! the newest or a named run, and the resume rule that opens a run or starts a new one
//! (`docs/state.md`; README, "Crashes, resuming, and runs that bake for days").
//!
//! [`Store`] is the only code that knows where runs are kept: the files, or a PostgreSQL database
//! shared by a team (`journal::postgres`); every command goes through the same methods.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::event::state::{RunState, StepStatus};
use crate::event::{Event, FORMAT_VERSION, Outcome};
use crate::journal::inbox::{Entry, Inbox};
use crate::journal::lock::{self, LockError, RunLock};
use crate::journal::postgres::{self, Db, Lease, PgError};
use crate::journal::replay::{self, Replay, ReplayError};
use crate::journal::{Header, Journal, Writer};
use crate::plan::model::Plan;

/// A run as read back: its journal and the state folded from it.
pub type StoredRun = (Replay, RunState);

/// Why the state folder cannot serve a command.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder is unsafe to use (a symlink, another owner, loose permissions).
    #[error("{0}")]
    Unsafe(#[source] std::io::Error),
    /// A journal that cannot be read back.
    #[error(transparent)]
    Journal(#[from] ReplayError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A journal file locked by another process: another runner appends to it.
    #[error("{0}")]
    Busy(#[source] std::io::Error),
    #[error("cannot write the journal in {}: {source}", dir.display())]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The unfinished run started from another plan (or other `--var` values).
    #[error("{0}")]
    PlanChanged(String),
    /// `--retry-step` or `--skip-step` with nothing interrupted to apply it to.
    #[error("there is no unfinished run to resume")]
    NothingToResume,
    /// The PostgreSQL store cannot serve the command.
    #[error(transparent)]
    Postgres(#[from] PgError),
}

impl StoreError {
    fn write(dir: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
        move |source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                StoreError::Busy(source)
            } else {
                StoreError::Write {
                    dir: dir.to_owned(),
                    source,
                }
            }
        }
    }

    /// Whether the error is a conflict over the state (exit 6) rather than a failure to read or
    /// write it (exit 1).
    pub fn is_conflict(&self) -> bool {
        match self {
            StoreError::Write { .. } | StoreError::Lock(LockError::Io { .. }) => false,
            StoreError::Postgres(error) => error.is_conflict(),
            _ => true,
        }
    }
}

/// What the store tells the operator on the way (on stderr, as it happens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Warning(String),
    Note(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Warning(text) => write!(f, "warning: {text}"),
            Notice::Note(text) => f.write_str(text),
        }
    }
}

/// A live run about to start or resume: what the resume rule decides on.
#[derive(Debug, Clone)]
pub struct Start<'a> {
    pub plan: &'a Plan,
    /// The plan's path as given on the command line, for the header and the hints.
    pub plan_path: &'a Path,
    /// `sha256:` of the plan text and its `--var` overrides (see [`digest`]).
    pub digest: &'a str,
    /// The plan text that was validated and digested, kept beside the journal.
    pub text: &'a str,
    pub vars: &'a [(String, String)],
    /// Start a new run even though an unfinished one exists.
    pub restart: bool,
    /// `--retry-step` or `--skip-step`: only for an unfinished run.
    pub resolves_step: bool,
    /// A step's timeout when the plan sets none: how long a step left running by a gone runner
    /// is waited for before a restart ends it.
    pub default_step_timeout: std::time::Duration,
    pub now: DateTime<Utc>,
}

/// A journal ready to append to: the unfinished run taken up, or a new one.
#[derive(Debug)]
pub struct Opened {
    pub journal: Writer,
    pub run_id: String,
    /// The state to go on from; `None` for a new run.
    pub resume: Option<RunState>,
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub enum Opening {
    Opened(Box<Opened>),
    /// The newest run of this very plan has ended: nothing to do without `--restart`.
    Ended {
        run_id: String,
        at: Option<DateTime<Utc>>,
        outcome: Outcome,
        reason: Option<String>,
        journal: PathBuf,
    },
}

/// What makes a runner the only one of its plan: the lock file, or the database lease.
#[derive(Debug)]
pub enum Guard {
    File(RunLock),
    Lease(Lease),
}

/// The runs of one plan in one state folder, or in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Store {
    /// The folder; for a database, its URL without password (for messages only).
    dir: PathBuf,
    stem: String,
    db: Option<Arc<Db>>,
    /// How long a database lease lasts without renewal.
    lease: std::time::Duration,
}

impl Store {
    /// The store of `plan`: `state_dir`, else `.ion-plan/` beside the plan; files are named by
    /// the plan's file stem.
    pub fn for_plan(plan: &Path, state_dir: Option<&Path>) -> Store {
        let dir = state_dir.map_or_else(
            || crate::plan::validate::plan_dir(plan).join(".ion-plan"),
            Path::to_owned,
        );
        Store {
            dir,
            stem: stem_of(plan),
            db: None,
            lease: postgres::DEFAULT_LEASE,
        }
    }

    /// The runs of the plan whose files the folder `dir` names `stem` (`STEM-RUNID.jsonl`).
    pub fn in_folder(dir: &Path, stem: &str) -> Store {
        Store {
            dir: dir.to_owned(),
            stem: stem.to_owned(),
            db: None,
            lease: postgres::DEFAULT_LEASE,
        }
    }

    /// The store of `plan` in the PostgreSQL database at `url`, whose schema must be this
    /// build's; a lease lasts `lease`.
    pub fn in_postgres(
        plan: &Path,
        url: &str,
        lease: std::time::Duration,
    ) -> Result<Store, StoreError> {
        let db = Db::connect(url)?;
        db.check_schema()?;
        Ok(Store::with_db(plan, db, lease))
    }

    /// The store of `plan` in a database already connected: the plan's runs are those of its
    /// `name:` (see [`plan_key`]).
    pub fn with_db(plan: &Path, db: Arc<Db>, lease: std::time::Duration) -> Store {
        Store::with_db_key(&plan_key(plan), db, lease)
    }

    /// The store of the plan keyed `key` in a database already connected.
    pub fn with_db_key(key: &str, db: Arc<Db>, lease: std::time::Duration) -> Store {
        Store {
            dir: PathBuf::from(db.shown()),
            stem: key.to_owned(),
            db: Some(db),
            lease,
        }
    }

    /// The database, for a PostgreSQL store.
    pub fn db(&self) -> Option<&Arc<Db>> {
        self.db.as_ref()
    }

    /// The plan's key: its file stem in a folder, its `name:` in a database.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The state folder; for a database, its URL without password (for messages only).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `run_id`'s view of the plan's inbox; `taken`: the ids its journal recorded.
    pub fn inbox(&self, run_id: &str, taken: std::collections::HashSet<String>) -> Inbox {
        match &self.db {
            Some(db) => Inbox::in_postgres(Arc::clone(db), &self.stem, run_id, taken),
            None => Inbox::new(
                crate::journal::inbox::path(&self.dir, &self.stem),
                run_id,
                taken,
            ),
        }
    }

    /// Leaves a person's request in the plan's inbox.
    pub fn request(&self, entry: &Entry) -> Result<(), StoreError> {
        match &self.db {
            Some(db) => Ok(db.inbox_append(&self.stem, entry)?),
            None => crate::journal::inbox::append(
                &crate::journal::inbox::path(&self.dir, &self.stem),
                entry,
            )
            .map_err(StoreError::write(&self.dir)),
        }
    }

    /// Who holds the plan's runner lock (or lease), if anyone.
    pub fn holder(&self) -> Option<String> {
        match &self.db {
            Some(db) => db.holder(&self.stem).ok().flatten(),
            None => lock::holder(&self.dir, &self.stem),
        }
    }

    /// Takes the plan's runner lock or lease (one runner per plan), after checking the folder.
    pub fn lock(&self) -> Result<Guard, StoreError> {
        if let Some(db) = &self.db {
            return Ok(Guard::Lease(db.lease(&self.stem, self.lease)?));
        }
        self.check()?;
        Ok(Guard::File(lock::acquire(&self.dir, &self.stem)?))
    }

    /// Checks the state folder if it exists (a symlink, another owner, loose permissions are
    /// refused); `Ok(false)` when there is none.
    pub fn check(&self) -> Result<bool, StoreError> {
        if self.db.is_some() {
            return Ok(true);
        }
        if self.dir.symlink_metadata().is_err() {
            return Ok(false);
        }
        crate::journal::dir::check(&self.dir).map_err(StoreError::Unsafe)?;
        Ok(true)
    }

    /// The ids of the plan's runs, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        if let Some(db) = &self.db {
            return db.run_ids(&self.stem).unwrap_or_default();
        }
        let prefix = format!("{}-", self.stem);
        replay::runs(&self.dir, &self.stem)
            .iter()
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?;
                Some(
                    name.strip_prefix(&prefix)?
                        .strip_suffix(".jsonl")?
                        .to_owned(),
                )
            })
            .collect()
    }

    /// The journals of the plan's runs, oldest first (a database's are read by [`Store::replays`]).
    pub fn journals(&self) -> Vec<PathBuf> {
        if self.db.is_some() {
            return Vec::new();
        }
        replay::runs(&self.dir, &self.stem)
    }

    /// Every run of the plan read back, oldest first; a bad journal fails at once.
    pub fn replays(&self, warn: &mut dyn FnMut(String)) -> Result<Vec<Replay>, StoreError> {
        let mut replays = Vec::new();
        if let Some(db) = &self.db {
            for id in db.run_ids(&self.stem)? {
                replays.extend(db.read_run(&self.stem, &id)?);
            }
        } else {
            self.check()?;
            for path in self.journals() {
                replays.push(replay::read(&path)?);
            }
        }
        for replay in &replays {
            if let Some(torn) = &replay.torn {
                warn(torn.clone());
            }
        }
        Ok(replays)
    }

    /// The newest run, if the plan has one (journals without a header are no run: skipped,
    /// and `warn` is told).
    pub fn latest(&self, warn: &mut dyn FnMut(String)) -> Result<Option<StoredRun>, StoreError> {
        if let Some(db) = &self.db {
            let Some(id) = db.run_ids(&self.stem)?.pop() else {
                return Ok(None);
            };
            return Ok(db.read_run(&self.stem, &id)?.map(|replay| {
                let run = replay.state();
                (replay, run)
            }));
        }
        if !self.check()? {
            return Ok(None);
        }
        Ok(replay::latest(&self.dir, &self.stem, warn)?)
    }

    /// The run `id`, if its journal exists.
    pub fn find(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        if let Some(db) = &self.db {
            return Ok(db.read_run(&self.stem, id)?.map(|replay| {
                let run = replay.state();
                (replay, run)
            }));
        }
        if !self.check()? {
            return Ok(None);
        }
        if !self.run_ids().iter().any(|known| known == id) {
            return Ok(None);
        }
        let replay = replay::read(&self.dir.join(format!("{}-{id}.jsonl", self.stem)))?;
        let run = replay.state();
        Ok(Some((replay, run)))
    }

    /// Opens the run [`decide`] picks: the unfinished one taken up (or superseded with
    /// `restart`), a new one, or none (an ended run of the same plan, a changed plan).
    pub fn open(
        &self,
        start: &Start<'_>,
        guard: &Guard,
        say: &mut dyn FnMut(Notice),
    ) -> Result<Opening, StoreError> {
        let latest = self.latest(&mut |w| say(Notice::Warning(w)))?;
        if let Some((replay, run)) = &latest
            && run.unfinished()
            && let Some(warning) = &replay.torn
        {
            say(Notice::Warning(warning.clone()));
        }
        let newest = latest.as_ref().map(|(_, run)| run);
        let decision = decide(newest, start.digest, start.restart, start.resolves_step);
        let opened = match (decision, &latest) {
            (Decision::NothingToResume, _) => return Err(StoreError::NothingToResume),
            (Decision::PlanChanged, Some((replay, run))) => {
                let snapshot = self.snapshot(replay, run);
                return Err(StoreError::PlanChanged(stale_plan(
                    start, replay, run, snapshot,
                )));
            }
            (Decision::LeaveEnded, Some((replay, run))) => {
                // `decide` leaves only an ended run alone: `ended` is set.
                let (outcome, reason) = run.ended.clone().unwrap_or((Outcome::Completed, None));
                return Ok(Opening::Ended {
                    run_id: run.run_id.clone(),
                    at: run.ended_at,
                    outcome,
                    reason,
                    journal: replay.path.clone(),
                });
            }
            (Decision::TakeUp, Some((replay, run))) => self.take_up(replay, run, guard, say)?,
            (Decision::Supersede, Some((replay, run))) => {
                self.supersede(start, replay, run, guard, say)?
            }
            _ => {
                let previous = newest.map(|run| run.run_id.as_str());
                self.create(start, run_id_after(start.now, previous), guard)?
            }
        };
        Ok(Opening::Opened(Box::new(opened)))
    }

    /// Appends to the unfinished run.
    fn take_up(
        &self,
        replay: &Replay,
        run: &RunState,
        guard: &Guard,
        say: &mut dyn FnMut(Notice),
    ) -> Result<Opened, StoreError> {
        let journal = self.append_to(replay, run, guard)?;
        // A journal whose run never started (cut short after its header) starts afresh.
        let resume = run.started.is_some().then(|| run.clone());
        if resume.is_some() {
            say(Notice::Note(format!(
                "resuming run {} ({})",
                run.run_id,
                replay.path.display()
            )));
        }
        Ok(Opened {
            journal,
            run_id: run.run_id.clone(),
            resume,
        })
    }

    /// Marks the unfinished run superseded and starts a new one.
    fn supersede(
        &self,
        start: &Start<'_>,
        replay: &Replay,
        run: &RunState,
        guard: &Guard,
        say: &mut dyn FnMut(Notice),
    ) -> Result<Opened, StoreError> {
        // A new run must not start its steps beside a step of the old one that still runs:
        // wait for it as a resume would (at most until its timeout, then end it).
        for (_, step) in run.interrupted_steps() {
            if let Some(group) = step
                .group
                .as_ref()
                .filter(|g| crate::process::still_runs(g))
            {
                wait_for_old_step(start, run, step, group, say);
            }
        }
        let new_id = run_id_after(start.now, Some(&run.run_id));
        let mut old = self.append_to(replay, run, guard)?;
        old.append(start.now, Event::Superseded { by: new_id.clone() })
            .map_err(StoreError::write(&self.dir))?;
        say(Notice::Note(format!(
            "run {} left unfinished; its journal is kept: {}",
            run.run_id,
            replay.path.display()
        )));
        self.create(start, new_id, guard)
    }

    /// The plan text `run` started from: beside its journal file, or in the database.
    fn snapshot(&self, replay: &Replay, run: &RunState) -> Option<String> {
        if let Some(db) = &self.db {
            return db.plan_text(&run.run_id);
        }
        crate::journal::dir::read_snapshot(&replay.path)
    }

    /// A writer appending to an existing run.
    fn append_to(
        &self,
        replay: &Replay,
        run: &RunState,
        guard: &Guard,
    ) -> Result<Writer, StoreError> {
        match guard {
            Guard::Lease(lease) => Ok(Writer::Postgres(lease.journal(&run.run_id, run.last_seq))),
            Guard::File(_) => Journal::open_append(&replay.path, replay.intact_len, run.last_seq)
                .map(Writer::File)
                .map_err(StoreError::write(&self.dir)),
        }
    }

    /// A new journal, with the plan text it starts from kept beside it.
    fn create(
        &self,
        start: &Start<'_>,
        run_id: String,
        guard: &Guard,
    ) -> Result<Opened, StoreError> {
        let write = StoreError::write(&self.dir);
        let header = Header {
            format: FORMAT_VERSION,
            run_id: run_id.clone(),
            plan: start.plan_path.display().to_string(),
            digest: start.digest.to_owned(),
            created: start.now,
            vars: start.vars.to_vec(),
        };
        if let (Some(db), Guard::Lease(lease)) = (&self.db, guard) {
            db.create_run(lease, &header, &start.plan.name, start.text)?;
            return Ok(Opened {
                journal: Writer::Postgres(lease.journal(&run_id, 0)),
                run_id,
                resume: None,
            });
        }
        crate::journal::dir::ensure(&self.dir).map_err(&write)?;
        // Keep the plan the run starts from: a changed plan is then explained, not just refused.
        // Written first, so that a journal on disk always has its snapshot.
        let name = format!("{}-{run_id}.jsonl", self.stem);
        // The text that was validated and digested, not the file as it may be by now.
        crate::journal::write_private(
            &self.dir.join(&name).with_extension("plan.yaml"),
            start.text.as_bytes(),
        )
        .map_err(&write)?;
        let journal = Journal::create(&self.dir, &name, &header).map_err(&write)?;
        Ok(Opened {
            journal: Writer::File(journal),
            run_id,
            resume: None,
        })
    }
}

/// What the resume rule decides for `run PLAN`, from the plan's newest run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the unfinished run.
    TakeUp,
    /// `--restart`: mark the unfinished run superseded, start a new one.
    Supersede,
    /// The unfinished run started from another plan (or other `--var` values): refused.
    PlanChanged,
    /// The newest run of this very plan has ended: nothing to do.
    LeaveEnded,
    /// `--retry-step` or `--skip-step` without an unfinished run: refused.
    NothingToResume,
    /// Start a new run.
    New,
}

/// The resume rule (`docs/state.md`), apart from where runs are kept: an unfinished run is
/// taken up if its plan is unchanged, superseded with `restart`; an ended run is not started
/// again by accident (a scheduler re-running `--once` after a rollback) — only a changed plan
/// (a new release) or `restart` starts a new one.
pub fn decide(
    newest: Option<&RunState>,
    digest: &str,
    restart: bool,
    resolves_step: bool,
) -> Decision {
    match newest {
        Some(run) if run.unfinished() => {
            if restart {
                Decision::Supersede
            } else if run.digest == digest {
                Decision::TakeUp
            } else {
                Decision::PlanChanged
            }
        }
        _ if resolves_step => Decision::NothingToResume,
        Some(run) if run.ended.is_some() && run.digest == digest && !restart => {
            Decision::LeaveEnded
        }
        _ => Decision::New,
    }
}

/// Waits for an interrupted step's process group that outlived its runner to end: at most until
/// the step's timeout, counted from its recorded start; then ends it.
fn wait_for_old_step(
    start: &Start<'_>,
    run: &RunState,
    step: &StepStatus,
    group: &crate::process::GroupRecord,
    say: &mut dyn FnMut(Notice),
) {
    let plan = start.plan;
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
            start.default_step_timeout,
            crate::plan::units::PlanDuration::as_duration,
        );
    let ran = step
        .started
        .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
        .unwrap_or_default();
    let until = std::time::Instant::now() + timeout.saturating_sub(ran);
    say(Notice::Note(format!(
        "step `{}` of run {} still runs (process group {}, its runner is gone): waiting for it to end before the new run starts",
        step.name, run.run_id, group.pgid
    )));
    while crate::process::still_runs(group) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if crate::process::still_runs(group) {
        crate::process::end_blocking(i32::try_from(group.pgid).unwrap_or(0));
    }
}

/// Why a run cannot resume on a changed plan, and what changed.
/// `snapshot`: the plan text the run started from, if it was kept.
fn stale_plan(
    start: &Start<'_>,
    replay: &Replay,
    run: &RunState,
    snapshot: Option<String>,
) -> String {
    use crate::plan::validate::{Checks, validate_source_with};
    let snapshot_path = replay.path.with_extension("plan.yaml");
    let changes = snapshot
        .and_then(|text| {
            validate_source_with(
                crate::plan::load::Source::new(&snapshot_path, text),
                Checks { filesystem: false },
                &replay.header.vars,
            )
            .plan
        })
        .map_or_else(
            || vec!["(the plan the run started from was not kept)".to_owned()],
            |old| crate::plan::diff::summarize(&old, start.plan),
        );
    format!(
        "the plan changed since run {} started, so it cannot resume:\n{}\nrestore the plan, or start a new run with `ion-plan run {} --restart`",
        run.run_id,
        changes
            .iter()
            .map(|c| format!("  - {c}"))
            .collect::<Vec<_>>()
            .join("\n"),
        start.plan_path.display()
    )
}

/// `sha256:HEX` of a plan's text and its `--var` overrides (in order): what a run records to
/// notice a changed plan. The same plan run with another `--var` value is another release.
pub fn digest(text: &str, vars: &[(String, String)]) -> String {
    use sha2::{Digest as _, Sha256};
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

/// A plan's key in a shared database: its `name:`, so that one rollout is one rollout whatever
/// its file is called or wherever it is checked out, and two plans that share a file name in
/// two folders are not mixed up (a folder store keeps them apart by its folder). A plan whose
/// name cannot be read (an abort must still work on a broken plan) falls back to its file stem.
pub fn plan_key(plan: &Path) -> String {
    std::fs::File::open(plan)
        .ok()
        .and_then(crate::journal::dir::read_plan_text)
        .and_then(|text| plan_name(&text))
        .unwrap_or_else(|| stem_of(plan))
}

/// The `name:` of a plan text, if it has one.
pub fn plan_name(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    serde_saphyr::from_str::<Named>(text)
        .ok()?
        .name
        .filter(|n| !n.trim().is_empty())
}

/// A plan's key in a folder store: its file stem.
fn stem_of(plan: &Path) -> String {
    plan.file_stem()
        .map_or_else(|| "plan".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// A run id: its start to the millisecond, then a salt. Journals sort by it, so the newest run
/// is the last one.
pub fn run_id(now: DateTime<Utc>) -> String {
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
    // Ids carry milliseconds: compare at that precision, or a run started in the same
    // millisecond as `previous` could sort before it (by its salt).
    let now = chrono::SubsecRound::trunc_subsecs(now, 3);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_id_sorts_after_a_newer_previous_one() {
        let now = DateTime::parse_from_rfc3339("2025-10-22T14:00:00.500Z")
            .unwrap()
            .to_utc();
        let ahead = run_id(now + chrono::Duration::seconds(5));
        let next = run_id_after(now, Some(&ahead));
        assert!(next > ahead, "{next} sorts after {ahead}");
        assert!(replay::is_run_id(&next));
    }

    #[test]
    fn the_state_folder_is_beside_the_plan_unless_named() {
        let store = Store::for_plan(Path::new("deploy/web.yaml"), None);
        assert_eq!(store.dir(), Path::new("deploy/.ion-plan"));
        assert_eq!(store.stem(), "web");
        let store = Store::for_plan(Path::new("web.yaml"), Some(Path::new("/s")));
        assert_eq!(store.dir(), Path::new("/s"));
    }

    /// A one-stage plan, its text and its digest.
    fn plan() -> (Plan, String) {
        let text = "version: 1\nname: x\nstages:\n  - name: all\n    traffic: 100\n    bake: 0s\n";
        let report = crate::plan::validate::validate_source(
            crate::plan::load::Source::new("web.yaml", text.to_owned()),
            crate::plan::validate::Checks { filesystem: false },
        );
        (report.plan.expect("a valid plan"), text.to_owned())
    }

    fn start<'a>(plan: &'a Plan, text: &'a str, digest: &'a str) -> Start<'a> {
        Start {
            plan,
            plan_path: Path::new("web.yaml"),
            digest,
            text,
            vars: &[],
            restart: false,
            resolves_step: false,
            default_step_timeout: std::time::Duration::from_secs(1),
            now: Utc::now(),
        }
    }

    fn open(store: &Store, start: &Start<'_>) -> (Result<Opening, StoreError>, Vec<String>) {
        let mut said = Vec::new();
        let opening = store
            .lock()
            .and_then(|guard| store.open(start, &guard, &mut |n| said.push(n.to_string())));
        (opening, said)
    }

    fn opened(opening: Result<Opening, StoreError>) -> Opened {
        match opening {
            Ok(Opening::Opened(opened)) => *opened,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_resume_rule_takes_up_refuses_or_starts_anew() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::for_plan(Path::new("web.yaml"), Some(&tmp.path().join("state")));
        let (plan, text) = plan();
        let digest = digest(&text, &[]);
        let request = start(&plan, &text, &digest);
        // Nothing else to do without an unfinished run: `--retry-step` is refused.
        let resolving = Start {
            resolves_step: true,
            ..request.clone()
        };
        assert!(matches!(
            open(&store, &resolving).0,
            Err(StoreError::NothingToResume)
        ));

        let mut first = opened(open(&store, &request).0);
        assert!(first.resume.is_none());
        let started = Event::RunStarted {
            run_id: first.run_id.clone(),
            plan: "web.yaml".into(),
            digest: digest.clone(),
            mode: crate::event::Mode::Live,
            stages: 1,
        };
        first.journal.append(Utc::now(), started).unwrap();
        drop(first.journal);
        assert_eq!(store.run_ids(), vec![first.run_id.clone()]);

        // The same plan takes the unfinished run up; another plan is refused.
        let (again, said) = open(&store, &request);
        let again = opened(again);
        assert_eq!(again.run_id, first.run_id);
        assert!(again.resume.is_some());
        assert!(said[0].starts_with("resuming run "), "{said:?}");
        let mut journal = again.journal;
        let changed = digest_of_other_plan();
        match open(&store, &start(&plan, &text, &changed)).0 {
            Err(StoreError::PlanChanged(message)) => {
                assert!(message.contains("cannot resume"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        // An ended run is left alone unless `--restart`.
        let ended = Event::RunEnded {
            outcome: Outcome::RolledBack,
            reason: None,
        };
        journal.append(Utc::now(), ended).unwrap();
        drop(journal);
        match open(&store, &request).0 {
            Ok(Opening::Ended {
                run_id, outcome, ..
            }) => {
                assert_eq!(run_id, first.run_id);
                assert_eq!(outcome, Outcome::RolledBack);
            }
            other => panic!("{other:?}"),
        }
        let restart = Start {
            restart: true,
            ..request.clone()
        };
        let second = opened(open(&store, &restart).0);
        assert!(second.run_id > first.run_id);
        assert!(store.find(&second.run_id).unwrap().is_some());
        assert!(store.find("20250101T000000000Z-0000").unwrap().is_none());
    }

    fn digest_of_other_plan() -> String {
        digest("another plan", &[])
    }

    #[test]
    fn the_resume_rule_by_the_newest_run() {
        let unfinished = RunState {
            digest: "a".into(),
            ..RunState::default()
        };
        let ended = RunState {
            ended: Some((Outcome::RolledBack, None)),
            ..unfinished.clone()
        };
        let superseded = RunState {
            superseded: true,
            ..unfinished.clone()
        };
        let cases = [
            (None, "a", false, false, Decision::New),
            (None, "a", false, true, Decision::NothingToResume),
            (Some(&unfinished), "a", false, false, Decision::TakeUp),
            (Some(&unfinished), "a", false, true, Decision::TakeUp),
            (Some(&unfinished), "b", false, false, Decision::PlanChanged),
            (Some(&unfinished), "b", true, false, Decision::Supersede),
            (Some(&ended), "a", false, false, Decision::LeaveEnded),
            (Some(&ended), "a", true, false, Decision::New),
            (Some(&ended), "b", false, false, Decision::New),
            (Some(&ended), "a", false, true, Decision::NothingToResume),
            (Some(&superseded), "a", false, false, Decision::New),
        ];
        for (newest, digest, restart, resolves, expected) in cases {
            assert_eq!(
                decide(newest, digest, restart, resolves),
                expected,
                "{newest:?} {digest} restart={restart} resolves={resolves}"
            );
        }
    }

    #[test]
    fn overrides_change_the_digest() {
        let plain = digest("plan", &[]);
        let with = digest("plan", &[("image".into(), "v2".into())]);
        assert!(plain.starts_with("sha256:") && plain.len() == 7 + 64);
        assert_ne!(plain, with);
    }
}
