//! The journal: every event of a run, appended as JSON Lines and made durable (fsync) before the
//! effect it announces. The first line is a versioned header.

pub mod dir;
pub mod inbox;
pub mod lock;
pub mod postgres;
pub mod replay;
pub mod store;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, FORMAT_VERSION, Record};

/// The first line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub run_id: String,
    /// The plan's path as given to `run`.
    pub plan: String,
    /// `sha256:` of the plan file the run started from (and its `--var` overrides).
    pub digest: String,
    pub created: DateTime<Utc>,
    /// The `--var NAME=VALUE` overrides the run started with, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<(String, String)>,
}

/// An open journal, appending. It holds an exclusive lock on its file, so no second runner can
/// append to the same run, whatever happens to the plan's lock file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    /// What the journal's path named when it was opened: checked before every append.
    identity: dir::Identity,
    /// The plan's lock file and its identity, checked before every append when set.
    lock: Option<(PathBuf, dir::Identity)>,
}

/// The runner lost what made it the only one (its lock file or its journal was removed or
/// replaced): it must stop before its next effect.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stolen(pub String);

/// The longest line the journal writes or reads: a sample is a few hundred bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// Writes a new file beside the journals, readable by its owner only (0600), as journals are.
/// Fails if the file exists (a symlink there included: nothing is followed).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    dir::private(&mut options);
    dir::open(&options, path)?.write_all(bytes)
}

impl Journal {
    /// Creates `dir` (0700) if needed and a new journal file in it (0600) holding the header.
    /// The header is written to a temporary file first and moved into place, so a journal on
    /// disk always has its header, even when the disk fills up while writing it.
    pub fn create(dir: &Path, file_name: &str, header: &Header) -> std::io::Result<Journal> {
        dir::ensure(dir)?;
        let path = dir.join(file_name);
        let temporary = dir.join(format!(".{file_name}.new"));
        debug_assert_eq!(header.format, FORMAT_VERSION);
        let mut line = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        dir::private(&mut options);
        let written = dir::open(&options, &temporary).and_then(|mut file| {
            file.write_all(&line)?;
            file.sync_all()?;
            if path.symlink_metadata().is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("`{}` exists already", path.display()),
                ));
            }
            std::fs::rename(&temporary, &path)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written?;
        // The new name is durable once the folder is.
        if let Ok(folder) = File::open(dir) {
            let _ = folder.sync_all();
        }
        Journal::open_append(&path, line.len() as u64, 0)
    }

    /// Opens a journal to append to it, cutting a torn last line back to `intact_len` bytes.
    /// Fails with `WouldBlock` when another runner appends to it.
    pub fn open_append(path: &Path, intact_len: u64, last_seq: u64) -> std::io::Result<Journal> {
        let mut options = OpenOptions::new();
        options.append(true);
        dir::no_follow(&mut options);
        let file = dir::open(&options, path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "another runner is writing to `{}` (its journal is locked): one runner per run",
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if file.metadata()?.len() > intact_len {
            file.set_len(intact_len)?;
            file.sync_data()?;
        }
        Ok(Journal {
            identity: dir::Identity::of_file(&file)?,
            file,
            path: path.to_owned(),
            seq: last_seq,
            lock: None,
        })
    }

    /// Checks before every append that the plan's lock file is still the one `lock` holds.
    pub fn guard_with(&mut self, lock: &lock::RunLock) {
        self.lock = Some((lock.path().to_owned(), lock.identity()));
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event and waits until it is on disk.
    pub fn append(&mut self, at: DateTime<Utc>, event: Event) -> std::io::Result<Record> {
        let record = Record {
            seq: self.seq + 1,
            at,
            event,
        };
        self.write_record(&record)?;
        Ok(record)
    }

    /// Appends a record made elsewhere (the engine numbers its events).
    pub fn write_record(&mut self, record: &Record) -> std::io::Result<()> {
        let line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other(format!(
                "journal line of {} bytes is over the {MAX_LINE}-byte limit",
                line.len()
            )));
        }
        self.still_ours()?;
        self.write_line(&line)?;
        self.seq = record.seq;
        Ok(())
    }

    /// Whether the journal and the lock this runner holds are still the files on disk: someone
    /// who deletes or replaces them could start a second runner on the same run.
    fn still_ours(&self) -> std::io::Result<()> {
        if dir::Identity::at(&self.path) != Some(self.identity) {
            return Err(std::io::Error::other(Stolen(format!(
                "the journal `{}` was removed or replaced while this runner wrote it; stopping before the next effect",
                self.path.display()
            ))));
        }
        if let Some((path, identity)) = &self.lock
            && dir::Identity::at(path) != Some(*identity)
        {
            return Err(std::io::Error::other(Stolen(format!(
                "the lock file `{}` was removed or replaced while this runner held it, so another runner may have started; stopping before the next effect",
                path.display()
            ))));
        }
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        // One write per line, so a crash tears at most the last line.
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line);
        buffer.push(b'\n');
        self.file.write_all(&buffer)?;
        self.file.sync_data()
    }
}

