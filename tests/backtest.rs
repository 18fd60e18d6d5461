//! `ion-plan backtest` (README, "Backtest"): real journals, recorded by scenario runs of the real
//! binary, judged again by plans that changed; exit codes, the first difference, the undecided
//! rule, journals of another shape, broken journals, and that it runs nothing.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::{Output, ion_plan, write};

/// A plan with one command probe (`app`, never run here) and two stages; `guard` as given.
fn plan(guard: &str, extra_stage: &str) -> String {
    format!(
        "\
version: 1
name: backtested
probes:
  app:
    command: [./app-metrics.sh]
gates:
  guard:
    at: every_check
    require:
{guard}
    on_fail: rollback
defaults:
  steps:
    - run: [./shift.sh, \"${{{{ stage.traffic }}}}\"]
  checks: {{ every: 1m, probes: [app] }}
  gates: [guard]
stages:
  - name: first
    traffic: 10
    bake: 10m
    approval: {{ timeout: 1h }}
  - name: last
    traffic: 100
    bake: 10m
{extra_stage}rollback:
  - run: [./rollback.sh]
"
    )
}

const GUARD: &str = "      - check: app.error_rate <= 1%\n        consecutive: 2\n";

/// Error rate 0.3% throughout; the first stage approved after 2m.
const CLEAN: &str = "metrics: { app.error_rate: 0.3%, app.memory: 40% }\napprovals:\n  first: { after: 2m, by: ana }\n";

/// Error rate 2% from 3m into the last stage: the guard rolls back at its 4th check.
const REGRESSION: &str = "metrics: { app.error_rate: 0.3%, app.memory: 40% }\napprovals:\n  first: { after: 2m }\nchanges:\n  - stage: last\n    from: 3m\n    metrics: { app.error_rate: 2% }\n";

/// A folder with a plan, and a state folder beside it.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        // Validation wants the scripts to exist; nothing runs them.
        for script in ["app-metrics.sh", "shift.sh", "rollback.sh"] {
            write(dir.path(), script, "#!/bin/sh\nexit 1\n");
        }
        write(dir.path(), "plan.yaml", plan(GUARD, ""));
        Bench { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// Runs `plan.yaml` on `scenario` and keeps its events as a journal in the state folder,
    /// named as `run` names journals (`plan-RUNID.jsonl`): the records are what a run writes.
    fn record(&self, scenario: &str) -> PathBuf {
        let scenario_path = write(
            self.dir.path(),
            "scenario.yaml",
            format!("version: 1\n{scenario}"),
        );
        let output = ion_plan()
            .arg("run")
            .arg(self.path("plan.yaml"))
            .arg("--scenario")
            .arg(&scenario_path)
            .arg("--json")
            .run();
        assert!(output.code != 1 && output.code != 2, "{}", output.stderr);
        common::journal_from_scenario(&output.stdout, "plan.yaml", &self.state(), "plan")
    }

    /// `backtest PLAN --state-dir STATE [ARGS…] --format json`, with a plan written as `name`.
    fn backtest(&self, name: &str, plan: &str, args: &[&Path]) -> (Output, serde_json::Value) {
        let path = write(self.dir.path(), name, plan);
        let output = ion_plan()
            .arg("backtest")
            .arg(&path)
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .args(["--format", "json"])
            .run();
        let json = if output.code == 0 || output.code == 3 {
            output.json()
        } else {
            serde_json::Value::Null
        };
        (output, json)
    }
}

#[test]
fn the_same_plan_flips_nothing() {
    let bench = Bench::new();
    bench.record(CLEAN);
    bench.record(REGRESSION);
    // No JOURNAL: every run of the plan in the state folder.
    let (output, json) = bench.backtest("plan.yaml", &plan(GUARD, ""), &[]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let mut outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["recorded"]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["completed", "rolled_back"]);
    for run in runs {
        let keys: Vec<&String> = run.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "first_difference",
                "flipped",
                "journal",
                "now",
                "recorded",
                "run_id",
                "skipped"
            ]
        );
        assert!(run["run_id"].as_str().unwrap().len() > 20);
        assert!(run["journal"].as_str().unwrap().ends_with(".jsonl"));
        assert_eq!(run["recorded"]["outcome"], run["now"]["outcome"]);
        assert_eq!(run["flipped"], false);
        assert!(run["first_difference"].is_null(), "{run}");
        assert_eq!(run["skipped"], serde_json::json!([]));
    }
}

