//! Decisions from other processes: `ion-plan approve` and `ion-plan abort` append a request to
//! the plan's inbox; the runner takes each one once (it journals the request's id), within a
//! second while it runs, or at the next `run --once`.
//!
//! A request belongs to one run: it records the run's id, and a runner takes only its own run's
//! requests. An abort is taken before anything else; an approval only by the stage it names
//! (the stage waiting when it was given, or the stage of an `--ahead` pre-approval) when that
//! stage waits for it.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{BakeFor, WaitFor};
use crate::journal::dir;

/// What a person asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Approve {
        stage: Option<String>,
        /// Given before the stage asked (`approve --stage S --ahead`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ahead: bool,
        /// The wait it answers: the journal sequence number of the event that opened it
        /// (`approval_requested` or `paused`). A later wait does not take it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<u64>,
    },
    Abort {
        reason: String,
    },
    /// End the stage's bake now (`ion-plan promote`).
    Promote {
        stage: String,
        reason: String,
        /// The bake it ends: the journal sequence number of the stage's `stage_started`, or of
        /// its newest `paused` (a pause voids promotions given before it).
        bake: u64,
    },
}

/// One line of the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// The run the request is for. Requests written before runs were named carry none and are
    /// taken by no run.
    #[serde(default)]
    pub run_id: String,
    pub at: DateTime<Utc>,
    pub by: String,
    pub request: Request,
}

impl Entry {
    pub fn is_abort(&self) -> bool {
        matches!(self.request, Request::Abort { .. })
    }

    /// Whether this is an approval that `wait` may take: given for that very wait, or (for a
    /// stage's approval, not a pause) ahead of time for its stage.
    pub fn approves(&self, wait: WaitFor<'_>) -> bool {
        match &self.request {
            Request::Approve {
                stage: named,
                ahead,
                wait: answered,
            } => {
                named.as_deref().is_none_or(|n| n == wait.stage)
                    && match answered {
                        Some(seq) => *seq == wait.seq,
                        None => *ahead && !wait.paused,
                    }
            }
            Request::Abort { .. } | Request::Promote { .. } => false,
        }
    }

    /// Whether this is a promotion of the bake `bake`.
    pub fn promotes(&self, bake: BakeFor<'_>) -> bool {
        matches!(&self.request, Request::Promote { stage, bake: seq, .. }
            if stage == bake.stage && *seq == bake.seq)
    }
}

/// The inbox file of a plan.
pub fn path(state: &Path, stem: &str) -> PathBuf {
    state.join(format!("{stem}.inbox.jsonl"))
}

/// The most of an inbox that is read: requests are a few hundred bytes each.
const MAX_INBOX: u64 = 16 * 1024 * 1024;

/// Appends a request (0600, fsync'd), in a checked state folder, never through a symlink.
pub fn append(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(folder) = path.parent() {
        dir::ensure(folder)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    dir::private(&mut options);
    let mut file = dir::open(&options, path)?;
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // A runner reads the first `MAX_INBOX` bytes: a request that would end past them would be
    // acknowledged and never taken.
    if file.metadata()?.len() + line.len() as u64 > MAX_INBOX {
        return Err(std::io::Error::other(format!(
            "the inbox `{}` is full ({} MiB): the request was not recorded; move the inbox aside (its requests of ended runs are history) and try again",
            path.display(),
            MAX_INBOX >> 20
        )));
    }
    file.write_all(&line)?;
    file.sync_data()
}

/// Every complete request in the inbox (a torn last line is left for later). An inbox that
/// cannot be read (missing, a symlink) holds nothing.
pub fn read(path: &Path) -> Vec<Entry> {
    let mut bytes = Vec::new();
    if dir::open_read(path)
        .and_then(|f| f.take(MAX_INBOX).read_to_end(&mut bytes))
        .is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| serde_json::from_str(line.trim_end()).ok())
        .collect()
}

/// Where an inbox is kept.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    /// The database and the plan's key.
    Postgres(std::sync::Arc<crate::journal::postgres::Db>, String),
}

/// A run's view of its plan's inbox, handing out each of its requests once.
#[derive(Debug, Clone)]
pub struct Inbox {
    source: Source,
    run: String,
    taken: HashSet<String>,
}

impl Inbox {
    /// The inbox of run `run`; `taken`: the ids its journal already recorded.
    pub fn new(path: PathBuf, run: &str, taken: HashSet<String>) -> Inbox {
        Inbox {
            source: Source::File(path),
            run: run.to_owned(),
            taken,
        }
    }

