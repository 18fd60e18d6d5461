//! Programs that steps and command probes run: each in a process group of its own, so that a
//! timeout, Ctrl-C or SIGTERM ends the whole group — SIGTERM, then SIGKILL after a grace
//! (`run --kill-grace`, 10 s by default) — grandchildren included, and a step's end is journaled
//! only once its group is gone. See `docs/state.md` ("Steps and their processes").
//!
//! A step's program starts *gated*: the runner spawns its own binary as the group's leader
//! (`ion-plan __exec -- PROGRAM ARGS…`), which waits for one byte on its stdin before it
//! `exec`s the program in place (same pid, same group). The runner journals `step_started` with
//! the group id in between, so the journal names the group before the effect can begin; if the
//! runner dies first, the leader reads end-of-file and exits without running anything.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The argument that makes the binary a gate instead of the CLI.
pub const GATE_ARG: &str = "__exec";

/// The default grace between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

static GRACE_MS: AtomicU64 = AtomicU64::new(10_000);
static GATED: AtomicBool = AtomicBool::new(false);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Sets the grace between SIGTERM and SIGKILL for every group ended from now on.
pub fn set_grace(grace: Duration) {
    GRACE_MS.store(
        u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

pub fn grace() -> Duration {
    Duration::from_millis(GRACE_MS.load(Ordering::Relaxed))
}

/// Lets steps start gated: the binary's `main` calls this (a library used in-process, as in
/// tests, spawns programs directly and journals `step_started` before the spawn, without a
/// group id).
pub fn enable_gate() {
    GATED.store(true, Ordering::Relaxed);
}

pub fn gated() -> bool {
    GATED.load(Ordering::Relaxed) && cfg!(target_os = "linux")
}

/// The program that gates a step: this very binary.
pub fn gate_program() -> std::path::PathBuf {
    // `/proc/self/exe` still works when the installed binary is replaced during a long run.
    std::path::PathBuf::from("/proc/self/exe")
}

/// Whether the runner is going down (a signal): a step that ends now is not journaled as
/// finished, so a resume sees it as interrupted and asks before running it again.
pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::Relaxed)
}

/// What to keep of a stream a program prints.
#[derive(Debug, Clone, Copy)]
pub enum Keep {
    /// The first bytes (a probe's JSON), and a count of the rest.
    Head(usize),
    /// The last bytes (a step's output: its end says what went wrong).
    Tail(usize),
}

/// What was kept of one stream, and how many bytes it had in all.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub bytes: Vec<u8>,
    pub total: u64,
}

impl Kept {
    fn add(&mut self, chunk: &[u8], keep: Keep) {
        self.total += chunk.len() as u64;
        match keep {
            Keep::Head(cap) => {
                let room = cap.saturating_sub(self.bytes.len());
                self.bytes
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Keep::Tail(cap) => {
                self.bytes.extend_from_slice(chunk);
                if self.bytes.len() > cap * 2 {
                    let cut = self.bytes.len() - cap;
                    self.bytes.drain(..cut);
                }
            }
        }
    }

    fn finish(mut self, keep: Keep) -> Kept {
        if let Keep::Tail(cap) = keep
            && self.bytes.len() > cap
        {
            let cut = self.bytes.len() - cap;
            self.bytes.drain(..cut);
        }
        self
    }

    /// Whether bytes were left out.
    pub fn cut(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

/// Reads a program's stdout and stderr to their ends in the background, so that a program
/// that prints a lot never blocks on a full pipe; keeps a bounded part of each.
pub struct Collector {
    tasks: Vec<(
        tokio::task::JoinHandle<()>,
        std::sync::Arc<Mutex<Kept>>,
        Keep,
    )>,
}

impl Collector {
    pub fn start(
        stdout: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        stderr: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        out: Keep,
        err: Keep,
    ) -> Collector {
        fn spawn(
            mut reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
            keep: Keep,
        ) -> (
            tokio::task::JoinHandle<()>,
            std::sync::Arc<Mutex<Kept>>,
            Keep,
        ) {
            let kept = std::sync::Arc::new(Mutex::new(Kept::default()));
            let shared = std::sync::Arc::clone(&kept);
            let task = tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buffer = vec![0_u8; 64 * 1024];
                while let Ok(n) = reader.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut kept) = shared.lock() {
                        kept.add(&buffer[..n], keep);
                    }
                }
            });
            (task, kept, keep)
        }
        Collector {
            tasks: vec![spawn(stdout, out), spawn(stderr, err)],
        }
    }

    /// What the streams gave: each read to its end, or for at most `linger` more (a process
    /// that left the group, such as a service started with `setsid`, may hold them open for
    /// ever). Returns (stdout, stderr).
    pub async fn finish(self, linger: Duration) -> (Kept, Kept) {
        let until = tokio::time::Instant::now() + linger;
        let mut kept = Vec::new();
        for (mut task, shared, keep) in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                task.abort();
            }
            let taken = shared
                .lock()
                .map(|mut k| std::mem::take(&mut *k))
                .unwrap_or_default();
            kept.push(taken.finish(keep));
        }
        let err = kept.pop().unwrap_or_default();
        let out = kept.pop().unwrap_or_default();
        (out, err)
    }
}

