//! Live runs of the real binary: real programs in a temp dir, a real HTTP server on 127.0.0.1,
//! the journal on disk. Bakes are zero or a few hundred milliseconds: time-based rules are
//! tested on simulated time in `run_scenarios.rs`.

mod common;

use std::net::TcpListener;
use std::path::Path;

use common::server::{fixed, serve};
use common::{ion_plan, lines, script, write};
use serde_json::Value;

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter_map(|e| e["event"].get(name)).collect()
}

/// A plan whose steps log to `log.txt` and whose probe is a program printing JSON.
fn steps_plan(stage_steps: &str, rollback: &str) -> String {
    format!(
        "\
version: 1
name: live
probes:
  app:
    command: [./metrics.sh]
gates:
  go:
    at: end
    require: [app.error_rate <= 1%]
defaults:
  steps:
{stage_steps}
  checks: {{ at: [0s], probes: [app] }}
  gates: [go]
stages:
  - {{ name: ten, traffic: 10, bake: 0s }}
  - {{ name: all, traffic: 100, bake: 0s }}
rollback:
{rollback}
"
    )
}

fn live_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "metrics.sh", "echo '{\"error_rate\": 0.001}'");
    script(dir.path(), "log.sh", "echo \"$*\" >> log.txt");
    dir
}

#[test]
fn steps_run_in_order_with_their_arguments_and_the_journal_records_them() {
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, shift, \"${{ stage.name }}\", \"${{ stage.traffic }}\"]\n    - run: [./log.sh, verify, \"${{ stage.traffic }}\"]",
        "  - run: [./log.sh, rollback]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert_eq!(
        lines(&dir.path().join("log.txt")),
        ["shift ten 10", "verify 10", "shift all 100", "verify 100"]
    );
    // The journal: a header, then the same events that were printed.
    let state = dir.path().join(".ion-plan");
    let mut files: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // The journal, the plan it started from (to explain a changed plan), and the lock.
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files[0].starts_with("plan-") && files[0].ends_with(".jsonl"),
        "{files:?}"
    );
    assert_eq!(files[1], files[0].replace(".jsonl", ".plan.yaml"));
    assert_eq!(files[2], "plan.lock");
    let journals = [state.join(&files[0])];
    let journal = lines(&journals[0]);
    let header: Value = serde_json::from_str(&journal[0]).unwrap();
    assert_eq!(header["format"], 1);
    assert!(header["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(journal.len() - 1, output.stdout.lines().count());
    assert!(output.stderr.contains("journal: "), "{}", output.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&journals[0]), 0o600);
    }
}

#[test]
fn a_failing_step_is_retried_then_rolls_back_with_its_exit_status() {
    let dir = live_dir();
    // Fails twice, then succeeds: with retries: 2 it passes on the third attempt.
    script(
        dir.path(),
        "flaky.sh",
        "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ] || { echo \"attempt $n failed\" >&2; exit 7; }",
    );
    let plan = steps_plan(
        "    - run: [./flaky.sh]\n      retries: 2",
        "  - run: [./log.sh, rollback]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}", output.stdout);
    let events = events(&output.stdout);
    let attempts: Vec<u64> = find(&events, "step_finished")
        .iter()
        .map(|s| s["attempt"].as_u64().unwrap())
        .collect();
    // Three attempts in `ten`, then one in `all` (the count is past 3).
    assert_eq!(attempts, [1, 2, 3, 1]);
    let first = find(&events, "step_finished")[0];
    assert_eq!(first["ok"], false);
    assert_eq!(first["detail"], "exit 7: attempt 1 failed");

    // Without retries the first failure rolls back.
    let dir = live_dir();
    script(dir.path(), "fail.sh", "echo boom >&2; exit 3");
    let plan = steps_plan("    - run: [./fail.sh]", "  - run: [./log.sh, rollback]");
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 3, "{}", output.stdout);
    assert_eq!(lines(&dir.path().join("log.txt")), ["rollback"]);
    assert!(output.stdout.contains("exit 3: boom"), "{}", output.stdout);
}