/// A run's journal open for appending: a file, or rows in the PostgreSQL store.
#[derive(Debug)]
pub enum Writer {
    File(Journal),
    Postgres(postgres::PgJournal),
}

impl Writer {
    /// Where the journal is: its file, or the database and the run (for messages).
    pub fn path(&self) -> PathBuf {
        match self {
            Writer::File(journal) => journal.path().to_owned(),
            Writer::Postgres(journal) => journal.location(),
        }
    }

    /// A file journal checks before every append that the plan's lock file is still `lock`'s;
    /// a database journal is fenced by its lease instead.
    pub fn guard_with(&mut self, guard: &store::Guard) {
        if let (Writer::File(journal), store::Guard::File(lock)) = (self, guard) {
            journal.guard_with(lock);
        }
    }

    /// For a runner stopped by a signal: a database journal lets its lease go at once (the lock
    /// file of a file journal goes with the process).
    pub fn release(&self) {
        if let Writer::Postgres(journal) = self {
            journal.release();
        }
    }

    /// Appends an event once it is durable.
    pub fn append(&mut self, at: DateTime<Utc>, event: Event) -> std::io::Result<Record> {
        match self {
            Writer::File(journal) => journal.append(at, event),
            Writer::Postgres(journal) => {
                let record = Record {
                    seq: journal.seq() + 1,
                    at,
                    event,
                };
                journal.write_record(&record)?;
                Ok(record)
            }
        }
    }

    /// Appends a record made elsewhere (the engine numbers its events).
    pub fn write_record(&mut self, record: &Record) -> std::io::Result<()> {
        match self {
            Writer::File(journal) => journal.write_record(record),
            Writer::Postgres(journal) => journal.write_record(record),
        }
    }
}

/// The journal as the engine's sink, shared with the signal handler (which waits for the write
/// in flight before the process exits).
#[derive(Debug, Clone)]
pub struct SharedJournal(pub std::sync::Arc<std::sync::Mutex<Writer>>);

/// Fault injection for the crash tests: with `ION_PLAN_CRASH_AFTER_EVENT=N` the process aborts
/// right after event N is on disk, before the effect that follows it. Read once; only in debug
/// builds (the tests'), never in a release binary.
fn crash_after() -> Option<u64> {
    static AFTER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    if !cfg!(debug_assertions) {
        return None;
    }
    *AFTER.get_or_init(|| {
        std::env::var("ION_PLAN_CRASH_AFTER_EVENT")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

impl crate::event::Sink for SharedJournal {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let mut journal = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        journal.write_record(record)?;
        if crash_after() == Some(record.seq) {
            std::process::abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_lines_after_a_header_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".ion-plan");
        let header = Header {
            format: FORMAT_VERSION,
            run_id: "r1".into(),
            plan: "plan.yaml".into(),
            digest: "sha256:00".into(),
            created: Utc::now(),
            vars: Vec::new(),
        };
        let mut journal = Journal::create(&state, "plan-r1.jsonl", &header).unwrap();
        let record = journal
            .append(Utc::now(), Event::StageCompleted { stage: "a".into() })
            .unwrap();
        assert_eq!(record.seq, 1);
        let text = std::fs::read_to_string(journal.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let read: Header = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(read, header);
        let back: Record = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back, record);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&state), 0o700);
            assert_eq!(mode(journal.path()), 0o600);
        }
    }
}