/// How long the output of a program that has exited is still read (what a process outside
/// its group, holding the pipes, prints after that is not waited for).
pub const LINGER: Duration = Duration::from_millis(250);

/// A process group as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub pgid: u32,
    /// The machine's boot id when it started.
    pub boot: Option<String>,
    /// When its leader started, in clock ticks since boot.
    pub start: Option<u64>,
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`), and
/// whether it is a zombie.
fn started(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field 22 is at index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, fields.first() == Some(&"Z")))
}

/// When the leader of a group that this process just started began (for the journal).
pub fn leader_start(pgid: u32) -> Option<u64> {
    started(pgid).map(|(start, _)| start)
}

/// Whether a recorded group still runs: same boot, and either its leader is the very process
/// that started it (same start time) or, the leader gone, members of the group remain. A group
/// id taken since by another process (same number, another start) is not the recorded group.
pub fn still_runs(record: &GroupRecord) -> bool {
    let this_boot = boot_id();
    if record.boot.is_some() && this_boot.is_some() && record.boot != this_boot {
        return false;
    }
    let pgid = i32::try_from(record.pgid).unwrap_or(0);
    match (started(record.pgid), record.start) {
        (Some((now, _)), Some(then)) if now != then => false,
        _ => alive(pgid),
    }
}

/// This boot of the machine (Linux's `boot_id`): process groups of another boot are gone.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
}

/// When the binary was started as a gate (`ion-plan __exec -- PROGRAM ARGS…`): waits for the
/// runner's go (one byte on stdin), then becomes the program. Returns the exit code if it could
/// not; `None` when the binary was not started as a gate.
#[cfg(unix)]
pub fn gate_main() -> Option<u8> {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|a| a != GATE_ARG) {
        return None;
    }
    let _separator = args.next();
    let Some(program) = args.next() else {
        return Some(125);
    };
    let mut go = [0_u8; 1];
    if !matches!(std::io::stdin().read(&mut go), Ok(1)) || go[0] != b'g' {
        // The runner stopped before it journaled the start: the program never runs.
        return Some(125);
    }
    let error = std::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .exec();
    eprintln!("cannot start `{}`: {error}", program.to_string_lossy());
    Some(127)
}

#[cfg(not(unix))]
pub fn gate_main() -> Option<u8> {
    None
}

/// A live process group, ended (SIGKILL) if it is still there when this value is dropped.
#[derive(Debug)]
pub struct Group {
    pgid: i32,
}

impl Group {
    /// Takes charge of the group led by `pid`.
    pub fn new(pid: u32) -> Group {
        let pgid = i32::try_from(pid).unwrap_or(i32::MAX);
        if let Ok(mut groups) = GROUPS.lock() {
            groups.insert(pgid);
        }
        Group { pgid }
    }

    pub fn id(&self) -> u32 {
        self.pgid.unsigned_abs()
    }

    /// Ends the group: SIGTERM, then SIGKILL after the grace; returns once nobody is left.
    pub async fn end(&self) {
        end(self.pgid, grace()).await;
    }

    /// Waits until nobody is left in the group, or `limit` passes; whether it is gone.
    pub async fn wait_gone(&self, limit: Duration) -> bool {
        wait_gone(self.pgid, limit).await
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if alive(self.pgid) {
            signal(self.pgid, Sig::Kill);
        }
        if let Ok(mut groups) = GROUPS.lock() {
            groups.remove(&self.pgid);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Sig {
    Term,
    Kill,
}

fn signal(pgid: i32, sig: Sig) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        let sig = match sig {
            Sig::Term => Signal::SIGTERM,
            Sig::Kill => Signal::SIGKILL,
        };
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), sig);
    }
}

/// Whether any process of group `pgid` still runs (zombies waiting to be reaped do not count:
/// they can have no more effects).
pub fn alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            if group == Some(pgid) && !matches!(state, "Z" | "X" | "x") {
                return true;
            }
        }
        false
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }
    #[cfg(not(unix))]
    false
}

const POLL: Duration = Duration::from_millis(50);

async fn wait_gone(pgid: i32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if !alive(pgid) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGTERM to the group, SIGKILL after `grace`, and back once nobody is left (or a minute
/// after the SIGKILL, which only a process stuck in the kernel survives).
pub async fn end(pgid: i32, grace: Duration) {
    if !alive(pgid) {
        return;
    }
    signal(pgid, Sig::Term);
    if wait_gone(pgid, grace).await {
        return;
    }
    signal(pgid, Sig::Kill);
    wait_gone(pgid, Duration::from_mins(1)).await;
}

/// `end`, blocking: SIGTERM, SIGKILL after the grace, back once nobody is left.
pub fn end_blocking(pgid: i32) {
    if !alive(pgid) {
        return;
    }
    signal(pgid, Sig::Term);
    let wait = |limit: Duration| {
        let until = Instant::now() + limit;
        while alive(pgid) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    };
    wait(grace());
    if alive(pgid) {
        signal(pgid, Sig::Kill);
        wait(Duration::from_mins(1));
    }
}

/// For the signal handler: the runner is going down. Ends every live group (SIGTERM, SIGKILL
/// after the grace) and returns once they are gone; blocking, as the process exits right after.
pub fn end_all() {
    SHUTTING_DOWN.store(true, Ordering::Relaxed);
    let groups: Vec<i32> = GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    let live: Vec<i32> = groups.into_iter().filter(|g| alive(*g)).collect();
    if live.is_empty() {
        return;
    }
    for pgid in &live {
        signal(*pgid, Sig::Term);
    }
    let wait = |limit: Duration| {
        let until = Instant::now() + limit;
        while live.iter().any(|g| alive(*g)) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    };
    wait(grace());
    for pgid in live.iter().filter(|g| alive(**g)) {
        signal(*pgid, Sig::Kill);
    }
    wait(Duration::from_secs(10));
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_a_group_ends_its_grandchildren_too() {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late");
        // A subshell in the background that would write after its parent is gone.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(sleep 0.5; echo late > {}) & wait",
                late.display()
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        let group = Group::new(child.id());
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(i32::try_from(child.id()).unwrap()));
        end(i32::try_from(child.id()).unwrap(), Duration::from_secs(5)).await;
        let _ = child.wait();
        assert!(!alive(i32::try_from(group.id()).unwrap()));
        std::thread::sleep(Duration::from_millis(800));
        assert!(!late.exists(), "the grandchild outlived its group");
    }
}
