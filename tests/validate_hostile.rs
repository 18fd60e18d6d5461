//! Hostile plans under 1 MiB: a finding past column 65,535, tens of thousands of findings, a
//! megabyte-long name. Each is reported in full and correctly, with exit 2 and never a panic
//! (`docs/plan.md`, "Bounded everywhere"). How long they take is measured by hand, not here.

mod common;

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
