//! The decision rules (README, "Running plans"), each pinned by a scenario run of the real binary on
//! simulated time: every rule has a test that fails if the rule changes.

mod common;

use std::fmt::Write as _;

use common::{ion_plan, root, write};
use serde_json::Value;

/// A plan with one probe (`app`, a command that is never run in a scenario) and two stages.
fn plan(gates: &str, stage_extra: &str) -> String {
    format!(
        "\
version: 1
name: rules
probes:
  app:
    command: [./app-metrics.sh]
gates:
{gates}
defaults:
  steps:
    - run: [./shift.sh, \"${{{{ stage.traffic }}}}\"]
  checks: {{ every: 1m, probes: [app] }}
stages:
  - name: first
    traffic: 10
    bake: 10m
{stage_extra}
  - name: last
    traffic: 100
    bake: 10m
rollback:
  - run: [./rollback.sh]
"
    )
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stdout: String,
}

impl Run {
    fn names(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| {
                e["event"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    fn find(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter_map(|e| e["event"].get(name))
            .collect()
    }

    fn outcome(&self) -> String {
        self.find("run_ended")[0]["outcome"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The check number at which a gate last failed.
    fn failed_at_check(&self) -> Option<u64> {
        let position = self
            .events
            .iter()
            .rposition(|e| e["event"].get("gate_failed").is_some())?;
        self.events[..position].iter().rev().find_map(|e| {
            e["event"]
                .get("check_started")
                .map(|c| c["number"].as_u64().unwrap())
        })
    }
}

fn run(plan: &str, scenario: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app-metrics.sh", "#!/bin/sh\necho '{}'\n");
    write(dir.path(), "rollback.sh", "#!/bin/sh\n");
    write(dir.path(), "shift.sh", "#!/bin/sh\n");
    let plan_path = write(dir.path(), "plan.yaml", plan);
    let scenario_path = write(
        dir.path(),
        "scenario.yaml",
        format!("version: 1\n{scenario}"),
    );
    let output = ion_plan()
        .arg("run")
        .arg(&plan_path)
        .arg("--scenario")
        .arg(&scenario_path)
        .arg("--json")
        .run();
    assert!(
        output.stderr.is_empty() || output.code != 2,
        "invalid input: {}",
        output.stderr
    );
    let events = output
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !dir.path().join(".ion-plan").exists(),
        "a scenario run writes no journal"
    );
    Run {
        code: output.code,
        events,
        stdout: output.stdout,
    }
}

const GUARD3: &str = "  guard:
    at: every_check
    require:
      - check: app.error_rate <= 1%
        consecutive: 3
    on_error: { consecutive: 100 }";

/// Scenario values for `first`: one entry per check minute (1m..), `v` violation, `p` pass,
/// `e` error, `n` no data.
fn timeline(pattern: &str) -> String {
    let mut out = String::from("metrics:\n  app.error_rate: 0.1%\nchanges:\n");
    for (i, c) in pattern.chars().enumerate() {
        let value = match c {
            'v' => "5%",
            'p' => "0.1%",
            'e' => "error",
            'n' => "no_data",
            _ => unreachable!(),
        };
        let metric = if c == 'e' { "app" } else { "app.error_rate" };
        writeln!(
            out,
            "  - {{ stage: first, from: {}m, until: {}m, metrics: {{ {metric}: {value} }} }}",
            i + 1,
            i + 2
        )
        .unwrap();
    }
    out
}

#[test]
fn consecutive_fails_on_the_third_violation_in_a_row() {
    let r = run(&plan(GUARD3, "    gates: [guard]"), &timeline("vvv"));
    assert_eq!(r.outcome(), "rolled_back");
    assert_eq!(r.code, 3);
    assert_eq!(r.failed_at_check(), Some(3));
}

#[test]
fn a_pass_resets_the_streak() {
    let r = run(&plan(GUARD3, "    gates: [guard]"), &timeline("vvpvvv"));
    assert_eq!(r.failed_at_check(), Some(6));
    let r = run(&plan(GUARD3, "    gates: [guard]"), &timeline("vvpvvp"));
    assert_eq!(r.outcome(), "completed");
}

#[test]
fn an_error_neither_resets_nor_extends_the_streak() {
    // v v e v: the error does not reset, so the 4th check is the 3rd violation in a row.
    let r = run(&plan(GUARD3, "    gates: [guard]"), &timeline("vvev"));
    assert_eq!(r.failed_at_check(), Some(4));
    // v e e v: the errors do not extend either; two violations are two.
    let r = run(&plan(GUARD3, "    gates: [guard]"), &timeline("veevp"));
    assert_eq!(r.outcome(), "completed");
}

#[test]
fn within_fails_on_m_of_the_last_n_checks() {
    let gates = "  guard:
    at: every_check
    require:
      - check: app.error_rate <= 1%
        within: { violations: 2, checks: 4 }";
    let r = run(&plan(gates, "    gates: [guard]"), &timeline("vppv"));
    assert_eq!(r.failed_at_check(), Some(4));
    let r = run(&plan(gates, "    gates: [guard]"), &timeline("vpppv"));
    assert_eq!(r.outcome(), "completed");
}

#[test]
fn no_data_follows_its_policy() {
    let gate = |policy: &str| {
        format!(
            "  guard:
    at: every_check
    require:
      - check: app.error_rate <= 1%
        no_data: {policy}
    on_error: {{ consecutive: 2 }}"
        )
    };
    // fail: one no-data check is a violation, and one violation fails.
    let r = run(&plan(&gate("fail"), "    gates: [guard]"), &timeline("pn"));
    assert_eq!(r.failed_at_check(), Some(2));
    // pass: no data passes.
    let r = run(
        &plan(&gate("pass"), "    gates: [guard]"),
        &timeline("nnnn"),
    );
    assert_eq!(r.outcome(), "completed");
    // error (the default): two in a row reach on_error's limit.
    let r = run(
        &plan(&gate("error"), "    gates: [guard]"),
        &timeline("pnn"),
    );
    assert_eq!(r.failed_at_check(), Some(3));
    let failed = &r.find("gate_failed")[0];
    assert!(
        failed["reason"].as_str().unwrap().contains("no data"),
        "{failed}"
    );
}

#[test]
fn on_error_takes_its_action_after_k_errors_in_a_row() {
    let gates = "  guard:
    at: every_check
    require: [app.error_rate <= 1%]
    on_fail: rollback
    on_error: { consecutive: 3, then: warn }";
    let r = run(&plan(gates, "    gates: [guard]"), &timeline("eee"));
    let failed = r.find("gate_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["action"], "warn");
    // warn records it and goes on: the run completes.
    assert_eq!(r.outcome(), "completed");
    // Two errors, a clean check, two errors: never three in a row.
    let r = run(&plan(gates, "    gates: [guard]"), &timeline("eepee"));
    assert!(r.find("gate_failed").is_empty());
}

#[test]
fn an_end_gate_runs_a_final_check_when_none_is_scheduled_at_the_end() {
    let gates = "  go:
    at: end
    require: [app.error_rate <= 0.5%]";
    // Checks only at 3m; the bake ends at 10m, where the final check sees the bad value.
    let extra = "    checks: { at: [3m], probes: [app] }\n    gates: [go]";
    let scenario = "metrics:\n  app.error_rate: 0.1%\nchanges:\n  - { stage: first, from: 9m, metrics: { app.error_rate: 0.8% } }\n";
    let r = run(&plan(gates, extra), scenario);
    let offsets: Vec<f64> = r
        .find("check_started")
        .iter()
        .filter(|c| c["stage"] == "first")
        .map(|c| c["offset"].as_f64().unwrap())
        .collect();
    assert_eq!(offsets, [180.0, 600.0]);
    assert_eq!(r.outcome(), "rolled_back");
    // With a healthy value at the end, the stage passes.
    let scenario = "metrics:\n  app.error_rate: 0.1%\n";
    assert_eq!(run(&plan(gates, extra), scenario).outcome(), "completed");
}

#[test]
fn an_approval_timeout_takes_on_timeout_rollback_by_default() {
    let extra = "    approval: { timeout: 30m }";
    let r = run(
        &plan(GUARD3, extra),
        "metrics: { app.error_rate: 0.1% }\napprovals:\n  first: { never: true }\n",
    );
    assert_eq!(r.outcome(), "rolled_back");
    assert_eq!(r.find("approval_timed_out")[0]["action"], "rollback");
    // Guards keep running while it waits: checks continue every minute after the bake.
    let after_request = r
        .names()
        .iter()
        .skip_while(|n| *n != "approval_requested")
        .filter(|n| *n == "check_started")
        .count();
    // +1m..+29m; at +30m the timeout comes first.
    assert_eq!(after_request, 29);
    // Approved within the timeout: the run goes on.
    let r = run(
        &plan(GUARD3, extra),
        "metrics: { app.error_rate: 0.1% }\napprovals:\n  first: { after: 20m, by: alice }\n",
    );
    assert_eq!(r.outcome(), "completed");
    assert_eq!(r.find("approved")[0]["by"], "alice");
}

#[test]
fn a_guard_that_fails_while_waiting_for_approval_rolls_back() {
    let extra = "    gates: [guard]\n    approval: {}";
    let scenario = "metrics: { app.error_rate: 0.1% }\nchanges:\n  - { stage: first, from: 15m, metrics: { app.error_rate: 5% } }\napprovals:\n  first: { never: true }\n";
    let r = run(&plan(GUARD3, extra), scenario);
    assert_eq!(r.outcome(), "rolled_back");
    // 10 checks in the bake, then 15m..17m are the three violations: check 17.
    assert_eq!(r.failed_at_check(), Some(17));
}

#[test]
fn warn_records_and_goes_on() {
    let gates = "  go:
    at: end
    require: [app.error_rate <= 0.5%]
    on_fail: warn";
    let r = run(
        &plan(gates, "    gates: [go]"),
        "metrics: { app.error_rate: 2% }\n",
    );
    assert_eq!(r.outcome(), "completed");
    assert_eq!(r.find("gate_failed")[0]["action"], "warn");
    assert_eq!(r.find("stage_completed").len(), 2);
}

#[test]
fn pause_waits_for_a_person_while_guards_keep_running() {
    let gates = format!(
        "{GUARD3}
  go:
    at: end
    require: [app.cpu <= 80%]
    on_fail: pause"
    );
    let extra = "    gates: [guard, go]";
    let scenario = "metrics: { app.error_rate: 0.1%, app.cpu: 95% }\napprovals:\n  first: { after: 7m, by: bob }\n";
    let r = run(&plan(&gates, extra), scenario);
    let names = r.names();
    let paused = names.iter().position(|n| n == "paused").expect("paused");
    let resumed = names.iter().position(|n| n == "resumed").expect("resumed");
    let checks_while_paused = names[paused..resumed]
        .iter()
        .filter(|n| *n == "check_started")
        .count();
    // Checks at +1m..+6m; at +7m the approval comes first.
    assert_eq!(checks_while_paused, 6);
    assert_eq!(r.find("resumed")[0]["by"], "bob");
    // `last` also pauses (cpu stays high); nobody is scripted for it, so it is approved at once.
    assert_eq!(r.outcome(), "completed");
    // A guard failing during the pause rolls back.
    let scenario = "metrics: { app.error_rate: 0.1%, app.cpu: 95% }\nchanges:\n  - { stage: first, from: 12m, metrics: { app.error_rate: 5% } }\napprovals:\n  first: { never: true }\n";
    let r = run(&plan(&gates, extra), scenario);
    assert_eq!(r.outcome(), "rolled_back");
    assert_eq!(r.failed_at_check(), Some(14));
}

#[test]
fn a_failed_step_rolls_back_and_a_failed_rollback_ends_failed() {
    let r = run(
        &plan(GUARD3, "    gates: [guard]"),
        "metrics: { app.error_rate: 0.1% }\nfail_steps: [last]\n",
    );
    assert_eq!(r.outcome(), "rolled_back");
    assert_eq!(r.code, 3);
    let r = run(
        &plan(GUARD3, "    gates: [guard]"),
        "metrics: { app.error_rate: 0.1% }\nfail_steps: [last]\nfail_rollback: true\n",
    );
    assert_eq!(r.outcome(), "failed");
    assert_eq!(r.code, 1);
    let failed = &r.find("rollback_failed")[0];
    assert_eq!(failed["left_to_do"][0], "./rollback.sh");
    assert!(r.stdout.contains("left to do by hand") || r.stdout.contains("left_to_do"));
}

#[test]
fn an_abort_runs_the_rollback() {
    let r = run(
        &plan(GUARD3, "    gates: [guard]"),
        "metrics: { app.error_rate: 0.1% }\nabort: { at: 13m, reason: customer complaints, by: carol }\n",
    );
    assert_eq!(r.outcome(), "aborted");
    assert_eq!(r.code, 3);
    assert_eq!(r.find("abort_requested")[0]["by"], "carol");
    assert_eq!(r.find("rolled_back").len(), 1);
}

#[test]
fn stages_wait_for_not_before_and_for_the_window_across_a_weekend_in_seoul() {
    // Friday 2025-10-24 16:50 KST: the first stage starts in the window, bakes 10m; the second
    // would start at 17:00+ Friday, outside 13-16h Mon-Thu, so it waits for Monday 13:00 KST.
    let text = plan(GUARD3, "    gates: [guard]").replace(
        "gates:\n",
        "schedule:\n  not_before: 2025-10-23T07:50:00Z\n  window: \"* 13-16 * * Mon-Thu\"\n  timezone: Asia/Seoul\ngates:\n",
    );
    let r = run(
        &text,
        "start: 2025-10-23T07:00:00Z\nmetrics: { app.error_rate: 0.1% }\n",
    );
    let waits = r.find("stage_waiting");
    // not_before (Thursday 16:50 KST), then the weekend.
    assert_eq!(waits[0]["until"], "2025-10-23T07:50:00Z");
    assert_eq!(waits[1]["until"], "2025-10-27T04:00:00Z");
    let started: Vec<&str> = r
        .events
        .iter()
        .filter(|e| e["event"].get("stage_started").is_some())
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["2025-10-23T07:50:00Z", "2025-10-27T04:00:00Z"]);
}

#[test]
fn preflight_failure_moves_no_traffic() {
    let text = plan(GUARD3, "    gates: [guard]").replace(
        "defaults:",
        "preflight:\n  - name: app is healthy\n    probe: app\n    require: [app.error_rate == 0%]\ndefaults:",
    );
    let r = run(&text, "metrics: { app.error_rate: 0.1% }\n");
    assert_eq!(r.outcome(), "preflight_failed");
    assert_eq!(r.code, 3);
    assert!(r.find("stage_started").is_empty());
    assert!(r.find("step_started").is_empty());
    // The check is named once, plainly: no gate name nested in backticks inside another.
    let ended = r.find("run_ended")[0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ended.starts_with("preflight check `app is healthy` failed: "),
        "{ended}"
    );
    assert!(
        !ended.contains("``") && !ended.contains("gate `"),
        "{ended}"
    );
    let failed = r.find("preflight_failed")[0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !failed.contains("``") && !failed.contains("gate `"),
        "{failed}"
    );
}

#[test]
fn phase4_clean_scenario_completes_and_the_regression_rolls_back_on_the_third_violation() {
    let clean = ion_plan()
        .args([
            "run",
            "plans/phase4.yaml",
            "--scenario",
            "plans/scenarios/phase4-clean.yaml",
        ])
        .current_dir(root())
        .run();
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert!(clean.stdout.contains("run ended: completed"));
    let bad = ion_plan()
        .args([
            "run",
            "plans/phase4.yaml",
            "--json",
            "--scenario",
            "plans/scenarios/phase4-regression.yaml",
        ])
        .current_dir(root())
        .run();
    assert_eq!(bad.code, 3);
    let events: Vec<Value> = bad
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fired: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["event"].get("evaluated"))
        .filter(|e| e["evaluation"]["fired"] == true)
        .collect();
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0]["evaluation"]["condition"],
        "canary.error_rate <= 1%"
    );
    assert_eq!(fired[0]["evaluation"]["streak"]["count"], 3);
    assert_eq!(fired[0]["stage"], "canary-25");
}

#[test]
fn a_scenario_naming_unknown_stages_or_metrics_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "version: 1\nmetrics:\n  canary.eror_rate: 1%\napprovals:\n  canary-6: { after: 1m }\n",
    );
    let output = ion_plan()
        .args(["run", "plans/phase4.yaml", "--scenario"])
        .arg(&scenario)
        .current_dir(root())
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("did you mean `canary.error_rate`?"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("did you mean `canary-5`?"),
        "{}",
        output.stderr
    );
}

