//! One runner per plan: an OS file lock on `.ion-plan/PLAN.lock`, which also names its holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use chrono::Utc;
use serde::{Deserialize, Serialize};

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

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// Takes the plan's lock, or says who holds it.
pub fn acquire(state: &Path, stem: &str) -> Result<RunLock, LockError> {
    let path = state.join(format!("{stem}.lock"));
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    crate::journal::create_private_dir(state).map_err(io)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str::<Holder>(&text).map_or_else(
                |_| "a process that has not said who it is".to_owned(),
                |h| h.to_string(),
            );
            return Err(LockError::Held(holder));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
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
    Ok(RunLock { _file: file })
}