    /// The inbox of run `run` of plan `plan` in a PostgreSQL store.
    pub fn in_postgres(
        db: std::sync::Arc<crate::journal::postgres::Db>,
        plan: &str,
        run: &str,
        taken: HashSet<String>,
    ) -> Inbox {
        Inbox {
            source: Source::Postgres(db, plan.to_owned()),
            run: run.to_owned(),
            taken,
        }
    }

    /// This run's requests not taken yet, oldest first. A database out of reach has none for
    /// now: they are taken once it answers again.
    pub fn pending(&self) -> Vec<Entry> {
        let all = match &self.source {
            Source::File(path) => read(path),
            Source::Postgres(db, plan) => db.inbox_read(plan, &self.run).unwrap_or_default(),
        };
        all.into_iter()
            .filter(|e| e.run_id == self.run && !self.taken.contains(&e.id))
            .collect()
    }

    /// Takes the oldest waiting abort, else (when something waits for a person) the oldest
    /// approval that answers that wait, else (while a stage bakes) the oldest promotion of that
    /// bake. Anything else stays in the inbox.
    pub fn take(
        &mut self,
        waiting: Option<WaitFor<'_>>,
        baking: Option<BakeFor<'_>>,
    ) -> Option<Entry> {
        let pending = self.pending();
        let entry = pending
            .iter()
            .find(|e| e.is_abort())
            .or_else(|| waiting.and_then(|wait| pending.iter().find(|e| e.approves(wait))))
            .or_else(|| baking.and_then(|bake| pending.iter().find(|e| e.promotes(bake))))?
            .clone();
        self.taken.insert(entry.id.clone());
        Some(entry)
    }
}

/// A request id: the time and the process, unique enough for one plan's inbox.
pub fn new_id(now: DateTime<Utc>) -> String {
    format!(
        "{}-{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id(),
        now.timestamp_subsec_nanos() & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, run: &str, request: Request) -> Entry {
        Entry {
            id: id.into(),
            run_id: run.into(),
            at: Utc::now(),
            by: "me".into(),
            request,
        }
    }

    fn approve(stage: Option<&str>, wait: u64) -> Request {
        Request::Approve {
            stage: stage.map(str::to_owned),
            ahead: false,
            wait: Some(wait),
        }
    }

    fn wait(stage: &str, seq: u64) -> WaitFor<'_> {
        WaitFor {
            stage,
            paused: false,
            seq,
        }
    }

    #[test]
    fn each_request_is_taken_once_and_only_by_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(&dir.path().join(".ion-plan"), "plan");
        for e in [
            entry("a", "r1", approve(None, 1)),
            entry("b", "r1", Request::Abort { reason: "x".into() }),
            entry(
                "c",
                "r0",
                Request::Abort {
                    reason: "old".into(),
                },
            ),
        ] {
            append(&path, &e).unwrap();
        }
        let mut inbox = Inbox::new(path.clone(), "r1", HashSet::from(["a".to_owned()]));
        assert_eq!(inbox.take(Some(wait("s", 1)), None).unwrap().id, "b");
        assert!(inbox.take(Some(wait("s", 1)), None).is_none());
        // Another run sees none of run r1's requests, and r1 none of r0's.
        let mut other = Inbox::new(path.clone(), "r2", HashSet::new());
        assert!(other.take(Some(wait("s", 1)), None).is_none());
        assert!(other.pending().is_empty());
        // A torn line is not read until it is complete.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\":")
            .unwrap();
        assert_eq!(read(&path).len(), 3);
    }

    #[test]
    fn an_abort_comes_first_and_approvals_wait_for_their_stage() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "plan");
        for e in [
            entry("1", "r", approve(Some("canary-10"), 9)),
            entry("2", "r", approve(Some("canary-5"), 4)),
            entry("4", "r", approve(Some("canary-5"), 2)),
            entry("3", "r", Request::Abort { reason: "x".into() }),
        ] {
            append(&path, &e).unwrap();
        }
        let mut inbox = Inbox::new(path, "r", HashSet::new());
        assert_eq!(inbox.take(None, None).unwrap().id, "3");
        assert!(
            inbox.take(None, None).is_none(),
            "no stage waits: no approval"
        );
        assert_eq!(inbox.take(Some(wait("canary-5", 4)), None).unwrap().id, "2");
        // An approval of an earlier wait (seq 2) is not taken by this one.
        assert!(inbox.take(Some(wait("canary-5", 4)), None).is_none());
        assert_eq!(inbox.pending().len(), 2);
        assert_eq!(
            inbox.take(Some(wait("canary-10", 9)), None).unwrap().id,
            "1"
        );
    }
}