#[test]
fn every_bundled_plan_dry_runs_to_the_end_and_the_demo_regression_rolls_back() {
    let mut plans: Vec<_> = std::fs::read_dir(root().join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    assert!(plans.len() >= 4, "{plans:?}");
    for plan in &plans {
        let output = ion_plan().arg("run").arg("--dry-run").arg(plan).run();
        assert_eq!(output.code, 0, "{}: {}", plan.display(), output.stderr);
        assert!(
            output.stdout.contains("run ended: completed"),
            "{}: {}",
            plan.display(),
            output.stdout
        );
    }
    // The demo's scenario: the guard fires on the second bad check in a row, in canary-25,
    // before the GO gate at the end of that bake is judged.
    let bad = ion_plan()
        .args(["run", "plans/demo.yaml", "--json", "--scenario"])
        .arg("plans/scenarios/demo-regression.yaml")
        .current_dir(root())
        .run();
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    let fired: Vec<Value> = bad
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|e| e["event"].get("evaluated").cloned())
        .filter(|e| e["evaluation"]["fired"] == true)
        .collect();
    assert!(!fired.is_empty(), "{}", bad.stdout);
    for evaluation in &fired {
        assert_eq!(evaluation["stage"], "canary-25");
        assert_eq!(evaluation["evaluation"]["gate"], "guard");
        assert_eq!(evaluation["evaluation"]["streak"]["count"], 2);
    }
}

