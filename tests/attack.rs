//! Adversarial tests: the on-call engineer at 14:00 on deployment day, and an attacker. Each test
//! reproduces a problem an attack on the runner found (it failed before the fix); its comment
//! says what went wrong and what the runner does instead. Real processes, no mocks; each test
//! ends within 30 s (every wait is bounded). See docs/state.md for the rules they pin.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    KillOnDrop, ion_plan, journals, lines, plan_dir as setup, run_once as once, script, write,
};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ion-plan")
}

/// Runs the binary with `args` in `dir`, for at most `limit`: `Some(exit code)`, or `None` if it
/// was still running (it is then killed).
fn bounded(dir: &Path, args: &[&str], limit: Duration) -> Option<i32> {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Waits (at most `limit`) until the newest journal in `state` has a line containing `needle`.
fn wait_for_journal(state: &Path, needle: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if state.exists()
            && journals(state)
                .last()
                .is_some_and(|j| lines(j).iter().any(|l| l.contains(needle)))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no `{needle}` in the journal after {limit:?}");
}

fn spawn_runner(dir: &Path, args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new(bin())
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The `pgid` of the newest `step_started` of the newest journal.
fn recorded_pgid(state: &Path) -> u32 {
    let journal = journals(state).pop().unwrap();
    lines(&journal)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["step_started"]["pgid"].as_u64())
        .next_back()
        .map(|p| u32::try_from(p).unwrap())
        .expect("a step_started with a pgid")
}

/// An unrelated long-running process, leader of a process group of its own.
fn bystander() -> KillOnDrop {
    KillOnDrop(
        Command::new("sleep")
            .arg("25")
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn still_runs(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A stage whose end gate pauses it when `health.json` says the error rate is high, and which
/// asks for approval before the next stage (10% → 100%).
const PAUSE_THEN_APPROVAL: &str = "\
version: 1
name: dbl
probes:
  health:
    command: [cat, health.json]
gates:
  settled:
    at: end
    require: [health.error_rate <= 1%]
    on_fail: pause
stages:
  - name: first
    traffic: 10
    bake: 0s
    checks: { at: [0s], probes: [health] }
    gates: [settled]
    approval: {}
    steps: [{ run: [./log.sh, shift-10], idempotent: true }]
  - name: all
    traffic: 100
    bake: 0s
    steps: [{ run: [./log.sh, shift-100], idempotent: true }]
";

/// HIGH. Two on-call engineers both run `ion-plan approve` to resume a paused stage (or one
/// runs it twice because the first seemed to do nothing). The runner takes one to resume the
/// pause; the second stays in the inbox and approves the stage's *promotion* (`approval: {}`)
/// the moment it asks — traffic goes from 10% to 100% without anybody approving it.
///
/// Correct: an approval answers the wait it was given for. One given while the stage was
/// paused resumes that pause only (the request should record what it answers — pause or
/// approval — and duplicates for a wait already answered are never taken); `approve` could
/// also refuse a second approval for the same wait while one is pending. The stage must still
/// wait for approval after the pause is resumed.
#[test]
fn a_second_approval_of_a_pause_does_not_approve_the_promotion() {
    let (dir, path) = setup(PAUSE_THEN_APPROVAL);
    write(dir.path(), "health.json", r#"{"error_rate": 0.5}"#);
    let first = once(&path);
    assert_eq!(first.code, 4, "paused: {}", first.stderr);
    for _ in 0..2 {
        let approve = ion_plan().arg("approve").arg(&path).run();
        assert_eq!(approve.code, 0, "{}", approve.stderr);
    }
    write(dir.path(), "health.json", r#"{"error_rate": 0.001}"#);
    let resumed = once(&path);
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift-10"],
        "the second approval of the pause promoted the stage to 100%:\n{}{}",
        resumed.stdout,
        resumed.stderr
    );
    assert_eq!(
        resumed.code, 4,
        "the stage should wait for its approval: {}",
        resumed.stderr
    );
}

/// A stage that waits for approval.
const WAITING: &str = "\
version: 1
name: wait
stages:
  - name: first
    traffic: 10
    bake: 0s
    approval: {}
    steps: [{ run: [./log.sh, shift-10], idempotent: true }]
  - name: all
    traffic: 100
    bake: 0s
    steps: [{ run: [./log.sh, shift-100], idempotent: true }]
rollback:
  - run: [./log.sh, rollback]
";

/// MEDIUM. An inbox that has grown near its 16 MiB read limit (it is never compacted: every
/// request ever given stays). `abort` checks the size *before* appending, so it succeeds
/// (exit 0, "abort recorded") and writes its line across the limit; the runner reads only the
/// first 16 MiB, sees a torn last line, and never takes the abort. The on-call engineer was
/// told the abort was recorded; the canary keeps running.
///
/// Correct: a request that is acknowledged is taken. Either `abort`/`approve` refuse (exit
/// non-zero) when the line would end past what the runner reads, or the runner reads the
/// inbox's tail (requests of its own run) rather than its head, or the inbox is compacted.
#[test]
fn an_abort_recorded_in_a_large_inbox_is_taken() {
    let (dir, path) = setup(WAITING);
    assert_eq!(once(&path).code, 4);
    // Requests of an old run, up to just under 16 MiB.
    let limit = 16 * 1024 * 1024 - 40;
    let mut text = String::with_capacity(limit);
    let mut n = 0;
    loop {
        let line = format!(
            "{{\"id\":\"old-{n:07}\",\"run\":\"20250101T000000000Z-0000\",\"at\":\"2025-01-01T00:00:00Z\",\"by\":\"me\",\"request\":{{\"abort\":{{\"reason\":\"old\"}}}}}}\n"
        );
        if text.len() + line.len() > limit {
            break;
        }
        text.push_str(&line);
        n += 1;
    }
    let inbox = dir.path().join(".ion-plan/plan.inbox.jsonl");
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&inbox).unwrap(), text.as_bytes()).unwrap();

    let abort = ion_plan()
        .args(["abort", "--reason", "bad release"])
        .arg(&path)
        .run();
    if abort.code != 0 {
        return; // Refused, and said so: acceptable.
    }
    let after = once(&path);
    assert_eq!(
        after.code, 3,
        "`abort` said the abort was recorded, but the runner never took it:\n{}",
        after.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// The state folder

/// LOW-MEDIUM. A FIFO in the place of the inbox (or of a journal, or of the lock): every file
/// in the state folder is opened without `O_NONBLOCK` and without checking that it is a regular
/// file, so `status` and `run --once` block forever in `open(2)`. A scheduler's `run --once`
/// hangs until the CI job's own timeout; `status` hangs at the terminal.
///
/// Correct: like a symlink, anything but a regular file in a state file's place is an error
/// naming it (open with `O_NONBLOCK`, then check the file type, or `fstat` before reading);
/// never a hang.
#[test]
fn a_fifo_in_the_state_folder_does_not_hang_status_or_run_once() {
    let (dir, path) = setup(WAITING);
    assert_eq!(once(&path).code, 4);
    let inbox = dir.path().join(".ion-plan/plan.inbox.jsonl");
    let _ = std::fs::remove_file(&inbox);
    assert!(
        Command::new("mkfifo")
            .arg(&inbox)
            .status()
            .unwrap()
            .success()
    );
    let limit = Duration::from_secs(5);
    let plan = path.to_str().unwrap();
    assert!(
        bounded(dir.path(), &["status", plan], limit).is_some(),
        "`status` hangs on a FIFO in the place of the inbox"
    );
    assert!(
        bounded(dir.path(), &["run", "--once", plan], limit).is_some(),
        "`run --once` hangs on a FIFO in the place of the inbox"
    );
    // The same with a FIFO in the place of a journal: `status` reads every journal.
    std::fs::remove_file(&inbox).unwrap();
    let journal = dir
        .path()
        .join(".ion-plan/plan-29991231T000000000Z-0000.jsonl");
    assert!(
        Command::new("mkfifo")
            .arg(&journal)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        bounded(dir.path(), &["status", plan], limit).is_some(),
        "`status` hangs on a FIFO in the place of a journal"
    );
}

/// LOW-MEDIUM. A run whose id lies in the future (its journal came from a machine whose clock
/// was a year ahead — a VM booted with a bad RTC before NTP synced, or shared state written
/// elsewhere). `open_run` computes the next run id *before* it decides anything
/// (`run_id_after`), stepping one millisecond at a time until it passes the newest run's: a
/// year is 3·10¹⁰ steps, so even a plain resume spins at 100% CPU "forever".
///
/// Correct: the next id is computed only when a new run starts, and in O(1) (the newest run's
/// instant plus 1 ms when it is ahead of now); a resume does not need one at all.
#[test]
fn a_run_id_from_a_clock_ahead_does_not_hang_the_runner() {
    let (dir, path) = setup(WAITING);
    assert_eq!(once(&path).code, 4);
    let state = dir.path().join(".ion-plan");
    let journal = journals(&state).pop().unwrap();
    let old = journal
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("plan-")
        .unwrap()
        .to_owned();
    let new = "20991128T000000000Z-0000";
    let text = std::fs::read_to_string(&journal)
        .unwrap()
        .replace(&old, new);
    std::fs::remove_file(&journal).unwrap();
    write(&state, &format!("plan-{new}.jsonl"), text);
    std::fs::rename(
        state.join(format!("plan-{old}.plan.yaml")),
        state.join(format!("plan-{new}.plan.yaml")),
    )
    .unwrap();
    let code = bounded(
        dir.path(),
        &["run", "--once", path.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(
        code,
        Some(4),
        "`run --once` of a waiting run spins instead of answering"
    );
}

// ---------------------------------------------------------------------------------------------
// Steps and their processes

/// HIGH. A resumed run checks that the interrupted step's process group "still runs" by its
/// number alone. Process ids are reused — quickly in a container, where a restarted job's pids
/// start again from 1 on the same boot id — so the recorded pgid can name an unrelated group
/// (here a `sleep` of ours; in a container it may be the CI shell or the new runner itself).
/// The runner waits for it, then sends it SIGTERM/SIGKILL: it kills a process nobody asked it
/// to touch.
///
/// Correct: record what identifies the group's leader beyond its number (its start time, field
/// 22 of `/proc/PID/stat`, or a marker in its environment such as the run id) and treat a
/// group whose leader does not match as gone; never signal it.
#[test]
fn a_resume_does_not_kill_an_unrelated_group_that_reused_the_recorded_pgid() {
    let (dir, path) = setup(
        "\
version: 1
name: reuse
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [sleep, \"30\"]
        timeout: 2s
        idempotent: true
",
    );
    let state = dir.path().join(".ion-plan");
    let mut runner = spawn_runner(dir.path(), &["run", path.to_str().unwrap()]);
    wait_for_journal(&state, "step_started", Duration::from_secs(10));
    runner.0.kill().unwrap(); // SIGKILL: the step's group outlives it.
    let _ = runner.0.wait();
    let old = recorded_pgid(&state);
    kill_group(old); // ...and then it ends, and its number is free again.

    // The number is taken again by somebody else's process group.
    let mut other = bystander();
    let reused = other.0.id();
    let journal = journals(&state).pop().unwrap();
    let text = std::fs::read_to_string(&journal)
        .unwrap()
        .replace(&format!("\"pgid\":{old}"), &format!("\"pgid\":{reused}"));
    std::fs::write(&journal, text).unwrap();

    let resumed = bounded(
        dir.path(),
        &["run", path.to_str().unwrap()],
        Duration::from_secs(15),
    );
    let alive = still_runs(&mut other.0);
    assert!(
        alive,
        "the resumed run killed an unrelated process group {reused} (exit {resumed:?})"
    );
}

/// MEDIUM-HIGH. `run --restart` after a `SIGKILL` of the runner mid-step: the old run's step
/// group is still running, and the new run starts the same (non-idempotent) step at once, so
/// two deploys run concurrently. A plain resume waits for the old group (docs/state.md); a
/// restart does not.
///
/// Correct: `--restart` waits for (or refuses while) the superseded run's interrupted step
/// group still runs, as a resume does — the new run's step starts only after the old one ended.
#[test]
fn a_restart_does_not_run_a_step_while_the_superseded_run_s_step_still_runs() {
    let (dir, path) = setup(
        "\
version: 1
name: restart
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [sh, -c, \"echo start >> log.txt; sleep 3; echo end >> log.txt\"]
        timeout: 10s
",
    );
    let state = dir.path().join(".ion-plan");
    let mut runner = spawn_runner(dir.path(), &["run", path.to_str().unwrap()]);
    wait_for_journal(&state, "step_started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    runner.0.kill().unwrap();
    let _ = runner.0.wait();
    let old = recorded_pgid(&state);
    let restarted = bounded(
        dir.path(),
        &["run", "--restart", path.to_str().unwrap()],
        Duration::from_secs(20),
    );
    kill_group(old);
    let log = lines(&dir.path().join("log.txt"));
    assert_eq!(
        log,
        ["start", "end", "start", "end"],
        "the restarted run's step ran concurrently with the old run's (exit {restarted:?})"
    );
}

/// MEDIUM. A step that prints more than 1 MiB (a verbose `helm`/`kubectl`/`terraform`): the
/// runner stops reading its stdout at 1 MiB (`take(1 << 20)` then `read_to_end`), the pipe
/// fills, the program blocks in `write(2)` and is killed at its timeout — in the middle of its
/// effect — and the step is reported "timed out", the run rolled back.
///
/// Correct: keep draining the pipes to the end and keep only the last (or first) bytes for the
/// detail; a program's output size never changes whether it finishes.
#[test]
fn a_step_that_prints_more_than_a_mebibyte_finishes() {
    let (dir, path) = setup(
        "\
version: 1
name: chatty
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [sh, -c, \"head -c 3000000 /dev/zero; echo done > marker\"]
        timeout: 4s
",
    );
    let run = ion_plan().arg("run").arg(&path).run();
    assert!(
        dir.path().join("marker").exists() && run.code == 0,
        "a step printing 3 MB was killed: exit {}\n{}",
        run.code,
        run.stdout
    );
}

/// MEDIUM. docs/state.md: "A service a step starts must leave the group (`setsid`) to outlive
/// it." A service started that way keeps the step's stdout and stderr open (nobody redirects a
/// daemon's output in a deploy script), and the runner reads them to end-of-file before it
/// looks at the group: the step never finishes, is "timed out (killed with its process group)"
/// — while the service in fact keeps running — and the run rolls back.
///
/// Correct: once the leader has exited and its group is gone, the step is over: stop reading
/// the pipes (or read what is there without waiting for EOF) and journal the end.
#[test]
fn a_step_that_starts_a_service_with_setsid_finishes() {
    let (dir, path) = setup(
        "\
version: 1
name: service
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [sh, -c, \"setsid sleep 20 & echo $! > svc.pid; echo started\"]
        timeout: 4s
",
    );
    let run = ion_plan().arg("run").arg(&path).run();
    if let Ok(pid) = std::fs::read_to_string(dir.path().join("svc.pid")) {
        kill_group(pid.trim().parse().unwrap_or(0));
    }
    assert_eq!(
        run.code, 0,
        "a step that started a service with setsid failed:\n{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets and outside text

/// LOW. A step that prints a secret base64-encoded (`kubectl get secret -o yaml`, a
/// `docker login` config, `echo -n "$TOKEN" | base64` in a debug line) puts it in the journal
/// and on the terminal: only the secret as given, JSON-escaped and percent-encoded are redacted.
///
/// Correct (`docs/plan.md`, "Secrets"): the standard base64 (and base64url) forms of
/// each secret are redacted too (the three aligned encodings, with and without padding).
#[test]
fn a_secret_echoed_base64_encoded_is_redacted() {
    const TOKEN: &str = "tok-0123456789abcdefghijklmnopqr";
    const ENCODED: &str = "dG9rLTAxMjM0NTY3ODlhYmNkZWZnaGlqa2xtbm9wcXI="; // base64(TOKEN)
    let (dir, path) = setup(
        "\
version: 1
name: b64
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [sh, -c, \"printf %s \\\"$SECRET\\\" | base64\"]
        env: { SECRET: \"${{ env.ION_TOKEN }}\" }
",
    );
    let run = ion_plan()
        .arg("run")
        .arg(&path)
        .env("ION_TOKEN", TOKEN)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let journal: String = journals(&dir.path().join(".ion-plan"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for (what, text) in [("output", &run.stdout), ("journal", &journal)] {
        assert!(
            !text.contains(&ENCODED[..40]),
            "the {what} holds the secret base64-encoded:\n{text}"
        );
    }
}

/// LOW. `validate` (human format) quotes a bad value from the plan verbatim: an ESC sequence
/// and a CR in a stage name under review reach the reviewer's terminal raw (clear the screen,
/// rewrite the line, set the title), and the `github` format lets ESC through too. A plan in a
/// pull request is outside text.
///
/// Correct: control characters in quoted plan text are escaped (`\x1b`, `\r`) in every format,
/// as they are for probe errors and step output.
#[test]
fn validate_does_not_print_control_characters_from_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        "version: 1\nname: x\nstages:\n  - name: \"first\\e[2J\\r::error::pwned\"\n    traffic: 10\n    bake: 0s\n",
    );
    for format in ["human", "github"] {
        let output = ion_plan()
            .args(["validate", "--format", format])
            .arg(&path)
            .run();
        assert_eq!(output.code, 2, "{}", output.stderr);
        let text = format!("{}{}", output.stdout, output.stderr);
        assert!(
            !text.contains('\x1b') && !text.contains('\r'),
            "`validate --format {format}` prints raw control characters from the plan: {text:?}"
        );
    }
}

/// HIGH. SIGTERM (a deploy job cancelled, a node drained) or Ctrl-C while a command probe runs:
/// the runner ends the probe's process group, and then *judges the probe's death by its own
/// signal as the canary's error* — the check is journaled with the error, the gate fails, the
/// run journals `rollback_started` and runs the rollback step before it exits; a resume then
/// carries the rollback on. Stopping the runner rolled back a healthy canary.
///
/// Correct: as for steps, a probe that ends while the runner goes down yields nothing: no
/// check, no gate, no rollback is journaled after the signal (the probe never returns, or its
/// result is dropped); the run stays resumable where it was.
#[test]
fn stopping_the_runner_during_a_command_probe_does_not_roll_back() {
    let (dir, path) = setup(
        "\
version: 1
name: sig
probes:
  health:
    command: [sh, -c, \"sleep 2; cat health.json\"]
gates:
  guard:
    at: every_check
    require: [health.error_rate <= 1%]
    on_error: { consecutive: 1, then: rollback }
stages:
  - name: first
    traffic: 10
    bake: 1m
    checks: { every: 200ms, probes: [health] }
    gates: [guard]
    steps: [{ run: [./log.sh, shift-10], idempotent: true }]
rollback:
  - run: [./log.sh, rollback]
",
    );
    write(dir.path(), "health.json", r#"{"error_rate": 0.001}"#);
    let state = dir.path().join(".ion-plan");
    let mut runner = spawn_runner(dir.path(), &["run", path.to_str().unwrap()]);
    // The second check's probe runs for two seconds: stop the runner inside it.
    wait_for_journal(&state, "\"number\":2,", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    common::signal(&runner.0, "TERM");
    let until = Instant::now() + Duration::from_secs(15);
    while runner.0.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let journal = lines(&journals(&state).pop().unwrap()).join("\n");
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift-10"],
        "stopping the runner rolled the canary back"
    );
    assert!(
        !journal.contains("rollback_started") && !journal.contains("SIGTERM"),
        "the runner's own signal was journaled as the canary's failure:\n{journal}"
    );
}

/// MEDIUM. A journal whose header is a complete line but not one this binary reads — written
/// by a newer `ion-plan` (a CI image pinned to an older version, shared state written by
/// another machine), or with one damaged byte — is taken for "no run" (the rule meant for
/// a header cut short by a full disk) and skipped with a warning. The run it holds is in
/// progress at 10% traffic, but `status` says "no run yet" and `run --once` starts a new run
/// from the first stage: the first stage's steps run again, and the real run is forgotten.
///
/// Correct: only a file without a complete first line is no run. A complete header of another
/// format, or a damaged one, makes every command refuse the plan's state (exit 6) naming the
/// file — as a damaged record does — and nothing is run.
#[test]
fn a_journal_of_another_format_is_not_taken_for_no_run() {
    let (dir, path) = setup(WAITING);
    assert_eq!(once(&path).code, 4);
    assert_eq!(lines(&dir.path().join("log.txt")), ["shift-10"]);
    let journal = journals(&dir.path().join(".ion-plan")).pop().unwrap();
    let text =
        std::fs::read_to_string(&journal)
            .unwrap()
            .replacen("\"format\":1", "\"format\":2", 1);
    std::fs::write(&journal, text).unwrap();
    let again = once(&path);
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift-10"],
        "a new run started over a run in progress (exit {}):\n{}",
        again.code,
        again.stderr
    );
    assert_eq!(again.code, 6, "{}", again.stderr);
}

/// MEDIUM. docs/state.md: `approve --stage S --ahead` "records a pre-approval that S takes when
/// it asks for approval (not when a gate pauses it: a pause wants a person who has seen why)".
/// But when S happens to be paused at that moment, `approve` drops `ahead` (S "is waiting")
/// and records a plain approval — which resumes the pause. Someone pre-approving tomorrow's
/// promotion silently overrides a failing gate they have not looked at.
///
/// Correct: `--ahead` never answers a pause: either it is refused while S is paused (exit 6,
/// saying S is paused and why), or it is recorded as a pre-approval the pause does not take.
#[test]
fn a_pre_approval_does_not_resume_a_pause() {
    let (dir, path) = setup(PAUSE_THEN_APPROVAL);
    write(dir.path(), "health.json", r#"{"error_rate": 0.5}"#);
    assert_eq!(once(&path).code, 4, "paused");
    let ahead = ion_plan()
        .args(["approve", "--stage", "first", "--ahead"])
        .arg(&path)
        .run();
    if ahead.code != 0 {
        return; // Refused: acceptable.
    }
    let after = once(&path);
    let journal = lines(&journals(&dir.path().join(".ion-plan")).pop().unwrap()).join("\n");
    assert!(
        !journal.contains("\"resumed\""),
        "a pre-approval (`--ahead`) resumed a paused stage:\n{}",
        after.stdout
    );
}

/// LOW. A journal whose record carries an instant near the end of time (a damaged or
/// hand-edited journal, a clock gone mad): `status` and `run --once` panic
/// (`DateTime + TimeDelta overflowed`, exit 101) when they add the bake to the stage's start.
/// A bad input gets a clear error and a non-zero exit, never a panic.
///
/// Correct: checked date arithmetic (`checked_add_signed`), and a record out of range is a
/// damaged journal (exit 6, naming the line).
#[test]
fn a_journal_instant_at_the_end_of_time_does_not_panic() {
    let (dir, path) = setup(
        "\
version: 1
name: far
stages:
  - name: first
    traffic: 10
    bake: 10m
  - name: all
    traffic: 100
    bake: 0s
",
    );
    assert_eq!(once(&path).code, 5, "in progress");
    let journal = journals(&dir.path().join(".ion-plan")).pop().unwrap();
    let text: Vec<String> = lines(&journal)
        .into_iter()
        .map(|line| {
            if line.contains("stage_started") {
                let at = line.split("\"at\":\"").nth(1).unwrap();
                let at = &at[..at.find('"').unwrap()];
                line.replace(at, "+262142-12-31T23:59:59Z")
            } else {
                line
            }
        })
        .collect();
    std::fs::write(&journal, format!("{}\n", text.join("\n"))).unwrap();
    for args in [&["status"][..], &["run", "--once"]] {
        let output = ion_plan().args(args).arg(&path).run();
        assert!(
            output.code != 101 && !output.stderr.contains("panicked"),
            "`{}` panics on an instant at the end of time:\n{}",
            args.join(" "),
            output.stderr
        );
    }
}

/// HIGH. Two plans in one folder, one named like the other plus `-` and a digit: `web.yaml`
/// and `web-2.yaml` (or `deploy.yaml` and `deploy-2026-11.yaml`). They share `.ion-plan/`, and
/// the journals of `web` are found by the prefix `web-` followed by a digit — which
/// `web-2-RUNID.jsonl` matches. So, while `web` has no run of its own, `status web.yaml` shows
/// web-2's run, `abort web.yaml` is accepted "for run <web-2's id>" (and lands in an inbox
/// nobody reads), `run web.yaml` refuses to start ("the plan changed since run … started"),
/// and `run web.yaml --restart` appends `superseded` to web-2's journal: the other plan's
/// rollout is ended, and its next `run --once` starts it again from the first stage.
///
/// Correct: a plan's journals are exactly `STEM-RUNID.jsonl` where RUNID has the run id's
/// shape (`YYYYMMDDTHHMMSSmmmZ-xxxx`), and the header's `plan` is checked too; another plan's
/// journal is never read, written or superseded.
#[test]
fn a_plan_does_not_take_the_runs_of_a_plan_named_like_it() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "log.sh", "echo \"$1\" >> log.txt");
    let web2 = write(dir.path(), "web-2.yaml", WAITING);
    let web = write(dir.path(), "web.yaml", format!("{WAITING}# web\n"));
    assert_eq!(once(&web2).code, 4);

    let abort = ion_plan()
        .args(["abort", "--reason", "web has no run"])
        .arg(&web)
        .run();
    assert_eq!(
        abort.code, 6,
        "`abort web.yaml` was taken for web-2's run: {}",
        abort.stderr
    );
    let restart = ion_plan()
        .args(["run", "--once", "--restart"])
        .arg(&web)
        .run();
    let web2_journal = journals(&dir.path().join(".ion-plan"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("web-2-")
        })
        .unwrap();
    let text = std::fs::read_to_string(&web2_journal).unwrap();
    assert!(
        !text.contains("superseded"),
        "`run web.yaml --restart` superseded web-2's run:\n{}",
        restart.stderr
    );
}

/// MEDIUM. A command probe that leaves a process behind (the everyday
/// `kubectl port-forward … & curl …` probe script, or any `cmd &`) answers at once, but the
/// child keeps its stdout open, and the probe reads stdout to end-of-file before it looks at
/// the exit: every check "times out", and the gate rolls a healthy canary back. (The same
/// `take(1 MiB)` + `read_to_end` also turns a probe that prints over 1 MiB — to stdout or
/// stderr — into a timeout instead of a clear "output too large".)
///
/// Correct: once the probe's program has exited, its reading is what it printed so far; what
/// it left in its group is ended (as the code already intends) without waiting for EOF.
#[test]
fn a_command_probe_that_leaves_a_child_behind_is_read_when_it_exits() {
    let (dir, path) = setup(
        "\
version: 1
name: pf
probes:
  health:
    command: [sh, -c, \"sleep 20 & echo '{\\\"error_rate\\\": 0.001}'\"]
    timeout: 3s
gates:
  guard:
    at: end
    require: [health.error_rate <= 1%]
stages:
  - name: first
    traffic: 10
    bake: 0s
    checks: { at: [0s], probes: [health] }
    gates: [guard]
",
    );
    let run = ion_plan().arg("run").arg(&path).run();
    drop(dir);
    assert_eq!(
        run.code, 0,
        "a probe that left a child behind timed out and rolled back:\n{}",
        run.stdout
    );
}

/// LOW-MEDIUM. The on-call engineer's ssh session drops (laptop lid, VPN) while a step runs:
/// the runner gets SIGHUP, which it does not handle, and dies on the spot like a SIGKILL. The
/// step's process group (a group of its own, so the hangup does not reach it) carries on
/// unsupervised and takes effect after the runner is gone; nothing journals it.
///
/// Correct: SIGHUP is handled — either like SIGTERM (the groups are ended, the journal says
/// how to resume) or ignored so that the run carries on (its output to a dead terminal is
/// already tolerated). Never an effect that no runner watches.
#[test]
fn a_hangup_does_not_leave_a_step_running_unsupervised() {
    let (dir, path) = setup(
        "\
version: 1
name: hup
stages:
  - name: first
    traffic: 10
    bake: 0s
    steps:
      - run: [sh, -c, \"sleep 2; echo late >> log.txt\"]
",
    );
    let state = dir.path().join(".ion-plan");
    let mut runner = spawn_runner(dir.path(), &["run", path.to_str().unwrap()]);
    wait_for_journal(&state, "step_started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    common::signal(&runner.0, "HUP");
    let until = Instant::now() + Duration::from_secs(15);
    while runner.0.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3)); // the step would have ended by now
    let late = lines(&dir.path().join("log.txt")).contains(&"late".to_owned());
    let journal = lines(&journals(&state).pop().unwrap()).join("\n");
    assert!(
        !late || journal.contains("step_finished"),
        "after SIGHUP the step took effect with no runner watching it:\n{journal}"
    );
}
