//! Reading a journal back: the header, then every record. A torn last line (a crash mid-write)
//! is dropped with a warning; a bad line anywhere else is an error that names it.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::event::{FORMAT_VERSION, Record};
use crate::journal::{Header, MAX_LINE};

/// A journal as read from disk.
#[derive(Debug, Clone)]
pub struct Replay {
    pub path: PathBuf,
    pub header: Header,
    pub records: Vec<Record>,
    /// Set when a torn last line was dropped: what to tell the operator.
    pub torn: Option<String>,
    /// The byte length of the intact part (the file is cut back to it before appending).
    pub intact_len: u64,
}

impl Replay {
    /// The run's state: its records folded.
    pub fn state(&self) -> crate::event::state::RunState {
        crate::event::state::RunState::fold(
            &self.header.run_id,
            &self.header.plan,
            &self.header.digest,
            &self.records,
        )
    }
}

/// A journal that cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReplayError {
    #[error("failed to read journal `{}`", path.display())]
    #[diagnostic(code(journal::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No complete header line: a run whose start was cut short (a full disk, a crash before
    /// the header was written). It is no run.
    #[error("journal `{}` has no header: the start of its run was cut short", path.display())]
    #[diagnostic(code(journal::empty))]
    Empty { path: PathBuf },
    #[error("journal `{}` line {line}: {reason}", path.display())]
    #[diagnostic(
        code(journal::corrupt),
        help(
            "the journal is append-only and written record by record; a damaged record in the middle means it was edited or its storage is failing. Keep it for the record (a file: move it aside) and start a new run with `--restart`."
        )
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads and checks a whole journal.
pub fn read(path: &Path) -> Result<Replay, ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.to_owned(),
        source,
    };
    let file = crate::journal::dir::open_read(path).map_err(io)?;
    parse(path, &read_lines(path, file)?)
}

/// A journal's bytes, read until a line runs past [`MAX_LINE`]: a file that is no journal (a
/// gigabyte without a newline) is refused after a megabyte, not read into memory whole.
fn read_lines(path: &Path, mut file: std::fs::File) -> Result<Vec<u8>, ReplayError> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    // Bytes since the last newline: the line still open.
    let mut open = 0;
    loop {
        let read = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ReplayError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let chunk = &chunk[..read];
        let first = chunk.iter().position(|b| *b == b'\n');
        let longest = first.map_or(open + read, |first| open + first);
        if longest > MAX_LINE {
            return Err(ReplayError::Corrupt {
                path: path.to_owned(),
                // The open line, after every whole one read so far.
                line: bytes.split(|b| *b == b'\n').count(),
                reason: format!("line of more than {MAX_LINE} bytes is too long"),
            });
        }
        open = chunk
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(open + read, |last| read - last - 1);
        bytes.extend_from_slice(chunk);
    }
    Ok(bytes)
}

/// Reads a journal a person named on the command line (`backtest JOURNAL`), read and never
/// written: a symbolic link is followed (`latest.jsonl`), but anything that is not a regular
/// file at its end — a FIFO that would block, `/dev/zero` that never ends, a folder — is refused
/// without waiting on it.
pub fn read_named(path: &Path) -> Result<Replay, ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; a journal is one",
        )));
    }
    parse(path, &read_lines(path, file)?)
}

/// Parses journal bytes (for `read` and tests).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Replay, ReplayError> {
    let corrupt = |line: usize, reason: String| ReplayError::Corrupt {
        path: path.to_owned(),
        line,
        reason,
    };
    let complete = bytes.last() == Some(&b'\n');
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty piece after the final newline.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut torn = None;
    if !complete && !lines.is_empty() {
        let last = lines.pop().expect("non-empty");
        torn = Some(format!(
            "dropped a torn last line ({} bytes) of `{}`: the previous run stopped while writing it",
            last.len(),
            path.display()
        ));
    }
    let intact_len = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let Some((first, rest)) = lines.split_first() else {
        return Err(ReplayError::Empty {
            path: path.to_owned(),
        });
    };
    let header: Header = serde_json::from_slice(first)
        .map_err(|e| corrupt(1, format!("not a journal header: {e}")))?;
    if header.format != FORMAT_VERSION {
        return Err(corrupt(
            1,
            format!(
                "journal format {} is not the supported format {FORMAT_VERSION}",
                header.format
            ),
        ));
    }
    let mut records = Vec::with_capacity(rest.len());
    for (i, line) in rest.iter().enumerate() {
        let number = i + 2;
        if line.len() > MAX_LINE {
            return Err(corrupt(
                number,
                format!("line of {} bytes is too long", line.len()),
            ));
        }
        let record: Record = serde_json::from_slice(line)
            .map_err(|e| corrupt(number, format!("not a journal record: {e}")))?;
        let expected = records.len() as u64 + 1;
        if record.seq != expected {
            return Err(corrupt(
                number,
                format!("record number {} where {expected} was expected", record.seq),
            ));
        }
        records.push(record);
    }
    Ok(Replay {
        path: path.to_owned(),
        header,
        records,
        torn,
        intact_len,
    })
}