#[test]
fn a_scenario_with_a_schema_error_still_has_its_names_checked() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "version: 1\nmetrics:\n  canary.eror_rate: 1%\nfail_step: [canary-5]\napprovals:\n  canary-6: { after: 1 minute }\n",
    );
    let output = ion_plan()
        .args(["run", "plans/phase4.yaml", "--scenario"])
        .arg(&scenario)
        .current_dir(root())
        .run();
    assert_eq!(output.code, 2);
    // The misspelt key and the bad duration (schema) and the names (meaning), in one run; the
    // approval's stage is still judged, its mended `after` is not judged again.
    for expected in [
        "did you mean `fail_steps`?",
        "`1 minute`",
        "did you mean `canary.error_rate`?",
        "did you mean `canary-5`?",
    ] {
        assert!(
            output.stderr.contains(expected),
            "{expected}: {}",
            output.stderr
        );
    }
}

/// The plain progress lines name stages as the plan spells them and actions as the plan writes
/// them: a capitalised stage stays capitalised in "approval timed out" (it was once lowercased
/// with the whole line).
#[test]
fn progress_lines_keep_the_stage_name_and_show_the_action_as_written() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app-metrics.sh", "#!/bin/sh\necho '{}'\n");
    write(dir.path(), "rollback.sh", "#!/bin/sh\n");
    write(dir.path(), "shift.sh", "#!/bin/sh\n");
    let gates =
        "  guard:\n    at: every_check\n    require: [app.error_rate <= 1%]\n    on_fail: warn";
    let plan = plan(
        gates,
        "    gates: [guard]\n    approval: { timeout: 30m, on_timeout: warn }",
    )
    .replace("name: first", "name: Canary-A");
    let plan_path = write(dir.path(), "plan.yaml", plan);
    let scenario_path = write(
        dir.path(),
        "scenario.yaml",
        "version: 1\nmetrics: { app.error_rate: 5% }\napprovals:\n  Canary-A: { never: true }\n",
    );
    let output = ion_plan()
        .arg("run")
        .arg(&plan_path)
        .arg("--scenario")
        .arg(&scenario_path)
        .run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    for expected in [
        "Canary-A: approval timed out → warn",
        "GATE guard FAILED → warn: ",
    ] {
        assert!(
            output.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            output.stdout
        );
    }
}

