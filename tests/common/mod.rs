//! Running the real `ion-plan` binary from tests: a small builder, and plans in temp dirs.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod postgres;
pub mod prometheus;
pub mod server;

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A command line for the binary.
pub struct IonPlan {
    command: Command,
}

pub fn ion_plan() -> IonPlan {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ion-plan"));
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    IonPlan { command }
}

impl IonPlan {
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn run(mut self) -> Output {
        let output = self.command.output().expect("the binary runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// `plan` written as `plan.yaml` in a fresh temp dir beside `log.sh`, which appends its first
/// argument to `log.txt`: what a test's steps did, in order.
pub fn plan_dir(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "log.sh", "echo \"$1\" >> log.txt");
    let path = write(dir.path(), "plan.yaml", plan);
    (dir, path)
}

/// What an operator answers a runner that stopped at an interrupted non-idempotent step
/// (exit 6, naming ``stage `NAME` `` and `--retry-step`): `--skip-step` when `ran(NAME)` says
/// its effect is there, else `--retry-step`; `None` when it stopped for another reason.
pub fn step_decision(stderr: &str, ran: impl Fn(&str) -> bool) -> Option<&'static str> {
    if !stderr.contains("--retry-step") {
        return None;
    }
    let stage = stderr.split("stage `").nth(1)?.split('`').next()?;
    Some(if ran(stage) {
        "--skip-step"
    } else {
        "--retry-step"
    })
}

/// Runs `run(flags)` until the run ends (an exit other than 6), as an operator would: waiting
/// out another runner's hold, deciding an interrupted step by `ran` (see [`step_decision`]).
/// Fails the test after `limit`.
pub fn resume_until_ended(
    mut run: impl FnMut(&[&str]) -> Output,
    ran: impl Fn(&str) -> bool,
    limit: std::time::Duration,
) -> Output {
    let deadline = std::time::Instant::now() + limit;
    let mut flags: Vec<&str> = Vec::new();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not end within {limit:?}"
        );
        let output = run(&flags);
        if output.code != 6 {
            return output;
        }
        if output
            .stderr
            .contains("another runner is running this plan")
        {
            std::thread::sleep(std::time::Duration::from_millis(300));
            continue;
        }
        let flag = step_decision(&output.stderr, &ran)
            .unwrap_or_else(|| panic!("exit 6, and not for a step: {}", output.stderr));
        flags = vec![flag];
    }
}

/// `ion-plan run --once PLAN`.
pub fn run_once(path: &Path) -> Output {
    ion_plan().args(["run", "--once"]).arg(path).run()
}

/// A small valid plan, for tests that change one thing about it.
pub const MINIMAL_PLAN: &str = "\
version: 1
name: minimal
probes:
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
gates:
  guard:
    at: every_check
    require:
      - check: load.canary.error_rate <= 1%
        consecutive: 2
stages:
  - name: half
    traffic: 50
    bake: 10m
    checks: { every: 1m, probes: [load] }
    gates: [guard]
  - name: full
    traffic: 100
    bake: 10m
    checks: { every: 1m, probes: [load] }
    gates: [guard]
";

/// Writes an executable shell script `name` with `body`.
pub fn script(dir: &Path, name: &str, body: &str) {
    let path = write(dir, name, format!("#!/bin/sh\n{body}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The lines of a file, or none if it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sends `signal` (`INT`, `TERM`…) to a child process, with the system's `kill`.
pub fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("the `kill` program (procps)");
    assert!(sent.success(), "kill -{signal} {}", child.id());
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The run journals in a state folder (`.ion-plan/`), oldest first: `*.jsonl`, not the inboxes.
pub fn journals(state: &Path) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(state)
        .unwrap_or_else(|e| panic!("{}: {e}", state.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".jsonl") && !name.ends_with(".inbox.jsonl")
        })
        .collect();
    journals.sort();
    journals
}

/// The records of a run, typed as the crate writes them: from a journal file (its header line
/// skipped) or from `run --json` output.
pub fn records(text: &str) -> Vec<ion_plan::event::Record> {
    text.lines()
        .filter(|l| l.contains("\"seq\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The records of the newest journal in a state folder.
pub fn journal_records(state: &Path) -> Vec<ion_plan::event::Record> {
    let journal = journals(state).pop().expect("a journal");
    records(&std::fs::read_to_string(journal).unwrap())
}

/// An event's name as the journal writes it (`step_started`, …).
pub fn kind(event: &ion_plan::event::Event) -> String {
    let value = serde_json::to_value(event).unwrap();
    match value {
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        serde_json::Value::String(name) => name,
        other => other.to_string(),
    }
}

/// Turns the events `run --scenario --json` printed into a journal file, as a live run would
/// have written it: a header naming `plan`, then every record. Written as
/// `STATE/STEM-RUNID.jsonl`, where `backtest`, `report` and `status` look for the plan `STEM`.
pub fn journal_from_scenario(stdout: &str, plan: &str, state: &Path, stem: &str) -> PathBuf {
    let records = records(stdout);
    let ion_plan::event::Event::RunStarted { run_id, digest, .. } = &records[0].event else {
        panic!("no run_started: {stdout}");
    };
    let header = ion_plan::journal::Header {
        format: ion_plan::event::FORMAT_VERSION,
        run_id: run_id.clone(),
        plan: plan.into(),
        digest: digest.clone(),
        created: records[0].at,
        vars: Vec::new(),
    };
    let mut text = serde_json::to_string(&header).unwrap();
    for record in &records {
        text.push('\n');
        text.push_str(&serde_json::to_string(record).unwrap());
    }
    text.push('\n');
    std::fs::create_dir_all(state).unwrap();
    write(state, &format!("{stem}-{run_id}.jsonl"), text)
}
