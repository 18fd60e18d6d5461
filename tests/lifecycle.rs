//! The run around the decisions (docs/state.md): a request belongs to one run and an abort comes
//! first; an ended run is not started again by accident; `status` of ended and interrupted
//! runs; steps die with their whole process group; the state folder is not followed; the lock
//! cannot be bypassed; a journal without a header is no run; a long downtime stays one line.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::server::{TestServer, serve};
use common::{
    KillOnDrop, ion_plan, journal_records, journals, kind, lines, plan_dir as setup,
    run_once as once, write,
};
use ion_plan::event::Event;
use serde_json::Value;

fn stats_server() -> TestServer {
    serve(Router::new().route("/stats", get(|| async { r#"{"error_rate": 0.001}"# })))
}

/// Two stages: `half` (with `half_extra` added to it), then `full` (with `full_extra`).
fn plan(server: &TestServer, half_extra: &str, full_extra: &str) -> String {
    format!(
        "\
version: 1
name: life
probes:
  stats:
    http: {{ url: \"{}\", metrics: {{ error_rate: /error_rate }} }}
gates:
  guard:
    at: every_check
    require: [stats.error_rate <= 1%]
stages:
  - name: half
    traffic: 50
    steps: [{{ run: [./log.sh, shift-50], idempotent: true }}]
    checks: {{ every: 200ms, probes: [stats] }}
    gates: [guard]
{half_extra}
  - name: full
    traffic: 100
    bake: 0s
    steps: [{{ run: [./log.sh, shift-100], idempotent: true }}]
{full_extra}
rollback:
  - run: [./log.sh, rollback]
",
        server.url("/stats")
    )
}

fn status(path: &Path) -> Value {
    let output = ion_plan().args(["status", "--json"]).arg(path).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    output.json()
}

fn log(dir: &Path) -> Vec<String> {
    lines(&dir.join("log.txt"))
}

/// The events of the newest journal.
fn events(dir: &Path) -> Vec<Event> {
    journal_records(&dir.join(".ion-plan"))
        .into_iter()
        .map(|r| r.event)
        .collect()
}

fn kinds(dir: &Path) -> Vec<String> {
    events(dir).iter().map(kind).collect()
}

#[test]
fn an_abort_or_approval_belongs_to_its_run_and_an_ended_run_is_not_rolled_out_again() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 0s\n    approval: {}", ""));
    assert_eq!(once(&path).code, 4, "run 1 waits for approval");
    let abort = ion_plan()
        .args(["abort", "--reason", "bad release"])
        .arg(&path)
        .run();
    assert_eq!(abort.code, 0, "{}", abort.stderr);
    let aborted = once(&path);
    assert_eq!(aborted.code, 3, "{}", aborted.stderr);
    assert_eq!(log(dir.path()), ["shift-50", "rollback"]);

    // The scheduler runs `--once` again: nothing moves, the ended run's outcome and code.
    for _ in 0..2 {
        let again = once(&path);
        assert_eq!(again.code, 3, "{}", again.stderr);
        assert!(again.stderr.contains("aborted"), "{}", again.stderr);
        assert!(again.stderr.contains("--restart"), "{}", again.stderr);
    }
    assert_eq!(
        log(dir.path()),
        ["shift-50", "rollback"],
        "rolled out again"
    );
    // A request for an ended run is refused.
    let late = ion_plan().args(["abort", "--reason", "x"]).arg(&path).run();
    assert_eq!(late.code, 6, "{}", late.stderr);

    // A new run (on purpose): the old abort is not its abort.
    let run2 = ion_plan()
        .args(["run", "--once", "--restart"])
        .arg(&path)
        .run();
    assert_eq!(
        run2.code, 4,
        "run 2 was aborted by run 1's abort: {}",
        run2.stderr
    );
    assert_eq!(status(&path)["requests"], serde_json::json!([]));
    // An approval recorded for run 2, then a third run: run 3 does not take it.
    let approve = ion_plan().arg("approve").arg(&path).run();
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let run3 = ion_plan()
        .args(["run", "--once", "--restart"])
        .arg(&path)
        .run();
    assert_eq!(run3.code, 4, "run 3 took run 2's approval: {}", run3.stderr);
    let pending = status(&path);
    assert_eq!(pending["requests"], serde_json::json!([]), "{pending}");
    assert_eq!(pending["approval"]["stage"], "half");
}

#[test]
fn approving_a_stage_that_is_not_waiting_is_refused_and_ahead_is_kept_for_it() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 800ms", "    approval: {}"));
    // No run yet.
    let early = ion_plan()
        .args(["approve", "--stage", "full"])
        .arg(&path)
        .run();
    assert_eq!(early.code, 6, "{}", early.stderr);
    assert_eq!(once(&path).code, 5, "half bakes");
    for args in [vec!["--stage", "full"], vec![], vec!["--stage", "half"]] {
        let refused = ion_plan().arg("approve").args(&args).arg(&path).run();
        assert_eq!(refused.code, 6, "{args:?}: {}", refused.stderr);
        assert!(refused.stderr.contains("waiting"), "{}", refused.stderr);
    }
    let nope = ion_plan()
        .args(["approve", "--stage", "nope", "--ahead"])
        .arg(&path)
        .run();
    assert_eq!(nope.code, 6, "{}", nope.stderr);
    let ahead = ion_plan()
        .args(["approve", "--stage", "full", "--ahead", "--by", "sena"])
        .arg(&path)
        .run();
    assert_eq!(ahead.code, 0, "{}", ahead.stderr);
    assert!(
        status(&path)["requests"][0]["request"]
            .as_str()
            .unwrap()
            .contains("when it asks")
    );
    let mut code = 5;
    for _ in 0..60 {
        code = once(&path).code;
        if code != 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(code, 0, "full took its pre-approval");
    assert_eq!(log(dir.path()), ["shift-50", "shift-100"]);
    let approved: Vec<(String, String)> = events(dir.path())
        .into_iter()
        .filter_map(|e| match e {
            Event::Approved { stage, by, .. } => Some((stage, by)),
            _ => None,
        })
        .collect();
    assert_eq!(approved, [("full".to_owned(), "sena".to_owned())]);
}

#[test]
fn an_abort_comes_before_a_pending_approval_in_once() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 0s\n    approval: {}", ""));
    let waiting = once(&path);
    assert_eq!(waiting.code, 4);
    // Outside a terminal it says how to answer, and where the report is.
    let approve_hint = format!("`ion-plan approve {}`", path.display());
    assert!(waiting.stderr.contains(&approve_hint), "{}", waiting.stderr);
    assert!(
        waiting.stderr.contains("then `ion-plan run --once"),
        "{}",
        waiting.stderr
    );
    assert!(
        waiting.stderr.contains("report: ion-plan report"),
        "{}",
        waiting.stderr
    );
    assert_eq!(ion_plan().arg("approve").arg(&path).run().code, 0);
    let abort = ion_plan()
        .args(["abort", "--reason", "stop"])
        .arg(&path)
        .run();
    assert_eq!(abort.code, 0);
    assert_eq!(once(&path).code, 3);
    assert_eq!(
        log(dir.path()),
        ["shift-50", "rollback"],
        "traffic moved after the abort"
    );
    assert!(!kinds(dir.path()).contains(&"approved".to_owned()));
}

#[test]
fn status_tells_an_interrupted_run_from_a_running_one_and_an_ended_one_from_both() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 1s", ""));
    // The runner dies right after its first check is journaled (event 5 here).
    let crashed = ion_plan()
        .arg("run")
        .arg(&path)
        .env("ION_PLAN_CRASH_AFTER_EVENT", "6")
        .run();
    assert_ne!(crashed.code, 0);
    std::thread::sleep(Duration::from_millis(1200));
    let interrupted = status(&path);
    assert_eq!(interrupted["state"], "interrupted", "{interrupted}");
    assert_eq!(interrupted["runner"], Value::Null);
    assert_eq!(interrupted["next"]["overdue"], true, "{interrupted}");
    let text = ion_plan().arg("status").arg(&path).run().stdout;
    assert!(text.contains("overdue"), "{text}");

    // Resumed and rolled back (an abort): traffic is back at 0, no clock runs, nobody waits.
    let abort = ion_plan()
        .args(["abort", "--reason", "enough"])
        .arg(&path)
        .run();
    assert_eq!(abort.code, 0, "{}", abort.stderr);
    assert_eq!(ion_plan().arg("run").arg(&path).run().code, 3);
    let ended = status(&path);
    assert_eq!(ended["state"], "aborted");
    assert_eq!(ended["traffic"], 0.0);
    assert_eq!(ended["time_in_stage"], Value::Null);
    assert_eq!(ended["approval"], Value::Null);
    assert_eq!(ended["next"], Value::Null);
    assert!(ended["ended_at"].is_string());
    let text = ion_plan().arg("status").arg(&path).run().stdout;
    assert!(!text.contains("traffic, for"), "{text}");
    assert!(text.contains("traffic: 0%"), "{text}");
    assert_eq!(log(dir.path()), ["shift-50", "rollback"]);
}

/// A plan whose only stage runs `step` (a shell line, `sh -c`), non-idempotent.
fn step_plan(step: &str, timeout: &str) -> String {
    format!(
        "\
version: 1
name: steps
stages:
  - name: only
    traffic: 100
    bake: 0s
    steps:
      - run: [sh, -c, {step:?}]
        timeout: {timeout}
rollback:
  - run: [./log.sh, rollback]
"
    )
}

fn pgid_of_step(dir: &Path) -> i32 {
    let pgid = events(dir)
        .into_iter()
        .find_map(|e| match e {
            Event::StepStarted { pgid, .. } => Some(pgid),
            _ => None,
        })
        .expect("a step_started event");
    i32::try_from(pgid.expect("step_started records the group")).unwrap()
}

fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 3 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

#[test]
fn a_step_that_times_out_takes_its_grandchildren_with_it() {
    let (dir, path) = setup(&step_plan(
        "(sleep 1; echo late >> late.txt) & wait",
        "300ms",
    ));
    let output = ion_plan()
        .args(["run", "--kill-grace", "2s"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 3, "{}", output.stderr);
    assert_eq!(log(dir.path()), ["rollback"]);
    let pgid = pgid_of_step(dir.path());
    assert!(!group_alive(pgid), "the step's group outlived it");
    std::thread::sleep(Duration::from_millis(1300));
    assert!(
        !dir.path().join("late.txt").exists(),
        "a grandchild wrote after the rollback"
    );
}

fn spawn(path: &Path, args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ion-plan"))
            .arg("run")
            .args(args)
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn journal_has(dir: &Path, kind: &str) -> bool {
    dir.join(".ion-plan").exists()
        && !journals(&dir.join(".ion-plan")).is_empty()
        && kinds(dir).iter().any(|k| k == kind)
}

#[test]
fn sigterm_to_the_runner_ends_the_step_group_and_leaves_the_step_to_the_operator() {
    let (dir, path) = setup(&step_plan(
        "sleep 30 & sleep 30; echo done >> done.txt",
        "1m",
    ));
    let mut runner = spawn(&path, &["--kill-grace", "1s"]);
    wait_for("the step to start", || {
        journal_has(dir.path(), "step_started")
    });
    let pgid = pgid_of_step(dir.path());
    wait_for("the step's group", || group_alive(pgid));
    common::signal(&runner.0, "TERM");
    let status = runner.0.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(!group_alive(pgid), "the step's group outlived the runner");
    assert!(!kinds(dir.path()).contains(&"step_finished".to_owned()));
    // The step never finished and is not idempotent: the operator decides.
    let resumed = ion_plan().arg("run").arg(&path).run();
    assert_eq!(resumed.code, 6, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("--retry-step"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn a_resumed_run_waits_for_the_interrupted_steps_group_before_asking_the_operator() {
    let (dir, path) = setup(&step_plan("sleep 1.5; echo done >> done.txt", "1m"));
    let mut runner = spawn(&path, &[]);
    wait_for("the step to start", || {
        journal_has(dir.path(), "step_started")
    });
    let pgid = pgid_of_step(dir.path());
    wait_for("the step's group", || group_alive(pgid));
    runner.0.kill().unwrap();
    runner.0.wait().unwrap();
    assert!(group_alive(pgid), "the step dies with a SIGKILLed runner");
    // At once: the new runner must not ask before the step's group has ended.
    let resumed = ion_plan().arg("run").arg(&path).run();
    assert_eq!(resumed.code, 6, "{}", resumed.stderr);
    assert_eq!(
        lines(&dir.path().join("done.txt")),
        ["done"],
        "the operator was asked while the step still ran"
    );
    assert!(kinds(dir.path()).contains(&"step_still_running".to_owned()));
    assert!(resumed.stdout.contains("still runs"), "{}", resumed.stdout);
}

#[test]
fn a_symlink_in_the_state_folder_is_never_followed() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 0s\n    approval: {}", ""));
    let state = dir.path().join(".ion-plan");
    std::fs::create_dir(&state).unwrap();
    let precious = write(dir.path(), "precious.txt", "keep me");
    std::os::unix::fs::symlink(&precious, state.join("plan.lock")).unwrap();
    let output = once(&path);
    assert_ne!(output.code, 0);
    assert!(output.stderr.contains("plan.lock"), "{}", output.stderr);
    assert!(output.stderr.contains("symbolic link"), "{}", output.stderr);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(!dir.path().join("log.txt").exists(), "it ran anyway");

    // A symlinked inbox: `approve` does not append to its target.
    std::fs::remove_file(state.join("plan.lock")).unwrap();
    assert_eq!(once(&path).code, 4);
    std::os::unix::fs::symlink(&precious, state.join("plan.inbox.jsonl")).unwrap();
    let approve = ion_plan().arg("approve").arg(&path).run();
    assert_ne!(approve.code, 0);
    assert!(
        approve.stderr.contains("symbolic link"),
        "{}",
        approve.stderr
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    std::fs::remove_file(state.join("plan.inbox.jsonl")).unwrap();

    // A state folder others may write to is refused, and so is a symlinked one.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let loose = once(&path);
    assert_eq!(loose.code, 6, "{}", loose.stderr);
    assert!(
        loose.stderr.contains("writable by group or others"),
        "{}",
        loose.stderr
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(&state, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &state).unwrap();
    let linked = once(&path);
    assert_eq!(linked.code, 6, "{}", linked.stderr);
    assert!(linked.stderr.contains("symbolic link"), "{}", linked.stderr);
    assert_eq!(log(dir.path()), ["shift-50"]);
}

#[test]
fn deleting_the_lock_file_does_not_let_a_second_runner_take_the_run() {
    // A runner quiet in a bake (no checks): deleting its lock file does not let a second
    // runner append to the same run — the journal itself is locked.
    let quiet = "version: 1\nname: quiet\nstages:\n  - { name: half, traffic: 50, bake: 30s, steps: [{ run: [./log.sh, shift-50] }] }\n";
    let (dir, path) = setup(quiet);
    let mut first = spawn(&path, &[]);
    wait_for("the stage to start", || {
        journal_has(dir.path(), "step_finished")
    });
    std::fs::remove_file(dir.path().join(".ion-plan/plan.lock")).unwrap();
    let second = ion_plan().arg("run").arg(&path).run();
    assert_eq!(second.code, 6, "{}", second.stderr);
    assert!(
        second.stderr.contains("one runner per run"),
        "{}",
        second.stderr
    );
    common::signal(&first.0, "TERM");
    first.0.wait().unwrap();
    assert_eq!(log(dir.path()), ["shift-50"]);

    // A runner that checks: it notices at its next event that its lock file is gone, and
    // stops before any further effect (exit 6).
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 30s", ""));
    let mut first = spawn(&path, &[]);
    wait_for("the first check", || {
        journal_has(dir.path(), "check_started")
    });
    std::fs::remove_file(dir.path().join(".ion-plan/plan.lock")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the first runner went on");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(6));
    let mut stderr = String::new();
    std::io::Read::read_to_string(first.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("lock file"), "{stderr}");
    // One runner wrote: sequence numbers 1, 2, 3… without repeats.
    let journal = journals(&dir.path().join(".ion-plan")).pop().unwrap();
    let seqs: Vec<u64> = lines(&journal)
        .iter()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_journal_without_a_header_is_no_run() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 0s", ""));
    let state = dir.path().join(".ion-plan");
    std::fs::create_dir(&state).unwrap();
    // What a full disk left behind: a journal file with nothing in it.
    write(&state, "plan-20990101T000000Z-0000.jsonl", "");
    let status = ion_plan().arg("status").arg(&path).run();
    assert_ne!(status.code, 6, "{}", status.stderr);
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stderr.contains("no header"), "{}", output.stderr);
    assert_eq!(log(dir.path()), ["shift-50", "shift-100"]);
    let restart = ion_plan().args(["run", "--restart"]).arg(&path).run();
    assert_eq!(restart.code, 0, "{}", restart.stderr);
}

#[test]
fn a_long_downtime_is_recorded_as_a_count_and_a_range_on_one_short_line() {
    let server = stats_server();
    // 43,200 checks in the bake (a stage may have 100,000 at most).
    let plan = plan(&server, "    bake: 12h", "").replace("every: 200ms", "every: 1s");
    let (dir, path) = setup(&plan);
    // Crash right after the stage's first check is journaled.
    let crashed = ion_plan()
        .arg("run")
        .arg(&path)
        .env("ION_PLAN_CRASH_AFTER_EVENT", "6")
        .run();
    assert_ne!(crashed.code, 0);
    // Six hours of downtime: move every recorded time back by six hours.
    let journal = journals(&dir.path().join(".ion-plan")).pop().unwrap();
    let shifted: Vec<String> = lines(&journal)
        .iter()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            for key in ["at", "created"] {
                if let Some(at) = value[key].as_str() {
                    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap()
                        - chrono::Duration::hours(6);
                    value[key] = Value::String(at.to_rfc3339());
                }
            }
            value.to_string()
        })
        .collect();
    std::fs::write(&journal, format!("{}\n", shifted.join("\n"))).unwrap();
    let resumed = once(&path);
    assert_eq!(resumed.code, 5, "{}", resumed.stderr);
    let line = lines(&journal)
        .into_iter()
        .find(|l| l.contains("checks_missed"))
        .expect("a checks_missed event");
    assert!(line.len() < 400, "{} bytes: {line}", line.len());
    let missed = &serde_json::from_str::<Value>(&line).unwrap()["event"]["checks_missed"];
    let count = missed["count"].as_u64().unwrap();
    assert!((21_500..=21_601).contains(&count), "{missed}");
    assert!(missed["last"].as_f64().unwrap() > 21_599.0, "{missed}");
}

#[test]
fn var_overrides_reach_the_run_its_digest_and_its_journal() {
    let plan = "\
version: 1
name: vars
vars: { tag: v1 }
stages:
  - name: only
    traffic: 100
    bake: 0s
    steps: [{ run: [./log.sh, \"deploy-${{ vars.tag }}\"] }]
";
    let (dir, path) = setup(plan);
    let dry = ion_plan()
        .args(["run", "--dry-run", "--var", "tag=v2"])
        .arg(&path)
        .run();
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("deploy-v2"), "{}", dry.stdout);
    let run = ion_plan().args(["run", "--var", "tag=v2"]).arg(&path).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let journal = journals(&dir.path().join(".ion-plan")).pop().unwrap();
    let header: Value = serde_json::from_str(&lines(&journal)[0]).unwrap();
    assert_eq!(header["vars"], serde_json::json!([["tag", "v2"]]));
    // The same overrides: the same release, which has ended.
    let again = ion_plan().args(["run", "--var", "tag=v2"]).arg(&path).run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    // Another value is another release: a new run.
    let next = ion_plan().args(["run", "--var", "tag=v3"]).arg(&path).run();
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_eq!(log(dir.path()), ["deploy-v2", "deploy-v3"]);
    // A var the plan does not have is a finding, not a silent no-op.
    let typo = ion_plan()
        .args(["validate", "--var", "tga=v4", "--format", "json"])
        .arg(&path)
        .run();
    assert_eq!(typo.code, 2, "{}", typo.stdout);
    assert!(typo.stdout.contains("unknown-var"), "{}", typo.stdout);
    assert!(typo.stdout.contains("its vars: tag"), "{}", typo.stdout);
}

#[test]
fn without_user_a_request_is_signed_by_the_uid_name() {
    let server = stats_server();
    let (dir, path) = setup(&plan(&server, "    bake: 0s\n    approval: {}", ""));
    assert_eq!(once(&path).code, 4);
    let approve = ion_plan()
        .arg("approve")
        .arg(&path)
        .env_remove("USER")
        .run();
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let inbox = lines(&dir.path().join(".ion-plan/plan.inbox.jsonl"));
    let entry: Value = serde_json::from_str(&inbox[0]).unwrap();
    let me = Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_owned();
    assert_eq!(entry["by"], me.as_str());
    assert_ne!(entry["by"], "unknown");
}

#[test]
fn a_command_probe_that_times_out_takes_its_grandchildren_with_it() {
    let plan = "\
version: 1
name: probe
probes:
  slow:
    command: [sh, -c, \"(sleep 1; echo late >> late.txt) & sleep 30\"]
    timeout: 300ms
preflight:
  - { name: slow answers, probe: slow }
stages:
  - { name: only, traffic: 100, bake: 0s }
";
    let (dir, path) = setup(plan);
    let output = ion_plan()
        .args(["run", "--kill-grace", "2s"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 3, "{}", output.stderr);
    assert!(output.stdout.contains("timed out"), "{}", output.stdout);
    std::thread::sleep(Duration::from_millis(1300));
    assert!(
        !dir.path().join("late.txt").exists(),
        "the probe's grandchild outlived it"
    );
}

#[test]
fn an_abort_between_two_attempts_of_a_step_stops_the_retries() {
    let plan = "\
version: 1
name: retry
stages:
  - name: only
    traffic: 100
    bake: 0s
    steps: [{ run: [sh, -c, \"echo attempt >> attempts.txt; exit 1\"], retries: 3 }]
rollback:
  - run: [./log.sh, rollback]
";
    let (dir, path) = setup(plan);
    let mut runner = spawn(&path, &[]);
    wait_for("the first attempt", || {
        journal_has(dir.path(), "step_finished")
    });
    let abort = ion_plan()
        .args(["abort", "--reason", "stop it"])
        .arg(&path)
        .run();
    assert_eq!(abort.code, 0, "{}", abort.stderr);
    assert_eq!(runner.0.wait().unwrap().code(), Some(3));
    assert_eq!(lines(&dir.path().join("attempts.txt")), ["attempt"]);
    assert_eq!(log(dir.path()), ["rollback"]);
    let ended = status(&path);
    assert_eq!(ended["state"], "aborted", "{ended}");
}