/// A plan whose checks run a command probe and a load probe (neither runs in a scenario).
const SERIES_PLAN: &str = "\
version: 1
name: series
probes:
  app:
    command: [./app-metrics.sh]
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
gates:
  guard:
    at: every_check
    require: [app.error_rate <= 10%]
stages:
  - name: first
    traffic: 10
    bake: 5m
    checks: { every: 1m, probes: [app, load] }
    gates: [guard]
  - name: last
    traffic: 100
    bake: 2m
    checks: { every: 1m, probes: [app, load] }
    gates: [guard]
";

/// The `sample_taken` events of one probe, as (stage, check, sample).
fn samples<'a>(r: &'a Run, probe: &str) -> Vec<(String, u64, &'a Value)> {
    r.find("sample_taken")
        .into_iter()
        .filter(|s| s["sample"]["probe"] == probe)
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["check"].as_u64().unwrap(),
                &s["sample"],
            )
        })
        .collect()
}

/// `{series: […]}`: the i-th check of the range gets the i-th value, the last repeats; a change
/// counts from its own start, the baseline from each stage's.
#[test]
fn a_series_gives_the_ith_check_of_its_range_the_ith_value() {
    let r = run(
        SERIES_PLAN,
        "metrics:
  app.error_rate: { series: [1%, 2%, 3%] }
changes:
  - { stage: first, from: 3m, metrics: { app.error_rate: { series: [5%, 6%] } } }
",
    );
    assert_eq!(r.outcome(), "completed");
    let seen: Vec<(String, u64, f64)> = samples(&r, "app")
        .into_iter()
        .map(|(stage, check, s)| {
            (
                stage,
                check,
                s["metrics"]["error_rate"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("first", 1, 0.01),
        ("first", 2, 0.02),
        ("first", 3, 0.05),
        ("first", 4, 0.06),
        ("first", 5, 0.06),
        // Check numbers run on across stages; the baseline's series restarts with each stage.
        ("last", 6, 0.01),
        ("last", 7, 0.02),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for ((stage, check, value), (s, c, v)) in seen.iter().zip(expected) {
        assert_eq!((stage.as_str(), *check), (s, c));
        assert!(
            (value - v).abs() < 1e-12,
            "{stage} check {check}: {value} ≠ {v}"
        );
    }
}

/// `{distribution: […]}` on a load target's `latency`: every check of the range carries that
/// target's histogram of exactly those latencies, in microseconds, as the live probe does.
#[test]
fn a_distribution_becomes_the_targets_histogram_at_every_check() {
    let r = run(
        SERIES_PLAN,
        "metrics:
  app.error_rate: 0.1%
  load.canary.latency: { distribution: [100ms, 120ms, 0.14, 2s] }
changes:
  - { stage: last, metrics: { load.legacy.latency: { distribution: [90ms, 95ms] } } }
",
    );
    assert_eq!(r.outcome(), "completed");
    let loads = samples(&r, "load");
    assert_eq!(loads.len(), 7);
    for (stage, check, sample) in loads {
        let histograms = sample["histograms"].as_object().unwrap();
        let canary =
            ion_plan::stats::decode_histogram(histograms["canary"].as_str().unwrap()).unwrap();
        assert_eq!(canary.len(), 4, "{stage} check {check}");
        assert!(canary.equivalent(canary.min(), 100_000));
        assert!(canary.equivalent(canary.max(), 2_000_000));
        assert_eq!(canary.count_between(119_000, 121_000), 1);
        match histograms.get("legacy") {
            Some(legacy) if stage == "last" => {
                let legacy = ion_plan::stats::decode_histogram(legacy.as_str().unwrap()).unwrap();
                assert_eq!(legacy.len(), 2);
                assert!(legacy.equivalent(legacy.min(), 90_000));
            }
            None if stage == "first" => {}
            other => panic!("{stage} check {check}: legacy {other:?}"),
        }
        // A distribution is not a reading: conditions read percentiles.
        assert!(sample.get("metrics").is_none(), "{sample}");
    }
}

/// A distribution belongs to a load target's `latency`, and `latency` takes nothing else.
#[test]
fn a_distribution_on_a_scalar_metric_or_a_number_on_latency_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app-metrics.sh", "#!/bin/sh\necho '{}'\n");
    let plan = write(dir.path(), "plan.yaml", SERIES_PLAN);
    for (metrics, message) in [
        (
            "app.error_rate: { distribution: [1ms] }",
            "`app.error_rate` is one number per check; only a load target's `latency`",
        ),
        (
            "load.canary.latency: 120ms",
            "`load.canary.latency` is a distribution of latencies, not one number",
        ),
        (
            "load.canary.latency: { series: [120ms] }",
            "`load.canary.latency` is a distribution of latencies, not one number",
        ),
    ] {
        let scenario = write(
            dir.path(),
            "s.yaml",
            format!("version: 1\nmetrics:\n  {metrics}\n"),
        );
        let output = ion_plan()
            .arg("run")
            .arg(&plan)
            .arg("--scenario")
            .arg(&scenario)
            .run();
        assert_eq!(output.code, 2, "{metrics}: {}", output.stderr);
        // The terminal report wraps long messages; their start is on one line.
        assert!(output.stderr.contains(message), "{}", output.stderr);
        assert!(output.stderr.contains("s.yaml:3:"), "{}", output.stderr);
    }
    let scenario = write(
        dir.path(),
        "s.yaml",
        "version: 1\nmetrics:\n  app.error_rate: { series: [] }\n",
    );
    let output = ion_plan()
        .arg("run")
        .arg(&plan)
        .arg("--scenario")
        .arg(&scenario)
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("needs at least 1 item"),
        "{}",
        output.stderr
    );
}

/// `compare:` judged on scenario values: a series (one value a check) and a distribution
/// (every check's latencies), each against its baseline, at the end of the stage.
#[test]
fn compare_judges_scenario_series_and_distributions() {
    let plan = "\
version: 1
name: compare
probes:
  app:
    command: [./app-metrics.sh]
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
gates:
  judge:
    at: end
    compare:
      - { canary: app.canary_ms, baseline: app.legacy_ms, tolerance: 5% }
      - { canary: load.canary.latency, baseline: load.legacy.latency, tolerance: 5% }
stages:
  - name: only
    traffic: 10
    bake: 5m
    checks: { every: 1m, probes: [app, load] }
    gates: [judge]
";
    let latencies = |base: f64| {
        (0..25)
            .map(|i| format!("{}ms", base + f64::from(i % 5)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let scenario = |canary_ms: &str, canary_latency: f64| {
        format!(
            "metrics:
  app.canary_ms: {{ series: [{canary_ms}] }}
  app.legacy_ms: {{ series: [100, 98, 101, 99, 100] }}
  load.canary.latency: {{ distribution: [{}] }}
  load.legacy.latency: {{ distribution: [{}] }}
",
            latencies(canary_latency),
            latencies(100.0)
        )
    };
    let judged = |r: &Run| -> Vec<(String, String, Option<String>)> {
        r.find("evaluated")
            .into_iter()
            .map(|e| &e["evaluation"])
            .map(|e| {
                (
                    e["condition"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap_or("error").to_owned(),
                    e["compare"]["shift"].as_str().map(str::to_owned),
                )
            })
            .collect()
    };
    // Within 5% of the baseline's median on both: completed.
    let r = run(plan, &scenario("101, 103, 99, 102, 104", 101.0));
    assert_eq!(r.outcome(), "completed", "{}", r.stdout);
    let all = judged(&r);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|(_, o, _)| o == "pass"), "{all:?}");
    let series = &r.find("evaluated")[0]["evaluation"]["compare"];
    assert_eq!(
        (series["nx"].as_u64(), series["ny"].as_u64()),
        (Some(5), Some(5))
    );
    // The series 20% higher: `higher`, rolled back; the latencies still pass.
    let r = run(plan, &scenario("120, 125, 118, 122, 121", 101.0));
    assert_eq!(r.outcome(), "rolled_back", "{}", r.stdout);
    assert_eq!(
        judged(&r),
        [
            (
                "app.canary_ms vs app.legacy_ms".to_owned(),
                "violation".to_owned(),
                Some("higher".to_owned())
            ),
            (
                "load.canary.latency vs load.legacy.latency".to_owned(),
                "pass".to_owned(),
                None
            ),
        ]
    );
    // Latencies 30% higher: the distribution is `higher`, over the stage's pooled checks.
    let r = run(plan, &scenario("101, 103, 99, 102, 104", 130.0));
    assert_eq!(r.outcome(), "rolled_back", "{}", r.stdout);
    let latency = &r.find("evaluated")[1]["evaluation"]["compare"];
    assert_eq!(latency["shift"], "higher");
    assert_eq!(latency["nx"].as_u64(), Some(125), "25 latencies × 5 checks");
    // Values whose differences overflow an f64: an error naming it, not a hang or a NaN.
    let r = run(
        plan,
        &scenario("1e308, -1e308, 1e308, 5, 6", 101.0)
            .replace("[100, 98, 101, 99, 100]", "[-1e308, 1e308, 3, 4, 1e308]"),
    );
    let overflow = &r.find("evaluated")[0]["evaluation"];
    assert!(
        overflow["outcome"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("overflow")),
        "{overflow}"
    );
    // Too few checks for the series' 5 points: insufficient, and the end gate's default
    // `insufficient` pauses for a person.
    let short = plan.replace("bake: 5m", "bake: 3m");
    let r = run(&short, &scenario("101, 103, 99, 102, 104", 101.0));
    assert_eq!(judged(&r)[0].1, "insufficient", "{}", r.stdout);
}

/// A comparison whose margin or shift is too large for an f64 (a tolerance of 1000% of a
/// baseline near 1e308; two constant sides 1e308 apart) is an error that says so, and what it
/// records reads back as a record: JSON has no ∞, and a `null` margin would leave the journal
/// unreadable to resume, `report` and `backtest`.
#[test]
fn a_comparison_beyond_f64_is_an_error_and_its_record_reads_back() {
    let plan = "\
version: 1
name: huge
probes:
  app:
    command: [./app-metrics.sh]
gates:
  judge:
    at: end
    compare:
      - { canary: app.canary, baseline: app.legacy, tolerance: 1000% }
stages:
  - name: only
    traffic: 10
    bake: 5m
    checks: { every: 1m, probes: [app] }
    gates: [judge]
";
    for (canary, legacy) in [
        // The margin: 10 × 1e308.
        (
            "[1e308, 1.1e308, 1.2e308, 1.3e308, 1.4e308]",
            "[1e308, 1.1e308, 1.2e308, 1.3e308, 1.4e308]",
        ),
        // The exact shift of two constant sides.
        ("[1.5e308]", "[-1.5e308]"),
    ] {
        let r = run(
            plan,
            &format!(
                "metrics:\n  app.canary: {{ series: {canary} }}\n  app.legacy: {{ series: {legacy} }}\n"
            ),
        );
        let records = common::records(&r.stdout);
        let evaluation = records
            .iter()
            .find_map(|record| match &record.event {
                ion_plan::event::Event::Evaluated { evaluation, .. } => Some(evaluation),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no evaluation: {}", r.stdout));
        match &evaluation.outcome {
            ion_plan::event::evaluation::Outcome::Error(e) => {
                assert!(e.contains("overflow"), "{e}");
            }
            other => panic!("{canary} vs {legacy}: {other:?}"),
        }
    }
}