impl ReplayError {
    /// The message with its cause (why the file could not be read), on one line: for the
    /// commands that print `error: MESSAGE` and nothing of the error's source.
    pub fn with_cause(&self) -> String {
        match self {
            ReplayError::Io { source, .. } => format!("{self}: {source}"),
            _ => self.to_string(),
        }
    }

    /// Whether the file is no run at all (no header), rather than a damaged one.
    pub fn is_no_run(&self) -> bool {
        // Only a missing header: a header of another format, or a damaged one, is a run this
        // version cannot read, never a run to start over.
        matches!(self, ReplayError::Empty { .. })
    }
}

/// The journals of a plan in a state folder, oldest first (run ids start with their time).
pub fn runs(state: &Path, stem: &str) -> Vec<PathBuf> {
    let prefix = format!("{stem}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            // Exactly `STEM-RUNID.jsonl`: not `STEM-2-RUNID.jsonl`, another plan's.
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".jsonl"))
                    .is_some_and(is_run_id)
            })
        })
        .collect();
    found.sort();
    found
}

/// Whether `text` has the shape of a run id: `YYYYMMDDTHHMMSS[mmm]Z-xxxx` (hex salt).
pub fn is_run_id(text: &str) -> bool {
    let Some((time, salt)) = text.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some((date, clock)) = time.strip_suffix('Z').and_then(|t| t.split_once('T')) else {
        return false;
    };
    date.len() == 8
        && digits(date)
        && (clock.len() == 6 || clock.len() == 9)
        && digits(clock)
        && salt.len() == 4
        && salt.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The newest run of a plan, read and folded. A journal without a header (its start was cut
/// short) is no run: it is skipped, and `warn` is told.
pub fn latest(
    state: &Path,
    stem: &str,
    warn: &mut dyn FnMut(String),
) -> Result<Option<(Replay, crate::event::state::RunState)>, ReplayError> {
    for path in runs(state, stem).into_iter().rev() {
        match read(&path) {
            Ok(replay) => {
                let run = replay.state();
                return Ok(Some((replay, run)));
            }
            Err(error) if error.is_no_run() => warn(format!(
                "ignoring `{}`: {error}; it is no run (remove it to silence this)",
                path.display()
            )),
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn journal(records: usize) -> Vec<u8> {
        // One instant throughout, so two calls give the same bytes.
        let now = chrono::DateTime::parse_from_rfc3339("2025-10-22T14:00:00.5Z")
            .unwrap()
            .to_utc();
        let header = Header {
            format: FORMAT_VERSION,
            run_id: "r".into(),
            plan: "p.yaml".into(),
            digest: "sha256:0".into(),
            created: now,
            vars: Vec::new(),
        };
        let mut out = serde_json::to_vec(&header).unwrap();
        out.push(b'\n');
        for seq in 1..=records as u64 {
            let record = Record {
                seq,
                at: now,
                event: Event::StageCompleted {
                    stage: format!("s{seq}"),
                },
            };
            out.extend(serde_json::to_vec(&record).unwrap());
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn a_whole_journal_reads_back() {
        let replay = parse(Path::new("j"), &journal(3)).unwrap();
        assert_eq!(replay.records.len(), 3);
        assert!(replay.torn.is_none());
        assert_eq!(replay.intact_len, journal(3).len() as u64);
    }

    #[test]
    fn a_torn_last_line_is_dropped_with_a_warning() {
        let mut bytes = journal(3);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(br#"{"seq":4,"at":"2025-"#);
        let replay = parse(Path::new("j"), &bytes).unwrap();
        assert_eq!(replay.records.len(), 3);
        assert!(replay.torn.unwrap().contains("torn"));
        assert_eq!(replay.intact_len, whole);
    }

    #[test]
    fn a_corrupted_line_in_the_middle_is_an_error_naming_it() {
        let bytes = journal(3);
        let text = String::from_utf8(bytes).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2] = "{not json";
        let bytes = format!("{}\n", lines.join("\n")).into_bytes();
        match parse(Path::new("j"), &bytes) {
            Err(ReplayError::Corrupt { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        // A gap in the numbering is corruption too.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let bytes = format!("{}\n", lines.join("\n")).into_bytes();
        assert!(matches!(
            parse(Path::new("j"), &bytes),
            Err(ReplayError::Corrupt { line: 3, .. })
        ));
    }

    #[test]
    fn an_empty_file_has_no_header() {
        assert!(matches!(
            parse(Path::new("j"), b""),
            Err(ReplayError::Empty { .. })
        ));
        assert!(matches!(
            parse(Path::new("j"), br#"{"format":1,"run"#),
            Err(ReplayError::Empty { .. })
        ));
    }
}
