//! One runner per plan: an OS file lock on `.ion-plan/PLAN.lock`, which also names its holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::journal::dir;

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub since: chrono::DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid,
            self.host,
            self.since.format("%Y-%m-%d %H:%M:%SZ")
        )
    }
}

/// The lock, held while this value lives (the OS releases it if the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
    identity: dir::Identity,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file's identity: a runner checks that its path still names this file.
    pub fn identity(&self) -> dir::Identity {
        self.identity
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another runner is running this plan: {0}")]
    Held(String),
    #[error("cannot lock `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// This machine's name, for a lock's or a lease's holder.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// The lock file of a plan.
pub fn path(state: &Path, stem: &str) -> PathBuf {
    state.join(format!("{stem}.lock"))
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(4096).read_to_string(&mut text);
    serde_json::from_str::<Holder>(&text).map_or_else(
        |_| "a process that has not said who it is".to_owned(),
        |h| h.to_string(),
    )
}

/// Takes the plan's lock, or says who holds it.
pub fn acquire(state: &Path, stem: &str) -> Result<RunLock, LockError> {
    let path = path(state, stem);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    dir::ensure(state).map_err(io)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    dir::private(&mut options);
    // Whoever deletes the file between our open and our lock would leave us holding a lock on
    // a file nobody else sees: lock, then check the path still names the file we locked.
    let (mut file, identity) = loop {
        let mut file = dir::open(&options, &path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held(read_holder(&mut file)));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let identity = dir::Identity::of_file(&file).map_err(io)?;
        if dir::Identity::at(&path) == Some(identity) {
            break (file, identity);
        }
    };
    let holder = Holder {
        pid: std::process::id(),
        host: host(),
        since: Utc::now(),
    };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(
        &serde_json::to_vec(&holder)
            .map_err(std::io::Error::other)
            .map_err(io)?,
    )
    .and_then(|()| file.sync_data())
    .map_err(io)?;
    Ok(RunLock {
        _file: file,
        path,
        identity,
    })
}

/// Who runs the plan now, if anyone: the holder of its lock. Changes nothing (a missing lock
/// file is not created).
pub fn holder(state: &Path, stem: &str) -> Option<String> {
    let mut file = dir::open_read(&path(state, stem)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(read_holder(&mut file)),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}