#[test]
fn a_stricter_threshold_flips_a_completed_run_and_names_the_first_difference() {
    let bench = Bench::new();
    let journal = bench.record(CLEAN);
    let stricter = plan(&GUARD.replace("<= 1%", "<= 0.1%"), "");
    let (output, json) = bench.backtest("stricter.yaml", &stricter, &[&journal]);
    assert_eq!(output.code, 3, "{}{}", output.stdout, output.stderr);
    let run = &json["runs"][0];
    assert_eq!(run["recorded"]["outcome"], "completed");
    assert_eq!(run["now"]["outcome"], "rolled_back");
    assert_eq!(run["now"]["stage"], "first");
    assert_eq!(run["flipped"], true);
    assert_eq!(run["journal"], journal.display().to_string());
    let first = &run["first_difference"];
    assert_eq!(first["stage"], "first");
    assert_eq!(first["check"], 1);
    assert_eq!(first["offset"], 60.0);
    assert_eq!(first["gate"], "guard");
    assert_eq!(first["condition"], "app.error_rate <= 0.1%");
    assert_eq!(first["condition_then"], "app.error_rate <= 1%");
    assert_eq!(first["recorded"], "pass");
    assert_eq!(first["now"], "violation");
    assert_eq!(first["values"]["value"], 0.003);
    assert_eq!(first["values"]["threshold_then"], 0.01);
    assert_eq!(first["values"]["threshold_now"], 0.001);

    // The same, for a person: one line per fact.
    let human = ion_plan()
        .arg("backtest")
        .arg(bench.path("stricter.yaml"))
        .arg(&journal)
        .run();
    assert_eq!(human.code, 3);
    assert!(
        human.stdout.contains("recorded: completed\n"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("now:      rolled_back in `first`"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("first difference: stage `first`, check 1 (at 1m), gate `guard`, `app.error_rate <= 0.1%` (was `app.error_rate <= 1%`): value 0.3%, threshold 1% then, 0.1% now; recorded pass, now violation\n"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("1 run backtested, 1 outcome flipped"));
}

#[test]
fn a_looser_plan_on_a_rolled_back_run_is_undecided_and_that_flips() {
    let bench = Bench::new();
    let journal = bench.record(REGRESSION);
    let looser = plan(&GUARD.replace("<= 1%", "<= 5%"), "");
    let (output, json) = bench.backtest("looser.yaml", &looser, &[&journal]);
    assert_eq!(output.code, 3, "{}{}", output.stdout, output.stderr);
    let run = &json["runs"][0];
    assert_eq!(run["recorded"]["outcome"], "rolled_back");
    assert_eq!(run["recorded"]["by_gate"], true);
    assert_eq!(run["now"]["outcome"], "undecided");
    // The guard fired at the last stage's 4th check (its 2nd violation in a row); the samples
    // end there.
    assert_eq!(
        run["now"]["reason"], "no samples past stage `last` check 4",
        "{run}"
    );
    assert_eq!(run["flipped"], true);
    let first = &run["first_difference"];
    assert_eq!(first["stage"], "last");
    assert_eq!(first["check"], 3);
    assert_eq!(first["recorded"], "violation");
    assert_eq!(first["now"], "pass");
}

#[test]
fn running_out_of_samples_after_an_abort_is_no_flip() {
    let bench = Bench::new();
    let journal = bench.record(
        "metrics: { app.error_rate: 0.3% }\napprovals:\n  first: { after: 2m }\nabort: { at: 15m, reason: customer complaints }\n",
    );
    let (output, json) = bench.backtest("plan.yaml", &plan(GUARD, ""), &[&journal]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let run = &json["runs"][0];
    assert_eq!(run["recorded"]["outcome"], "aborted");
    // The abort is not replayed: the plan goes on until the samples end.
    assert_eq!(run["now"]["outcome"], "undecided");
    assert_eq!(run["flipped"], false);
}

#[test]
fn a_journal_of_another_shape_is_judged_where_it_matches_and_says_what_it_skipped() {
    let bench = Bench::new();
    let journal = bench.record(CLEAN);
    // A new condition on a metric never recorded, and a new stage after the last.
    let guard = format!("{GUARD}      - app.latency <= 200ms\n");
    let reshaped = plan(
        &guard,
        "  - name: after-last\n    traffic: 100\n    bake: 5m\n",
    )
    .replacen("traffic: 100", "traffic: 50", 1);
    let (output, json) = bench.backtest("reshaped.yaml", &reshaped, &[&journal]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let run = &json["runs"][0];
    let skipped: Vec<&str> = run["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "stage `after-last`: in the plan, not recorded (undecided from there)",
            "gate `guard`, `app.latency <= 200ms`: `app.latency` never recorded",
        ]
    );
    // Judged on what matches: the first two stages as recorded, then no samples.
    assert_eq!(run["now"]["outcome"], "undecided");
    assert_eq!(run["now"]["reason"], "no samples in stage `after-last`");
    assert_eq!(run["flipped"], false);
    assert!(run["first_difference"].is_null(), "{run}");

    // A gate all of whose conditions read what was never recorded judges nothing.
    let (output, json) = bench.backtest(
        "unrecorded.yaml",
        &plan("      - app.latency <= 200ms\n", ""),
        &[&journal],
    );
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert_eq!(json["runs"][0]["now"]["outcome"], "completed");

    // A preflight probe the recorded run never took: left out, not undecided.
    let preflighted = plan(GUARD, "").replace(
        "rollback:\n",
        "preflight:\n  - { name: app is up, probe: app, require: [app.error_rate < 1%] }\nrollback:\n",
    );
    let (output, json) = bench.backtest("preflighted.yaml", &preflighted, &[&journal]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert_eq!(json["runs"][0]["now"]["outcome"], "completed");
    assert_eq!(
        json["runs"][0]["skipped"],
        serde_json::json!(["preflight `app is up`: probe `app` not recorded in preflight"])
    );

    // A recorded stage the plan no longer has.
    let renamed = plan(GUARD, "").replace("name: last", "name: final");
    let (_, json) = bench.backtest("renamed.yaml", &renamed, &[&journal]);
    let skipped = json["runs"][0]["skipped"].as_array().unwrap();
    assert!(
        skipped.contains(&serde_json::json!(
            "stage `last`: recorded, not in the plan"
        )),
        "{skipped:?}"
    );
}

#[test]
fn a_broken_journal_is_an_error_that_names_the_file() {
    let bench = Bench::new();
    let journal = bench.record(CLEAN);
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[5] = "{\"seq\":5,\"at\":\"x\",\"event\":{\"sample_taken\":[1e999999]}}";
    let broken = write(
        bench.dir.path(),
        "broken.jsonl",
        format!("{}\n", lines.join("\n")),
    );
    let output = ion_plan()
        .arg("backtest")
        .arg(bench.path("plan.yaml"))
        .arg(&journal)
        .arg(&broken)
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stdout.is_empty(),
        "nothing judged: {}",
        output.stdout
    );
    assert!(
        output.stderr.starts_with(&format!(
            "error: journal `{}` line 6: not a journal record",
            broken.display()
        )),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("panicked"));

    // Instants at the end of chrono's time: judged on, never a panic.
    let late = text
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            for key in ["at", "created"] {
                if value.get(key).is_some() {
                    value[key] = "+262142-12-31T23:59:59Z".into();
                }
            }
            value.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let late = write(bench.dir.path(), "late.jsonl", format!("{late}\n"));
    let output = ion_plan()
        .arg("backtest")
        .arg(bench.path("plan.yaml"))
        .arg(&late)
        .run();
    assert!(output.code == 0 || output.code == 3, "{}", output.stderr);
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);

    // Not a journal at all, and one that is missing.
    let binary = write(bench.dir.path(), "binary.jsonl", [0xff_u8, 0, 1, b'\n']);
    let output = ion_plan()
        .arg("backtest")
        .arg(bench.path("plan.yaml"))
        .arg(&binary)
        .run();
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains(&format!("journal `{}` line 1", binary.display()))
    );
    let output = ion_plan()
        .arg("backtest")
        .arg(bench.path("plan.yaml"))
        .arg(bench.path("missing.jsonl"))
        .run();
    assert_eq!(output.code, 1);
    assert!(output.stderr.contains("missing.jsonl"), "{}", output.stderr);
}

#[test]
fn an_invalid_plan_gets_its_diagnostics_and_no_runs_is_said() {
    let bench = Bench::new();
    let invalid = plan(GUARD, "").replace("bake: 10m", "bake: ten minutes");
    let path = write(bench.dir.path(), "invalid.yaml", invalid);
    let output = ion_plan().arg("backtest").arg(&path).run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(output.stderr.contains("invalid.yaml:"), "{}", output.stderr);
    // A plan with no recorded run: said, exit 1.
    let output = ion_plan()
        .arg("backtest")
        .arg(bench.path("plan.yaml"))
        .arg("--state-dir")
        .arg(bench.state())
        .run();
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.contains("has no run yet"),
        "{}",
        output.stderr
    );
}

/// Safe on an untrusted branch, like `validate`: no program runs (probe, step, rollback), no
/// socket is opened (probe, step, notification), even when the plan rolls back.
#[test]
fn backtest_runs_nothing_and_connects_nowhere() {
    let bench = Bench::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let marker = bench.path("ran");
    let touch = format!("[touch, \"{}\"]", marker.display());
    let wired = |guard: &str| {
        plan(guard, "")
            .replace("[./app-metrics.sh]", &touch)
            .replace("[./shift.sh, \"${{ stage.traffic }}\"]", &touch)
            .replace("[./rollback.sh]", &touch)
            .replace(
                "rollback:\n",
                &format!(
                    "preflight:\n  - {{ name: p, run: {touch} }}\n  - name: h\n    http: {{ url: \"{url}/hook\", method: POST }}\nnotify:\n  - {{ url: \"{url}/notify\", on: [rolled_back, gate_failed, completed] }}\nrollback:\n  - http: {{ url: \"{url}/rollback\", method: POST }}\n"
                ),
            )
    };
    write(bench.dir.path(), "plan.yaml", wired(GUARD));
    let journal = bench.record(CLEAN);
    assert!(!marker.exists(), "the scenario run ran a command");
    let (output, json) = bench.backtest(
        "stricter.yaml",
        &wired(&GUARD.replace("<= 1%", "<= 0.1%")),
        &[&journal],
    );
    assert_eq!(output.code, 3, "{}{}", output.stdout, output.stderr);
    assert_eq!(json["runs"][0]["now"]["outcome"], "rolled_back");
    assert!(!marker.exists(), "backtest ran a command");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("backtest connected: {other:?}"),
    }
    // And it wrote nothing into the state folder.
    assert_eq!(common::journals(&bench.state()), [journal]);
}

