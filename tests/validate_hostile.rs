//! Hostile plans under 1 MiB: a finding past column 65,535, tens of thousands of findings, a
//! megabyte-long name. Each is reported in full and correctly, with exit 2 and never a panic
//! (`docs/plan.md`, "Limits"). How long they take is measured by hand, not here.

mod common;

use std::fmt::Write as _;

use common::{MINIMAL_PLAN, ion_plan, write};

/// `MINIMAL_PLAN` with its guard's condition misspelt after `pad` spaces, on line 11.
fn plan_with_a_far_finding(pad: usize) -> String {
    MINIMAL_PLAN.replace(
        "      - check: load.canary.error_rate <= 1%",
        &format!(
            "      - check: \"{}load.canary.error_rat <= 1%\"",
            " ".repeat(pad)
        ),
    )
}

fn assert_no_panic(output: &common::Output) {
    assert_ne!(output.code, 101, "panicked: {}", output.stderr);
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
}

#[test]
fn a_finding_past_column_65535_is_shown_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", plan_with_a_far_finding(70_000));
    // `      - check: "` is 16 characters, then the padding.
    let column = 16 + 70_000 + 1;
    let output = ion_plan().arg("validate").arg(&path).run();
    assert_no_panic(&output);
    assert_eq!(output.code, 2, "{}", output.stdout);
    assert!(
        output.stdout.contains(&format!("plan.yaml:11:{column}]")),
        "{}",
        output.stdout
    );
    assert!(output.stdout.contains("load.canary.error_rat"));
    assert!(output.stdout.contains("unknown-metric"));
    // The snippet shows a window of the line, not 70,000 spaces.
    assert!(output.stdout.len() < 4_000, "{} bytes", output.stdout.len());

    let output = ion_plan()
        .args(["validate", "--format=json"])
        .arg(&path)
        .run();
    assert_no_panic(&output);
    let report = output.json();
    let finding = &report["files"][0]["diagnostics"][0];
    assert_eq!(finding["code"], "unknown-metric");
    assert_eq!(finding["line"], 11);
    assert_eq!(finding["column"], column);
}

#[test]
fn run_and_dry_run_of_a_plan_with_a_far_finding_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", plan_with_a_far_finding(70_000));
    for dry in [true, false] {
        let mut command = ion_plan().arg("run");
        if dry {
            command = command.arg("--dry-run");
        }
        let output = command
            .arg(&path)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .run();
        assert_no_panic(&output);
        assert_eq!(output.code, 2, "{}{}", output.stdout, output.stderr);
        assert!(
            format!("{}{}", output.stdout, output.stderr).contains(":11:70017]"),
            "{}{}",
            output.stdout,
            output.stderr
        );
    }
}

fn json_of(path: &std::path::Path) -> serde_json::Value {
    let output = ion_plan()
        .args(["validate", "--format=json"])
        .arg(path)
        .run();
    assert_no_panic(&output);
    assert_eq!(output.code, 2, "{}", output.stderr);
    output.json()
}

fn diagnostics(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["files"][0]["diagnostics"].as_array().unwrap()
}

#[test]
fn twenty_thousand_unknown_vars_are_all_reported_and_suggestions_are_bounded() {
    let n = 20_000;
    let mut text = String::from("version: 1\nname: hostile\nvars:\n");
    for i in 0..n {
        writeln!(text, "  v{i:05}: x").unwrap();
    }
    text.push_str(&MINIMAL_PLAN.replace("version: 1\nname: minimal\n", ""));
    text.push_str("rollback:\n  - run: [echo, \"");
    for i in 0..n {
        write!(text, "${{{{ vars.w{i:05} }}}}").unwrap();
    }
    text.push_str("\"]\n");
    assert!(text.len() < 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&write(dir.path(), "plan.yaml", text));
    let unknown: Vec<_> = diagnostics(&report)
        .iter()
        .filter(|d| d["code"] == "unknown-var")
        .collect();
    assert_eq!(unknown.len(), n);
    assert_eq!(unknown[0]["help"], "did you mean `vars.v00000`?");
    // Past the budget, a finding still says how to fix it, without searching 20,000 names.
    assert_eq!(
        unknown[n - 1]["message"],
        "`vars.w19999` is not defined in `vars`"
    );
    assert_eq!(unknown[n - 1]["help"], "add `w19999: …` under `vars`");
}

#[test]
fn a_megabyte_long_time_zone_is_reported_in_a_short_snippet() {
    let zone = "Europe/Berlinx".repeat(70_000);
    let text = format!("{MINIMAL_PLAN}schedule:\n  timezone: \"{zone}\"\n");
    assert!(text.len() < 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", text);
    let report = json_of(&path);
    let found = diagnostics(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["code"], "bad-timezone");
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
        (Some(25), Some(13))
    );
    assert_eq!(
        found[0]["help"],
        "use a name such as `UTC`, `Europe/Berlin` or `Asia/Seoul`"
    );
    let output = ion_plan().arg("validate").arg(&path).run();
    assert_no_panic(&output);
    assert_eq!(output.code, 2);
    assert!(output.stdout.contains("bad-timezone"));
    // The message quotes the zone's start; the snippet shows only a window of its line.
    assert!(output.stdout.len() < 4_000, "{}", output.stdout.len());
}

#[test]
fn twenty_four_thousand_findings_are_all_printed() {
    let n = 24_000;
    let mut keys = String::new();
    for i in 0..n {
        writeln!(keys, "    k{i:05}: 1").unwrap();
    }
    let text = MINIMAL_PLAN.replacen(
        "    gates: [guard]\n",
        &format!("    gates: [guard]\n{keys}"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plan.yaml", text);
    let report = json_of(&path);
    let found = diagnostics(&report);
    assert_eq!(found.len(), n);
    assert!(found.iter().all(|d| d["code"] == "unknown-key"));
    assert_eq!(found[n - 1]["line"], 18 + n);
    let output = ion_plan().arg("validate").arg(&path).run();
    assert_no_panic(&output);
    assert_eq!(output.code, 2);
    assert_eq!(output.stdout.matches("unknown-key\n").count(), n);
    assert!(output.stdout.contains(&format!(":{}:5]", 18 + n)));
    assert!(
        output
            .stdout
            .contains(&format!("invalid ({n} errors, 0 warnings)"))
    );
}

#[test]
fn a_dry_run_checked_every_millisecond_for_30_days_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let plan = MINIMAL_PLAN.replacen(
        "    bake: 10m\n    checks: { every: 1m, probes: [load] }\n    gates: [guard]\n  - name: full\n    traffic: 100\n    bake: 10m\n    checks: { every: 1m,",
        "    bake: 10m\n    checks: { every: 1m, probes: [load] }\n    gates: [guard]\n  - name: full\n    traffic: 100\n    bake: 30d\n    checks: { every: 1ms,",
        1,
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan()
        .args(["run", "--dry-run"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .run();
    assert_no_panic(&output);
    assert_eq!(output.code, 2, "{}{}", output.stdout, output.stderr);
    let text = format!("{}{}", output.stdout, output.stderr);
    assert!(text.contains("too-many-checks"), "{text}");
    assert!(text.contains("2,592,000,000 checks"), "{text}");
    assert!(text.contains("the limit is 100,000"), "{text}");
}
