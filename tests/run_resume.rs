//! Resumable runs: crashes at every event boundary and at random moments, a torn tail, a
//! corrupted middle, two runners, a changed plan, approve and abort from another process,
//! `--once` stepping a run to its end, SIGTERM, and `status` and `report`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::server::{TestServer, serve};
use common::{ion_plan, journals, lines, script, write};
use serde_json::Value;

fn stats_server() -> TestServer {
    serve(Router::new().route("/stats", get(|| async { r#"{"error_rate": 0.001}"# })))
}

/// Four stages, each with an idempotent shift, a non-idempotent migration and an idempotent
/// verification, a check, a guard and a GO gate; a preflight probe.
fn crash_plan(server: &TestServer) -> String {
    format!(
        "\
version: 1
name: crash
probes:
  stats:
    http: {{ url: \"{}\", metrics: {{ error_rate: /error_rate }} }}
gates:
  guard:
    at: every_check
    require:
      - check: stats.error_rate <= 1%
        consecutive: 2
  go:
    at: end
    require: [stats.error_rate <= 1%]
preflight:
  - {{ name: stats answer, probe: stats }}
defaults:
  steps:
    - run: [./log.sh, \"shift-${{{{ stage.name }}}}\"]
      idempotent: true
    - run: [./log.sh, \"migrate-${{{{ stage.name }}}}\"]
    - run: [./log.sh, \"verify-${{{{ stage.name }}}}\"]
      idempotent: true
  checks: {{ at: [0s], probes: [stats] }}
  gates: [guard, go]
stages:
  - {{ name: a, traffic: 10, bake: 0s }}
  - {{ name: b, traffic: 25, bake: 0s }}
  - {{ name: c, traffic: 50, bake: 0s }}
  - {{ name: d, traffic: 100, bake: 0s }}
rollback:
  - run: [./log.sh, rollback]
",
        server.url("/stats")
    )
}

fn setup(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "log.sh", "echo \"$*\" >> log.txt");
    let path = write(dir.path(), "plan.yaml", plan);
    (dir, path)
}

fn journal_text(dir: &Path) -> String {
    let journals = journals(&dir.join(".ion-plan"));
    std::fs::read_to_string(journals.last().unwrap()).unwrap()
}

/// Resumes until the run ends, deciding interrupted steps as an operator would: skip it if its
/// effect is there, run it again if not.
fn resume_to_end(dir: &Path, plan: &Path) -> i32 {
    common::resume_until_ended(
        |flags| ion_plan().arg("run").arg(plan).args(flags).run(),
        |stage| lines(&dir.join("log.txt")).contains(&format!("migrate-{stage}")),
        std::time::Duration::from_mins(1),
    )
    .code
}

fn assert_clean_end(dir: &Path) {
    let log = lines(&dir.join("log.txt"));
    for stage in ["a", "b", "c", "d"] {
        let migrations = log
            .iter()
            .filter(|l| **l == format!("migrate-{stage}"))
            .count();
        assert_eq!(
            migrations, 1,
            "migrate-{stage} ran {migrations} times: {log:?}"
        );
        assert!(log.contains(&format!("verify-{stage}")), "{log:?}");
    }
    assert!(!log.contains(&"rollback".to_owned()), "{log:?}");
}

#[test]
fn a_crash_at_every_event_boundary_resumes_to_the_same_end() {
    let server = stats_server();
    let plan = crash_plan(&server);
    // The uninterrupted run, for its event count.
    let (dir, path) = setup(&plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let events = output.stdout.lines().count() as u64;
    assert!(
        events >= 50,
        "only {events} events: crash points would be too few"
    );
    assert_clean_end(dir.path());

    for n in 1..=events {
        let (dir, path) = setup(&plan);
        let crashed = ion_plan()
            .arg("run")
            .arg(&path)
            .env("ION_PLAN_CRASH_AFTER_EVENT", n.to_string())
            .run();
        assert_ne!(crashed.code, 0, "crash point {n}: the run did not crash");
        let before = journal_text(dir.path());
        // A crash after the last event leaves a finished run: `run` would start a new one.
        if !before.contains("\"run_ended\"") {
            let code = resume_to_end(dir.path(), &path);
            assert_eq!(code, 0, "crash point {n}: resumed run ended {code}");
        }
        assert_clean_end(dir.path());
        let after = journal_text(dir.path());
        // Append-only: nothing journaled before the crash is lost or changed.
        assert!(
            after.starts_with(&before),
            "crash point {n}: the journal was rewritten"
        );
        let report = ion_plan()
            .args(["report", "--format=json"])
            .arg(&path)
            .run();
        assert_eq!(report.code, 0, "crash point {n}: {}", report.stderr);
        assert_eq!(report.json()["outcome"], "completed");
    }
}

#[test]
fn a_runner_killed_at_random_moments_resumes_exactly() {
    let server = stats_server();
    // Longer bakes so a kill lands in waits, steps and checks alike.
    let plan = crash_plan(&server)
        .replace("bake: 0s", "bake: 300ms")
        .replace(
            "checks: { at: [0s], probes: [stats] }",
            "checks: { every: 100ms, probes: [stats] }",
        );
    for i in 0..6u64 {
        let (dir, path) = setup(&plan);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ion-plan"))
            .arg("run")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 170 * i));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let code = resume_to_end(dir.path(), &path);
        assert_eq!(code, 0, "kill {i}");
        assert_clean_end(dir.path());
    }
}

/// `waiting_plan` whose first stage bakes for `bake` instead of 0s.
fn waiting_plan_baking(server: &TestServer, bake: &str) -> String {
    let first = "bake: 0s\n    steps: [{ run: [./log.sh, shift-50]";
    let plan = waiting_plan(server, "");
    assert!(
        plan.contains(first),
        "waiting_plan changed: update this helper"
    );
    plan.replace(
        first,
        &format!("bake: {bake}\n    steps: [{{ run: [./log.sh, shift-50]"),
    )
}

fn waiting_plan(server: &TestServer, extra: &str) -> String {
    format!(
        "\
version: 1
name: wait
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
    bake: 0s
    steps: [{{ run: [./log.sh, shift-50], idempotent: true }}]
    checks: {{ every: 200ms, probes: [stats] }}
    gates: [guard]
{extra}
  - name: full
    traffic: 100
    bake: 0s
    steps: [{{ run: [./log.sh, shift-100], idempotent: true }}]
rollback:
  - run: [./log.sh, rollback]
",
        server.url("/stats")
    )
}

fn spawn_run(path: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ion-plan"))
        .arg("run")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `status --json` says the run waits for a person.
fn wait_for_approval_request(path: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = ion_plan().args(["status", "--json"]).arg(path).run();
        if output.code == 0 {
            let status = output.json();
            if !status["approval"].is_null() {
                return status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the run never asked for approval"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut child = child;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            );
        }
        assert!(Instant::now() < deadline, "the runner did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn approve_from_another_process_is_taken_by_the_running_runner() {
    let server = stats_server();
    let (dir, path) = setup(&waiting_plan(&server, "    approval: { timeout: 1h }"));
    let runner = spawn_run(&path);
    let status = wait_for_approval_request(&path);
    assert_eq!(status["stage"], "half");
    assert_eq!(status["state"], "running");
    // A second runner is refused, naming the first.
    let second = ion_plan().arg("run").arg(&path).run();
    assert_eq!(second.code, 6, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("pid {}", runner.id())),
        "{}",
        second.stderr
    );
    let approve = ion_plan()
        .args(["approve", "--by", "sena", "--stage", "half"])
        .arg(&path)
        .run();
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let (code, stdout) = finish(runner);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("half: approved by sena"), "{stdout}");
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift-50", "shift-100"]
    );
    // The report says who approved.
    let report = ion_plan().args(["report", "--format=md"]).arg(&path).run();
    assert!(
        report.stdout.contains("| sena | approved |"),
        "{}",
        report.stdout
    );
}

#[test]
fn abort_from_another_process_rolls_back() {
    let server = stats_server();
    let (dir, path) = setup(&waiting_plan(&server, "    approval: {}"));
    let runner = spawn_run(&path);
    wait_for_approval_request(&path);
    let abort = ion_plan()
        .args(["abort", "--reason", "customer complaints"])
        .arg(&path)
        .run();
    assert_eq!(abort.code, 0, "{}", abort.stderr);
    let (code, stdout) = finish(runner);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("customer complaints"), "{stdout}");
    assert_eq!(lines(&dir.path().join("log.txt")), ["shift-50", "rollback"]);
    // Nothing to approve any more: refused as a state conflict, naming the ended run.
    let late = ion_plan().arg("approve").arg(&path).run();
    assert_eq!(late.code, 6, "{}", late.stderr);
    assert!(
        late.stderr.contains("has ended: aborted"),
        "{}",
        late.stderr
    );
}

#[test]
fn once_steps_a_run_to_its_end() {
    let server = stats_server();
    let plan = waiting_plan_baking(&server, "600ms");
    let (dir, path) = setup(&plan);
    let mut codes = Vec::new();
    for _ in 0..60 {
        let output = ion_plan().args(["run", "--once"]).arg(&path).run();
        codes.push(output.code);
        if output.code != 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(codes.first(), Some(&5), "{codes:?}");
    assert_eq!(codes.last(), Some(&0), "{codes:?}");
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift-50", "shift-100"]
    );
    let status = ion_plan()
        .args(["status", "--json"])
        .arg(&path)
        .run()
        .json();
    assert_eq!(status["state"], "completed");
}

#[test]
fn a_changed_plan_is_refused_with_what_changed_and_restart_starts_anew() {
    let server = stats_server();
    let plan = waiting_plan(&server, "    approval: {}");
    let (dir, path) = setup(&plan);
    assert_eq!(ion_plan().args(["run", "--once"]).arg(&path).run().code, 4);
    write(
        dir.path(),
        "plan.yaml",
        plan.replace("traffic: 50", "traffic: 40"),
    );
    let output = ion_plan().args(["run", "--once"]).arg(&path).run();
    assert_eq!(output.code, 6);
    assert!(
        output.stderr.contains("stage `half`: traffic 50% → 40%"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("--restart"), "{}", output.stderr);
    let output = ion_plan()
        .args(["run", "--once", "--restart"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 4, "{}", output.stderr);
    // Two journals now: the old one kept, marked superseded.
    assert_eq!(journals(&dir.path().join(".ion-plan")).len(), 2);
}

#[test]
fn a_torn_tail_is_dropped_with_a_warning_and_a_corrupted_middle_is_an_error() {
    let server = stats_server();
    let (dir, path) = setup(&waiting_plan(&server, "    approval: {}"));
    assert_eq!(ion_plan().args(["run", "--once"]).arg(&path).run().code, 4);
    let journal = journals(&dir.path().join(".ion-plan")).remove(0);
    let intact = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, format!("{intact}{{\"seq\":99,\"at\":\"20")).unwrap();
    let output = ion_plan().args(["run", "--once"]).arg(&path).run();
    assert_eq!(output.code, 4, "{}", output.stderr);
    assert!(
        output.stderr.contains("torn last line"),
        "{}",
        output.stderr
    );
    let repaired = std::fs::read_to_string(&journal).unwrap();
    assert!(repaired.starts_with(&intact) && !repaired.contains("\"seq\":99,\"at\":\"20\n"));
    // Corrupt line 3.
    let mut lines: Vec<&str> = repaired.lines().collect();
    lines[2] = "{\"seq\": \"garbage\"}";
    std::fs::write(&journal, format!("{}\n", lines.join("\n"))).unwrap();
    let output = ion_plan().args(["run", "--once"]).arg(&path).run();
    assert_eq!(output.code, 6, "{}", output.stderr);
    let flat = output
        .stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flat.contains("line 3:"), "{}", output.stderr);
}

#[test]
fn sigterm_leaves_the_run_resumable() {
    let server = stats_server();
    let plan = waiting_plan_baking(&server, "30s");
    let (dir, path) = setup(&plan);
    let runner = spawn_run(&path);
    // Wait until the first check is journaled (the state folder and the journal appear one
    // after the other: look for the journal itself).
    let deadline = Instant::now() + Duration::from_secs(20);
    let journaled = |dir: &Path| {
        let state = dir.join(".ion-plan");
        state.exists()
            && journals(&state)
                .last()
                .and_then(|j| std::fs::read_to_string(j).ok())
                .is_some_and(|text| text.contains("check_started"))
    };
    while !journaled(dir.path()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    common::signal(&runner, "TERM");
    let output = runner.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    assert!(String::from_utf8_lossy(&output.stderr).contains("resumable"));
    let status = ion_plan().args(["status", "--json"]).arg(&path).run();
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["stage"], "half");
}
