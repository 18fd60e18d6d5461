//! The Markdown report (`ion-plan report`): the summary first, a table per gate in the
//! condition's units, and a size that fits GitHub's 1 MiB step summary for phase4's 22 days.

mod common;

use std::path::{Path, PathBuf};

use common::{ion_plan, root, write};
use ion_plan::journal::Header;

/// Runs `plans/phase4.yaml` on `scenario` and keeps its events as a journal in `state`, as
/// `run` names journals: the records are what a run writes. `code`: the run's exit code.
fn record(dir: &Path, scenario: &str, code: i32) -> PathBuf {
    let scenario_path = write(dir, "scenario.yaml", scenario);
    let output = ion_plan()
        .arg("run")
        .arg(root().join("plans/phase4.yaml"))
        .arg("--scenario")
        .arg(&scenario_path)
        .arg("--json")
        .run();
    assert_eq!(output.code, code, "{}", output.stderr);
    let records = common::records(&output.stdout);
    let ion_plan::event::Event::RunStarted { run_id, digest, .. } = &records[0].event else {
        panic!("no run_started: {}", output.stdout);
    };
    let header = Header {
        format: ion_plan::event::FORMAT_VERSION,
        run_id: run_id.clone(),
        plan: "plans/phase4.yaml".into(),
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
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    write(&state, &format!("phase4-{run_id}.jsonl"), text)
}

/// phase4's healthy scenario, its load probe giving all 24 metrics a real one gives.
fn phase4_full_scenario() -> String {
    let clean = std::fs::read_to_string(root().join("plans/scenarios/phase4-clean.yaml")).unwrap();
    let mut extra = String::new();
    for target in ["canary", "legacy"] {
        for (metric, value) in [
            ("errors", "0"),
            ("success_rate", "100%"),
            ("rps", "40"),
            ("min", "20ms"),
            ("avg", "60ms"),
            ("max", "400ms"),
            ("p50", "50ms"),
            ("p90", "120ms"),
            ("p99", "300ms"),
        ] {
            extra.push_str(&format!("  load.{target}.{metric}: {value}\n"));
        }
    }
    extra.push_str("  load.legacy.requests: 200\n");
    clean.replacen("\nmetrics:\n", &format!("\nmetrics:\n{extra}"), 1)
}

#[test]
fn phase4s_22_days_make_a_report_under_a_mebibyte_that_leads_with_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let journal = record(dir.path(), &phase4_full_scenario(), 0);
    let report = ion_plan()
        .args(["report", "--format", "md", "--state-dir"])
        .arg(journal.parent().unwrap())
        .arg(root().join("plans/phase4.yaml"))
        .run();
    assert_eq!(report.code, 0, "{}", report.stderr);
    let text = &report.stdout;
    assert!(text.len() < 1024 * 1024, "{} bytes", text.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[2], "**COMPLETED**: every gate held through 5 stages",
        "{text}"
    );
    assert!(text.contains("(22d2h)"), "{text}");
    // A stage row: traffic, start, end, checks.
    assert!(
        text.contains("| full | 100% | 2025-10-30 13:00:00Z | 2025-11-13 16:00:00Z | 4067 |"),
        "{text}"
    );
    // The gate table, in the condition's unit.
    assert!(
        text.contains(
            "| `load.canary.p95 <= 500ms` | 140ms | 140ms | 500ms | 0 of 5801 | 0/3 | pass |"
        ),
        "{text}"
    );
    // Samples per stage, min / median / max in the metric's unit.
    assert!(
        text.contains("| `load.canary.p99` | 4067 | 300ms | 300ms | 300ms | 0 |"),
        "{text}"
    );
    // The decision log per stage: every evaluation counted.
    assert!(
        text.contains("| guard | `canary.error_rate <= 1%` | 4067 | 0 | 0 | 0 | 0 |"),
        "{text}"
    );
    assert!(
        text.contains("| 2025-11-13 16:00:00Z | full | sena | approved |"),
        "{text}"
    );
}

#[test]
fn a_regression_names_the_gate_that_fired_and_its_values_first() {
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        std::fs::read_to_string(root().join("plans/scenarios/phase4-regression.yaml")).unwrap();
    let journal = record(dir.path(), &scenario, 3);
    let report = ion_plan()
        .args(["report", "--state-dir"])
        .arg(journal.parent().unwrap())
        .arg(root().join("plans/phase4.yaml"))
        .run();
    assert_eq!(report.code, 0, "{}", report.stderr);
    let third = report.stdout.lines().nth(2).unwrap_or_default();
    assert!(
        third.starts_with("**ROLLED BACK**: gate \\`guard\\` fired in stage \\`canary-25\\`:")
            && third.contains("= 2.4% (violation, 3 of 3)")
            && third.ends_with("→ rollback"),
        "{}",
        report.stdout
    );
    // Every sample is there, collapsed.
    assert!(
        report.stdout.contains("<details><summary>Samples"),
        "{}",
        report.stdout
    );
}
