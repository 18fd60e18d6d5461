//! `ion-plan validate` end to end: real plans pass, bad input of every kind fails cleanly with the
//! documented exit code, and the output formats hold their contract.

mod common;

use std::fmt::Write as _;
use std::net::TcpListener;

use common::{MINIMAL_PLAN, ion_plan, root, write};

fn validate_json(path: &std::path::Path) -> (i32, serde_json::Value) {
    let output = ion_plan()
        .arg("validate")
        .arg("--format=json")
        .arg(path)
        .run();
    assert!(
        output.stderr.is_empty() || output.code != 101,
        "panicked: {}",
        output.stderr
    );
    (output.code, output.json())
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_plan_in_plans_is_valid() {
    let plans: Vec<_> = std::fs::read_dir(root().join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(
        plans.len() >= 3,
        "expected phase4 and at least two more plans"
    );
    let output = ion_plan()
        .arg("validate")
        .args(&plans)
        .current_dir(root())
        .run();
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    for plan in &plans {
        let name = plan.file_name().unwrap().to_str().unwrap();
        assert!(
            output.stdout.contains(&format!("{name}: valid")),
            "{}",
            output.stdout
        );
    }
}

#[test]
fn the_minimal_plan_is_valid_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", MINIMAL_PLAN);
    let output = ion_plan().args(["validate", "--strict"]).arg(&path).run();
    assert_eq!(output.code, 0, "{}", output.stdout);
}

#[test]
fn an_empty_file_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = validate_json(&write(dir.path(), "empty.yaml", ""));
    assert_eq!(code, 2);
    assert_eq!(codes(&report), ["empty"]);
}

#[test]
fn non_utf8_bytes_are_reported_where_they_stand() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "latin1.yaml",
        b"version: 1\nname: caf\xe9\n".as_slice(),
    );
    let (code, report) = validate_json(&path);
    assert_eq!(code, 2);
    let d = &report["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "not-utf8");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(10))
    );
}

#[test]
fn an_alias_bomb_is_stopped() {
    let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, name) in ('a'..'i').zip('b'..'j') {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        writeln!(text, "{name}: &{name} [{refs}]").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = validate_json(&write(dir.path(), "bomb.yaml", text));
    assert_eq!(code, 2);
    assert_eq!(codes(&report), ["yaml-limit"]);
}

#[test]
fn nesting_ten_thousand_levels_deep_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "flow.yaml",
            format!("{}1{}\n", "{a: ".repeat(10_000), "}".repeat(10_000)),
        ),
        (
            "seq.yaml",
            format!("{}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "block.yaml",
            (0..10_000).fold(String::new(), |mut text, i| {
                writeln!(text, "{}- ", "  ".repeat(i % 200)).unwrap();
                text
            }),
        ),
    ] {
        let output = ion_plan()
            .args(["validate", "--format=json"])
            .arg(write(dir.path(), name, text))
            .run();
        assert_eq!(output.code, 2, "{name}: {}", output.stderr);
        assert!(
            !output.stderr.contains("panicked"),
            "{name}: {}",
            output.stderr
        );
    }
    let (_, report) = validate_json(&dir.path().join("flow.yaml"));
    assert_eq!(codes(&report), ["yaml-limit"]);
}

#[test]
fn a_fifty_megabyte_file_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "huge.yaml",
        "# padding\n".repeat(5 * 1024 * 1024),
    );
    let (code, report) = validate_json(&path);
    assert_eq!(code, 2);
    assert_eq!(codes(&report), ["too-large"]);
}

#[test]
fn a_directory_and_a_missing_file_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    for path in [dir.path().to_owned(), missing] {
        let output = ion_plan().arg("validate").arg(&path).run();
        assert_eq!(output.code, 1, "{}", output.stdout);
        let output = ion_plan()
            .args(["validate", "--format=json"])
            .arg(&path)
            .run();
        assert_eq!(output.code, 1);
        assert_eq!(output.json()["files"][0]["diagnostics"][0]["code"], "io");
    }
}