/// A journal a live run wrote (real programs, real time, its checks' times jittered), found in
/// the state folder beside the plan, judged by the plan as it was and as it is changed.
#[test]
fn a_live_run_journal_is_found_beside_the_plan_and_judged() {
    let dir = tempfile::tempdir().unwrap();
    common::script(dir.path(), "metrics.sh", "echo '{\"error_rate\": 0.003}'");
    common::script(dir.path(), "shift.sh", "true");
    common::script(dir.path(), "rollback.sh", "true");
    common::script(dir.path(), "app-metrics.sh", "exec ./metrics.sh");
    let live = |guard: &str| {
        plan(guard, "")
            .replace("every: 1m", "every: 200ms")
            .replace("bake: 10m", "bake: 600ms")
            .replace("    approval: { timeout: 1h }\n", "")
    };
    let path = write(dir.path(), "plan.yaml", live(GUARD));
    let output = ion_plan().arg("run").arg(&path).run();
    assert_eq!(output.code, 0, "{}", output.stderr);

    let output = ion_plan().arg("backtest").arg(&path).run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert!(
        output
            .stdout
            .contains("recorded: completed\n  now:      completed\n  no decision differs\n"),
        "{}",
        output.stdout
    );

    // The same file, made stricter, as a pull request changes it.
    write(
        dir.path(),
        "plan.yaml",
        live(&GUARD.replace("<= 1%", "<= 0.2%")),
    );
    let output = ion_plan().arg("backtest").arg(&path).run();
    assert_eq!(output.code, 3, "{}{}", output.stdout, output.stderr);
    assert!(
        output.stdout.contains("now:      rolled_back in `first`"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("first difference: stage `first`, check 1 (at "),
        "{}",
        output.stdout
    );
}

/// A pause a person resumed is resumed again, as long after; a pause the recorded run never had
/// waits for nobody, and that flips the outcome.
#[test]
fn pauses_are_answered_as_they_were_and_a_new_pause_waits() {
    let bench = Bench::new();
    let pausing = plan(GUARD, "").replace("    on_fail: rollback", "    on_fail: pause");
    write(bench.dir.path(), "plan.yaml", &pausing);
    let journal = bench.record(
        "metrics: { app.error_rate: 0.3% }\napprovals:\n  first: { after: 2m }\nchanges:\n  - stage: first\n    from: 3m\n    until: 5m\n    metrics: { app.error_rate: 2% }\n",
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("\"paused\"") && text.contains("\"resumed\""),
        "{text}"
    );
    let (output, json) = bench.backtest("plan.yaml", &pausing, &[&journal]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert_eq!(json["runs"][0]["now"]["outcome"], "completed");
    assert!(json["runs"][0]["first_difference"].is_null());

    // Stricter: it pauses at once, where nobody answered.
    let stricter = pausing.replace("<= 1%", "<= 0.1%");
    let (output, json) = bench.backtest("stricter.yaml", &stricter, &[&journal]);
    assert_eq!(output.code, 3, "{}{}", output.stdout, output.stderr);
    let run = &json["runs"][0];
    assert_eq!(run["now"]["outcome"], "paused", "{run}");
    assert_eq!(run["now"]["by_gate"], true);
    assert_eq!(run["flipped"], true);
}
