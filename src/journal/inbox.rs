//! Decisions from other processes: `ion-plan approve` and `ion-plan abort` append a request to
//! the plan's inbox; the runner takes each one once (it journals the request's id), within a
//! second while it runs, or at the next `run --once`.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::Control;

/// What a person asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Approve { stage: Option<String> },
    Abort { reason: String },
}

/// One line of the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub by: String,
    pub request: Request,
}

impl Entry {
    pub fn control(&self) -> Control {
        match &self.request {
            Request::Approve { stage } => Control::Approve {
                by: self.by.clone(),
                stage: stage.clone(),
                request: Some(self.id.clone()),
            },
            Request::Abort { reason } => Control::Abort {
                by: self.by.clone(),
                reason: reason.clone(),
                request: Some(self.id.clone()),
            },
        }
    }
}

/// The inbox file of a plan.
pub fn path(state: &Path, stem: &str) -> PathBuf {
    state.join(format!("{stem}.inbox.jsonl"))
}

/// Appends a request (0600, fsync'd).
pub fn append(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::journal::create_private_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()
}

/// Every complete request in the inbox (a torn last line is left for later).
pub fn read(path: &Path) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| serde_json::from_str(line.trim_end()).ok())
        .collect()
}

/// Reads an inbox, handing out each request once.
#[derive(Debug, Clone)]
pub struct Inbox {
    path: PathBuf,
    taken: HashSet<String>,
}

impl Inbox {
    /// `taken`: the ids the journal already recorded.
    pub fn new(path: PathBuf, taken: HashSet<String>) -> Inbox {
        Inbox { path, taken }
    }

    /// The oldest request not taken yet.
    pub fn take(&mut self) -> Option<Entry> {
        let entry = read(&self.path)
            .into_iter()
            .find(|e| !self.taken.contains(&e.id))?;
        self.taken.insert(entry.id.clone());
        Some(entry)
    }

    /// Requests not taken yet, without taking them (for `status`).
    pub fn pending(&self) -> Vec<Entry> {
        read(&self.path)
            .into_iter()
            .filter(|e| !self.taken.contains(&e.id))
            .collect()
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

    #[test]
    fn each_request_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "plan");
        for (id, request) in [
            ("a", Request::Approve { stage: None }),
            ("b", Request::Abort { reason: "x".into() }),
        ] {
            append(
                &path,
                &Entry {
                    id: id.into(),
                    at: Utc::now(),
                    by: "me".into(),
                    request,
                },
            )
            .unwrap();
        }
        let mut inbox = Inbox::new(path.clone(), HashSet::from(["a".to_owned()]));
        assert_eq!(inbox.take().unwrap().id, "b");
        assert!(inbox.take().is_none());
        // A torn line is not read until it is complete.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\":")
            .unwrap();
        assert_eq!(read(&path).len(), 2);
    }
}