#[test]
fn all_files_are_reported_even_when_one_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", MINIMAL_PLAN);
    let bad = write(
        dir.path(),
        "bad.yaml",
        MINIMAL_PLAN.replace("bake: 10m", "bake: ten"),
    );
    let output = ion_plan()
        .args(["validate", "--format=json"])
        .arg(&good)
        .arg(dir.path().join("missing.yaml"))
        .arg(&bad)
        .run();
    assert_eq!(output.code, 1);
    let report = output.json();
    let valid: Vec<bool> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["valid"].as_bool().unwrap())
        .collect();
    assert_eq!(valid, [true, false, false]);
    // Two bad bakes, both reported in one run.
    assert_eq!(
        report["files"][2]["diagnostics"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn json_output_has_exactly_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "plan.yaml",
        MINIMAL_PLAN
            .replace("trafic", "x")
            .replace("    traffic: 50\n", "    trafic: 50\n"),
    );
    let (code, report) = validate_json(&path);
    assert_eq!(code, 2);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&report), ["files"]);
    let file = &report["files"][0];
    assert_eq!(keys(file), ["diagnostics", "file", "valid"]);
    let unknown = file["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "unknown-key")
        .expect("an unknown-key diagnostic");
    assert_eq!(
        keys(unknown),
        [
            "code", "column", "help", "line", "message", "pointer", "severity"
        ]
    );
    assert_eq!(unknown["severity"], "error");
    assert_eq!(unknown["pointer"], "/stages/0/trafic");
    assert_eq!(
        (unknown["line"].as_u64(), unknown["column"].as_u64()),
        (Some(15), Some(5))
    );
    assert_eq!(unknown["help"], "did you mean `traffic`?");
}

#[test]
fn github_format_annotates_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", MINIMAL_PLAN.replace("bake: 10m\n    checks: { every: 1m, probes: [load] }\n    gates: [guard]\n  - name: full", "bake: 10 m\n    checks: { every: 1m, probes: [load] }\n    gates: [guard]\n  - name: full"));
    let output = ion_plan()
        .args(["validate", "--format=github"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 2);
    let line = output.stdout.lines().next().unwrap();
    let expected = format!(
        "::error file={},line=16,col=11,title=bad-duration::",
        path.display()
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(
        line.contains("%0Ahelp: "),
        "help rides on an escaped newline: {line}"
    );
}

#[test]
fn warnings_fail_only_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replace(
        "probes:\n",
        "probes:\n  spare:\n    command: [./spare.sh]\n",
    );
    write(dir.path(), "spare.sh", "#!/bin/sh\necho '{}'\n");
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan()
        .args(["validate", "--format=json"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 0, "{}", output.stdout);
    assert_eq!(codes(&output.json()), ["unused"]);
    let output = ion_plan().args(["validate", "--strict"]).arg(&path).run();
    assert_eq!(output.code, 2, "{}", output.stdout);
}

#[test]
fn a_secret_on_a_command_line_warns_and_fails_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy.sh", "#!/bin/sh\n");
    write(dir.path(), "token.sh", "#!/bin/sh\necho '{}'\n");
    let plan = MINIMAL_PLAN
        .replace(
            "probes:\n",
            "probes:\n  token:\n    command: [./token.sh, \"${{ env.PROBE_TOKEN }}\"]\n",
        )
        .replace(
            "checks: { every: 1m, probes: [load] }\n    gates: [guard]\n  - name: full",
            "checks: { every: 1m, probes: [load, token] }\n    gates: [guard]\n  - name: full",
        )
        + "preflight:\n  - name: login\n    run: [./deploy.sh, \"--password=${{ env.PASSWORD }}\"]\n"
        + "rollback:\n  - run: [./deploy.sh, \"${{ env.DEPLOY_TOKEN }}\"]\n"
        + "  - run: [./deploy.sh]\n    env: { DEPLOY_TOKEN: \"${{ env.DEPLOY_TOKEN }}\" }\n";
    let path = write(dir.path(), "plan.yaml", plan);
    let (code, report) = validate_json(&path);
    assert_eq!(code, 0, "{report}");
    let found: Vec<(String, u64, u64, String)> = report["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["help"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let secrets: Vec<_> = found.iter().filter(|d| d.0 == "secret-in-argv").collect();
    // The probe, the preflight run and the first rollback step; not the one using `env:`.
    assert_eq!(
        secrets.iter().map(|d| (d.1, d.2)).collect::<Vec<_>>(),
        [(5, 28), (28, 36), (30, 25)],
        "{found:?}"
    );
    assert!(secrets[0].3.contains("command probes have no `env:` map"));
    assert!(
        secrets[2]
            .3
            .contains("env: { DEPLOY_TOKEN: \"${{ env.DEPLOY_TOKEN }}\" }"),
        "{}",
        secrets[2].3
    );
    let output = ion_plan().args(["validate", "--strict"]).arg(&path).run();
    assert_eq!(output.code, 2, "{}", output.stdout);
    assert!(output.stdout.contains("secret-in-argv"));
}

#[test]
fn a_streak_longer_than_the_stage_warns() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replace("consecutive: 2", "consecutive: 20");
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 0);
    // 10 checks in a 10m bake at every 1m: 20 in a row can never happen, in either stage.
    assert_eq!(codes(&report), ["unreachable-streak", "unreachable-streak"]);
}