#[test]
fn a_step_past_its_timeout_is_killed_and_fails() {
    let dir = live_dir();
    script(dir.path(), "slow.sh", "sleep 30");
    let plan = steps_plan(
        "    - run: [./slow.sh]\n      timeout: 300ms",
        "  - run: [./log.sh, rollback]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 3);
    let events = events(&output.stdout);
    assert_eq!(
        find(&events, "step_finished")[0]["detail"],
        "timed out after 300ms (killed with its process group)"
    );
}

#[test]
fn a_failed_rollback_step_ends_failed_and_says_what_is_left() {
    let dir = live_dir();
    script(dir.path(), "fail.sh", "exit 1");
    let plan = steps_plan(
        "    - run: [./fail.sh]",
        "  - run: [./fail.sh, first]\n  - run: [./log.sh, second]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 1);
    assert!(
        output.stdout.contains("ROLLBACK FAILED"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("- ./fail.sh first\n    - ./log.sh second"),
        "{}",
        output.stdout
    );
    assert!(
        lines(&dir.path().join("log.txt")).is_empty(),
        "nothing after the failed step ran"
    );
}

#[test]
fn secrets_from_env_never_appear_in_output_or_the_journal() {
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, \"token=${{ env.ION_TEST_TOKEN }}\"]",
        "  - run: [./log.sh, rollback]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let secret = "s3cr3t-value-42";
    let output = ion_plan()
        .arg("run")
        .arg(&path)
        .env("ION_TEST_TOKEN", secret)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    // The program got the real value; nothing printed or stored has it.
    assert_eq!(
        lines(&dir.path().join("log.txt"))[0],
        format!("token={secret}")
    );
    assert!(output.stdout.contains("token=***"), "{}", output.stdout);
    assert!(!output.stdout.contains(secret));
    let state = dir.path().join(".ion-plan");
    for journal in std::fs::read_dir(state).unwrap() {
        let path = journal.unwrap().path();
        if !path.to_string_lossy().ends_with(".jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains(secret));
        assert!(text.contains("token=***"));
    }
}

#[test]
fn a_missing_env_variable_stops_the_run_before_anything_runs() {
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, \"${{ env.ION_TEST_UNSET_VARIABLE }}\"]",
        "  - run: [./log.sh, rollback]",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("ION_TEST_UNSET_VARIABLE"),
        "{}",
        output.stderr
    );
    assert!(!dir.path().join("log.txt").exists());
    assert!(!dir.path().join(".ion-plan").exists());
}

#[test]
fn an_http_probe_and_an_http_step_against_a_real_server() {
    let server = serve(fixed(
        200,
        r#"{"memory": {"used_ratio": 0.42}, "cpu": 0.3}"#,
    ));
    let dir = live_dir();
    let plan = format!(
        "\
version: 1
name: http
probes:
  stats:
    http:
      url: {stats}
      metrics: {{ memory: /memory/used_ratio, cpu: /cpu }}
gates:
  go:
    at: end
    require: [stats.memory <= 85%, stats.status == 200, stats.latency < 5s]
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - http: {{ method: POST, url: \"{weights}\", body: '{{\"canary\": ${{{{ stage.traffic }}}}}}', expect_status: 200 }}
    checks: {{ at: [0s], probes: [stats] }}
    gates: [go]
",
        stats = server.url("/stats.json"),
        weights = server.url("/weights"),
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let hits = server.hits();
    let post = hits
        .iter()
        .find(|h| h.path == "/weights")
        .expect("the step posted");
    assert_eq!(post.method, "POST");
    assert_eq!(post.body, r#"{"canary": 100}"#);
    let events = events(&output.stdout);
    let sample = &find(&events, "sample_taken")[0]["sample"];
    assert_eq!(sample["metrics"]["memory"]["value"], 0.42);
    assert_eq!(sample["metrics"]["status"]["value"], 200.0);
}

#[test]
fn a_probe_that_cannot_connect_is_an_error_sample_not_a_crash() {
    // A port that was just free: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = live_dir();
    let plan = format!(
        "\
version: 1
name: refused
probes:
  stats:
    http: {{ url: \"http://127.0.0.1:{port}/stats\", metrics: {{ m: /m }} }}
gates:
  go:
    at: end
    require: [stats.m <= 1]
stages:
  - {{ name: all, traffic: 100, bake: 0s, checks: {{ at: [0s], probes: [stats] }}, gates: [go] }}
rollback:
  - run: [./log.sh, rollback]
"
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    // The end gate cannot be decided: its error action (default: the gate's on_fail) rolls back.
    assert_eq!(output.code, 3, "{}", output.stdout);
    let events = events(&output.stdout);
    let error = find(&events, "sample_taken")[0]["sample"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("connection failed"), "{error}");
    assert_eq!(lines(&dir.path().join("log.txt")), ["rollback"]);
}

#[test]
fn once_stops_at_an_approval_with_exit_4_and_takes_it_next_time() {
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, shift]",
        "  - run: [./log.sh, rollback]",
    )
    .replace(
        "{ name: ten, traffic: 10, bake: 0s }",
        "{ name: ten, traffic: 10, bake: 0s, approval: {} }",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().args(["run", "--once"]).arg(&path).run();
    assert_eq!(output.code, 4, "{}", output.stdout);
    assert!(
        output.stdout.contains("waits for approval"),
        "{}",
        output.stdout
    );
    assert!(output.stderr.contains("resumable"), "{}", output.stderr);
    assert_eq!(lines(&dir.path().join("log.txt")), ["shift"]);
    // Still waiting: exit 4 again, and the step does not run twice.
    assert_eq!(ion_plan().args(["run", "--once"]).arg(&path).run().code, 4);
    let approve = ion_plan()
        .args(["approve", "--by", "alice"])
        .arg(&path)
        .run();
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let output = ion_plan().args(["run", "--once"]).arg(&path).run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert!(
        output.stdout.contains("approved by alice"),
        "{}",
        output.stdout
    );
    assert_eq!(lines(&dir.path().join("log.txt")), ["shift", "shift"]);
}

#[test]
fn checks_run_on_time_during_a_short_bake() {
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, shift]",
        "  - run: [./log.sh, rollback]",
    )
    .replace(
        "checks: { at: [0s], probes: [app] }",
        "checks: { every: 100ms, probes: [app] }",
    )
    .replace(
        "bake: 0s }\n  - { name: all",
        "bake: 300ms }\n  - { name: all",
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}", output.stdout);
    let events = events(&output.stdout);
    let offsets: Vec<f64> = find(&events, "check_started")
        .iter()
        .filter(|c| c["stage"] == "ten")
        .map(|c| c["offset"].as_f64().unwrap())
        .collect();
    assert_eq!(offsets.len(), 3, "{offsets:?}");
    // Each check starts at or after its scheduled offset (100ms, 200ms, 300ms).
    for (offset, scheduled) in offsets.iter().zip([0.1, 0.2, 0.3]) {
        assert!(*offset >= scheduled - 1e-3, "{offsets:?}");
    }
}

#[test]
fn notifications_are_posted_and_a_dead_webhook_does_not_fail_the_run() {
    let hook = serve(fixed(200, "ok"));
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = live_dir();
    let plan = steps_plan(
        "    - run: [./log.sh, shift]",
        "  - run: [./log.sh, rollback]",
    ) + &format!(
        "notify:\n  - url: {}\n    format: json\n    on: [stage_started, completed]\n  - url: http://127.0.0.1:{dead}/hook\n    format: slack\n",
        hook.url("/hook")
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let events: Vec<String> = hook
        .hits()
        .iter()
        .map(|h| {
            serde_json::from_str::<Value>(&h.body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(events.iter().filter(|e| *e == "stage_started").count(), 2);
    assert!(events.contains(&"completed".to_owned()), "{events:?}");
    assert!(
        output.stderr.contains("notification"),
        "the dead hook is logged: {}",
        output.stderr
    );
}

/// `run --dry-run` is safe: it runs no program and opens no socket.
#[test]
fn a_dry_run_executes_nothing_and_connects_nowhere() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = live_dir();
    let plan = format!(
        "\
version: 1
name: dry
probes:
  stats:
    http: {{ url: \"{url}/stats\", metrics: {{ m: /m }} }}
  app:
    command: [./log.sh, probe]
gates:
  go:
    at: end
    require: [stats.m <= 1]
preflight:
  - {{ name: stats up, probe: stats }}
  - {{ name: touch, run: [./log.sh, preflight] }}
stages:
  - name: all
    traffic: 100
    bake: 1h
    steps:
      - run: [./log.sh, step]
      - http: {{ method: POST, url: \"{url}/weights\" }}
    checks: {{ every: 10m, probes: [stats, app] }}
    gates: [go]
    approval: {{ timeout: 1h }}
rollback:
  - run: [./log.sh, rollback]
notify:
  - url: \"{url}/hook\"
"
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().args(["run", "--dry-run"]).arg(&path).run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert!(
        !dir.path().join("log.txt").exists(),
        "a dry run ran a program"
    );
    assert!(
        !dir.path().join(".ion-plan").exists(),
        "a dry run wrote a journal"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a dry run connected: {other:?}"),
    }
    // The timeline shows the steps as they would run, each check, the gate and the approval.
    for expected in [
        "all: step 1: ./log.sh step",
        &format!("all: step 2: POST {url}/weights"),
        "at +1h: stats, app",
        "gate go: stats.m <= 1",
        "all: waiting for approval until",
        "run ended: completed",
    ] {
        assert!(
            output.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            output.stdout
        );
    }
}

/// On a real terminal (a pseudo-terminal from `script`, util-linux), a live run draws its status
/// line under the event lines and redraws it every second; piped, it prints plain lines only.
#[test]
fn on_a_terminal_a_live_run_redraws_a_status_line() {
    let server = serve(fixed(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.yaml",
        format!(
            "\
version: 1
name: tty
probes:
  self:
    http: {{ url: \"{}\", timeout: 2s }}
gates:
  guard:
    at: every_check
    require:
      - check: self.status == 200
        consecutive: 2
stages:
  - {{ name: all, traffic: 100, bake: 3s, checks: {{ every: 1s, probes: [self] }}, gates: [guard] }}
",
            server.url("/")
        ),
    );
    let command = format!(
        "'{}' run '{}'",
        env!("CARGO_BIN_EXE_ion-plan"),
        plan.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // Event lines: the status line is cleared, the event printed, the status line drawn again.
    assert!(text.contains("\r\x1b[2K"), "{text:?}");
    assert!(
        text.contains("all: stage started, 100% traffic"),
        "{text:?}"
    );
    // The status line: stage, countdowns rounded up, each condition's value and streak.
    assert!(text.contains("all 100% · next check in 1s"), "{text:?}");
    assert!(text.contains("bake ends in 2s"), "{text:?}");
    assert!(text.contains("✓ self.status == 200 200 0/2"), "{text:?}");
    // Redrawn by the ticker on its own, not only under events: a clear followed by the status.
    assert!(text.contains("\r\x1b[2Kall 100% · "), "{text:?}");
    // Not on a terminal: plain lines, no control sequences.
    let piped = ion_plan().arg("run").arg("--restart").arg(&plan).run();
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert!(!piped.stdout.contains('\x1b'), "{:?}", piped.stdout);
    assert!(piped.stdout.contains("all: stage started, 100% traffic"));
}

/// On a terminal that asks for no colour (`NO_COLOR`) or cannot redraw (`TERM=dumb`), a live run
/// prints the plain lines it prints when piped: no status line, no control sequences.
#[test]
fn on_a_terminal_without_colour_or_redraw_a_live_run_prints_plain_lines() {
    let dir = live_dir();
    let plan = write(
        dir.path(),
        "plan.yaml",
        steps_plan(
            "    - run: [./log.sh, shift]",
            "  - run: [./log.sh, rollback]",
        ),
    );
    let command = format!(
        "'{}' run --restart '{}'",
        env!("CARGO_BIN_EXE_ion-plan"),
        plan.display()
    );
    for (key, value) in [("NO_COLOR", "1"), ("TERM", "dumb")] {
        let output = std::process::Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .env(key, value)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("`script` (util-linux)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{key}={value}: {text}");
        assert!(!text.contains('\x1b'), "{key}={value}: {text:?}");
        // The plain style: a full timestamp and the time since the start on each line.
        assert!(
            text.contains("Z      +0s  ten: stage started, 10% traffic"),
            "{key}={value}: {text:?}"
        );
    }
}