/// `docs/plan.md`, "Evidence": zero errors show `error_rate <= 0.5%` at 95% only from 765
/// requests on; 50 a check, pooled over twelve checks, is 600.
#[test]
fn a_confidence_gate_the_bake_cannot_feed_warns_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN
        .replace("at: every_check", "at: end")
        .replace(
            "- check: load.canary.error_rate <= 1%\n        consecutive: 2",
            "- check: load.canary.error_rate <= 0.5%\n        confidence: 95%",
        )
        .replace(
            "bake: 10m\n    checks: { every: 1m",
            "bake: 1h\n    checks: { every: 5m",
        );
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", &plan));
    assert_eq!(code, 0);
    assert_eq!(
        codes(&report),
        ["insufficient-evidence", "insufficient-evidence"]
    );
    let first = &report["files"][0]["diagnostics"][0];
    assert_eq!(
        first["message"],
        "`load.canary.error_rate <= 0.5%` at 95% confidence needs 765 requests with no errors to pass, but stage `half` gathers 600 in its bake of 1h (50 a check × 12 checks)"
    );
    assert_eq!(first["line"], 11);
    // 70 a check, 840 in the bake, are enough: no warning.
    let enough = plan.replace(
        "targets: { canary:",
        "requests: 70\n      targets: { canary:",
    );
    let (code, report) = validate_json(&write(dir.path(), "enough.yaml", enough));
    assert_eq!(code, 0);
    assert!(codes(&report).is_empty(), "{report}");
}

#[test]
fn ending_early_on_point_values_warns() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replacen(
        "    bake: 10m\n",
        "    bake: 10m\n    early: { after: 5m }\n",
        1,
    );
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 0);
    assert_eq!(codes(&report), ["early-without-confidence"]);
    assert_eq!(report["files"][0]["diagnostics"][0]["line"], 17);
}

#[test]
fn a_program_missing_from_path_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "{MINIMAL_PLAN}rollback:\n  - run: [no-such-program-ion, a]\n  - run: [no-such-program-ion, b]\n"
    );
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 0);
    assert_eq!(codes(&report), ["command-not-found"]);
    assert_eq!(report["files"][0]["diagnostics"][0]["line"], 25);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ion_plan().arg("validate").run().code, 2);
    assert_eq!(
        ion_plan()
            .args(["validate", "--format=xml", "a.yaml"])
            .run()
            .code,
        2
    );
    assert_eq!(ion_plan().arg("frobnicate").run().code, 2);
}

/// `validate` is safe on an untrusted branch: it runs no program and opens no socket.
#[test]
fn validate_runs_nothing_and_connects_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let marker = dir.path().join("ran");
    let plan = MINIMAL_PLAN
        .replace("http://127.0.0.1:9/c", &format!("{url}/c"))
        .replace("probes:\n", &format!(
            "probes:\n  script:\n    command: [touch, \"{}\"]\n  stats:\n    http:\n      url: {url}/stats\n      metrics: {{ m: /m }}\n",
            marker.display()
        ))
        + &format!(
            "preflight:\n  - {{ name: s, probe: script }}\n  - {{ name: t, probe: stats }}\n  - {{ name: u, run: [touch, \"{}\"] }}\n  - name: v\n    http: {{ url: \"{url}/hook\", method: POST }}\nrollback:\n  - run: [touch, \"{}\"]\n",
            marker.display(),
            marker.display()
        );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("validate").arg(&path).run();
    assert_eq!(output.code, 0, "{}", output.stdout);
    assert!(!marker.exists(), "validate ran a command");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("validate connected to the probe target: {other:?}"),
    }
}

#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let output = ion_plan().arg("schema").run();
    assert_eq!(output.code, 0);
    let committed = std::fs::read_to_string(root().join("schemas/plan.schema.json"))
        .expect("schemas/plan.schema.json is committed");
    assert!(
        output.stdout == committed,
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json`"
    );
}

#[test]
fn the_committed_scenario_schema_is_what_the_binary_prints() {
    let output = ion_plan().args(["schema", "--scenario"]).run();
    assert_eq!(output.code, 0);
    let committed = std::fs::read_to_string(root().join("schemas/scenario.schema.json"))
        .expect("schemas/scenario.schema.json is committed");
    assert!(
        output.stdout == committed,
        "schemas/scenario.schema.json is stale: run `cargo run -- schema --scenario > schemas/scenario.schema.json`"
    );
}

#[test]
fn a_unit_apart_from_its_number_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replace("load.canary.error_rate <= 1%", "load.canary.p95 <= 250 ms");
    let path = write(dir.path(), "plan.yaml", plan);
    let (code, report) = validate_json(&path);
    assert_eq!(code, 2);
    let message = report["files"][0]["diagnostics"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("no space between a number and its unit: `250ms`"),
        "{message}"
    );
}

#[test]
fn a_misspelt_probe_in_a_condition_is_reported_once_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replace("check: load.canary", "check: lod.canary");
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 2);
    // Both stages use the gate; the name is wrong in one place, so it is said once.
    assert_eq!(codes(&report), ["unknown-probe"]);
    let finding = &report["files"][0]["diagnostics"][0];
    assert_eq!(finding["help"], "did you mean `load`?");
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(11), Some(16))
    );
}

/// `docs/plan.md` says what the schema requires of stages and gates, and lists the values of
/// `approval.on_timeout` (the schema and `validate` are the judges; the page must agree).
#[test]
fn the_format_page_names_required_keys_and_on_timeout_values() {
    let docs = std::fs::read_to_string(root().join("docs/plan.md")).unwrap();
    let section = |heading: &str| {
        let start = docs.find(&format!("\n## {heading}\n")).unwrap();
        let rest = &docs[start + 1..];
        rest[..rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3)].to_owned()
    };
    let schema = ion_plan::plan::schema::plan_schema();
    for (def, heading) in [("Stage", "Stages"), ("Gate", "Gates")] {
        let text = section(heading);
        let required = schema["$defs"][def]["required"].as_array().unwrap();
        assert!(!required.is_empty());
        for key in required {
            let row = format!("| `{}` | required", key.as_str().unwrap());
            assert!(text.contains(&row), "{heading}: no row `{row}`");
        }
    }
    let stages = section("Stages");
    let approval = stages
        .lines()
        .find(|l| l.starts_with("| `approval` |"))
        .unwrap();
    let actions = schema["$defs"]["Action"]["enum"].as_array().unwrap();
    for action in actions {
        let value = format!("`{}`", action.as_str().unwrap());
        assert!(
            approval.contains(&value),
            "on_timeout value {value} missing"
        );
    }
}

/// `PROBE.TARGET.latency` is the check's raw latencies: a condition needs one number, so it is
/// pointed to a percentile or to `compare:` (`docs/plan.md`, "Compare").
#[test]
fn a_latency_distribution_in_a_condition_points_to_compare_or_a_percentile() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replace(
        "load.canary.error_rate <= 1%",
        "load.canary.latency <= 300ms",
    );
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 2);
    assert_eq!(codes(&report), ["distribution-in-condition"]);
    let finding = &report["files"][0]["diagnostics"][0];
    assert_eq!(
        finding["message"],
        "`load.canary.latency` is a distribution of latencies; compare it (`compare:`) or use a percentile such as `load.canary.p95`"
    );
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(11), Some(16))
    );
}

const COMPARE_PLAN: &str = "\
version: 1
name: compare
probes:
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
gates:
  watch:
    at: every_check
    compare:
      - { canary: load.canary.latency, baseline: load.legacy.latency, tolerance: 10% }
  judge:
    at: end
    compare:
      - canary: load.canary.error_rate
        baseline: load.legacy.error_rate
        direction: either
        min_points: 2
stages:
  - name: full
    traffic: 100
    bake: 10m
    checks: { every: 1m, probes: [load] }
    gates: [watch, judge]
";

/// A gate with only `compare:` entries, a distribution in an `every_check` gate and a series
/// in an `at: end` one, is a valid plan with nothing to warn about.
#[test]
fn compare_gates_of_both_kinds_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", COMPARE_PLAN));
    assert_eq!(codes(&report), Vec::<String>::new());
    assert_eq!(code, 0);
}

/// Each side of a comparison is checked like a condition's metric, and the two must be alike;
/// findings point at the side, by line and column.
#[test]
fn a_comparison_of_unlike_sides_is_reported_at_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "baseline: load.legacy.latency",
            "baseline: load.legacy.p95",
            "compare-kind",
            "`load.canary.latency` is a distribution of latencies but `load.legacy.p95` is a series (one value per check): compare like with like",
        ),
        (
            "baseline: load.legacy.latency",
            "baseline: load.canary.latency",
            "compare-self",
            "`load.canary.latency` is compared with itself: the shift is always zero",
        ),
        (
            "baseline: load.legacy.latency",
            "baseline: load.legacy.latncy",
            "unknown-metric",
            "probe `load` cannot produce `load.legacy.latncy`",
        ),
        (
            "baseline: load.legacy.error_rate",
            "baseline: load.legacy.p99",
            "unit-mismatch",
            "`load.canary.error_rate` is a fraction but `load.legacy.p99` is seconds: they cannot be compared",
        ),
    ];
    for (from, to, code_name, message) in cases {
        let plan = COMPARE_PLAN.replace(from, to);
        assert_ne!(plan, COMPARE_PLAN);
        let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
        assert_eq!(code, 2, "{code_name}");
        assert_eq!(codes(&report), [code_name]);
        let finding = &report["files"][0]["diagnostics"][0];
        assert_eq!(finding["message"], message);
        let line = if from.contains("latency") { 11 } else { 16 };
        let column = if from.contains("latency") { 50 } else { 19 };
        assert_eq!(
            (finding["line"].as_u64(), finding["column"].as_u64()),
            (Some(line), Some(column)),
            "{code_name}"
        );
    }
}

/// A gate with neither `require` nor `compare` says so, at the gate's name.
#[test]
fn a_gate_with_no_conditions_and_no_comparisons_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let plan = COMPARE_PLAN.replace(
        "    compare:\n      - { canary: load.canary.latency, baseline: load.legacy.latency, tolerance: 10% }\n",
        "",
    );
    let (code, report) = validate_json(&write(dir.path(), "plan.yaml", plan));
    assert_eq!(code, 2);
    assert_eq!(codes(&report), ["required"]);
    let finding = &report["files"][0]["diagnostics"][0];
    assert_eq!(
        finding["message"],
        "a gate needs `require` or `compare` (or both), with at least one entry"
    );
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(8), Some(3))
    );
}
