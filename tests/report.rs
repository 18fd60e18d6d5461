//! What people read after and while a run goes: the Markdown report (`ion-plan report`) with
//! the summary first, a table per gate in the condition's units, and a size that fits GitHub's
//! 1 MiB step summary for phase4's 22 days; `status` and `probe` values in their units.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::{ion_plan, root, write};

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
    common::journal_from_scenario(
        &output.stdout,
        "plans/phase4.yaml",
        &dir.join("state"),
        "phase4",
    )
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
            let _ = writeln!(extra, "  load.{target}.{metric}: {value}");
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
    // `status` shows the last values in the condition's unit too.
    let status = ion_plan()
        .args(["status", "--state-dir"])
        .arg(journal.parent().unwrap())
        .arg(root().join("plans/phase4.yaml"))
        .run();
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("canary.error_rate <= 1%") && l.contains(" value "))
        .unwrap_or_else(|| panic!("{}{}", status.stdout, status.stderr));
    assert!(
        line.contains("value 2.4% ") && line.contains("threshold 1% "),
        "{line}"
    );
    // Every sample is there, collapsed.
    assert!(
        report.stdout.contains("<details><summary>Samples"),
        "{}",
        report.stdout
    );
}

#[test]
fn probe_http_prints_its_latency_in_milliseconds() {
    let server = common::server::serve(common::server::fixed(200, "ok"));
    let output = ion_plan()
        .args(["probe", "http"])
        .arg(server.url("/"))
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let latency = output
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("latency"))
        .unwrap_or_else(|| panic!("{}", output.stdout))
        .trim();
    let number = latency
        .strip_suffix("ms")
        .unwrap_or_else(|| panic!("{latency}"));
    assert!(number.parse::<f64>().is_ok_and(|v| v > 0.0), "{latency}");
    // The JSON keeps seconds.
    let json = ion_plan()
        .args(["probe", "http", "--json"])
        .arg(server.url("/"))
        .run();
    let seconds = json.json()["metrics"]["latency"]["value"].as_f64().unwrap();
    assert!(seconds > 0.0 && seconds < 1.0, "{seconds}");
}

#[test]
fn a_load_samples_event_line_shows_what_the_gates_read_and_json_keeps_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "scenario.yaml", phase4_full_scenario());
    let run = |json: bool| {
        ion_plan()
            .arg("run")
            .arg(root().join("plans/phase4.yaml"))
            .arg("--scenario")
            .arg(&scenario)
            .args(if json { &["--json"][..] } else { &[] })
            .run()
    };
    let plain = run(false);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    // In canary-5, `guard` reads the canary's p95 and the end gate `go` its error rate too.
    assert!(
        plain
            .stdout
            .contains("+5m    load: canary.error_rate=0% canary.p95=140ms\n"),
        "{}",
        plain.stdout
    );
    // A probe no condition reads shows its one value.
    assert!(
        plain.stdout.contains("    monitoring: prometheus_up=1\n"),
        "{}",
        plain.stdout
    );
    let json = run(true);
    let sample = common::records(&json.stdout)
        .into_iter()
        .find_map(|r| match r.event {
            ion_plan::event::Event::SampleTaken {
                sample,
                stage: Some(_),
                ..
            } if sample.probe == "load" => Some(sample),
            _ => None,
        })
        .unwrap();
    assert_eq!(sample.metrics.len(), 24, "{sample:?}");
}

/// A condition whose threshold is another metric (`load.canary.p95 <= load.legacy.p95 * 5`)
/// shows its values in the metric's unit: `6ms`, not `0.006`; in the event line, the Markdown
/// report's table, and the HTML report's axis.
#[test]
fn a_condition_against_another_metric_shows_values_in_the_metrics_unit() {
    let dir = tempfile::tempdir().unwrap();
    let run = ion_plan()
        .arg("run")
        .arg(root().join("plans/demo.yaml"))
        .arg("--scenario")
        .arg(root().join("plans/scenarios/demo-regression.yaml"))
        .arg("--json")
        .run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    common::journal_from_scenario(
        &run.stdout,
        "plans/demo.yaml",
        &dir.path().join("state"),
        "demo",
    );
    let condition = "`load.canary.p95 <= load.legacy.p95 * 5`";
    let plain = ion_plan()
        .arg("run")
        .arg(root().join("plans/demo.yaml"))
        .arg("--scenario")
        .arg(root().join("plans/scenarios/demo-regression.yaml"))
        .run();
    let line = plain
        .stdout
        .lines()
        .find(|l| l.contains(condition))
        .unwrap_or_else(|| panic!("{}", plain.stdout));
    let value = line.split(" = ").nth(1).unwrap_or_default();
    assert!(
        value
            .split_whitespace()
            .next()
            .is_some_and(|v| v.ends_with("ms")),
        "{line}"
    );
    let report = |format: &str| {
        ion_plan()
            .args(["report", "--format", format, "--state-dir"])
            .arg(dir.path().join("state"))
            .arg(root().join("plans/demo.yaml"))
            .run()
    };
    let markdown = report("md");
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    let row = markdown
        .stdout
        .lines()
        .find(|l| l.starts_with('|') && l.contains(condition))
        .unwrap_or_else(|| panic!("{}", markdown.stdout));
    assert!(row.contains("ms |"), "{row}");
    assert!(!row.contains("| 0.0"), "{row}");
    let html = report("html");
    assert_eq!(html.code, 0, "{}", html.stderr);
    let chart = html
        .stdout
        .split(r#"data-condition="load.canary.p95 &lt;= load.legacy.p95 * 5""#)
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .unwrap_or_else(|| panic!("no chart for {condition}"));
    assert!(chart.contains("ms</text>"), "{chart}");
}

/// Timestamps and measured values as `N`: what differs between two runs of the same demo.
/// A number with its unit (`2s509ms`, `+36.208ms`, `12.5`) is one `N`.
fn without_values(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let unit = if rest == "ms" {
                2
            } else {
                usize::from(rest.starts_with(['s', 'm', 'h', 'd']))
            };
            let after = chars.get(i + unit);
            if unit > 0 && !after.is_some_and(char::is_ascii_alphabetic) {
                i += unit;
            }
        }
        out.push('N');
    }
    out
}

/// The README shows the first lines of a rolled-back demo's Markdown report; they are what the
/// demo writes now, line for line, up to the timestamps and measured values.
#[test]
fn the_readme_shows_the_summary_a_rolled_back_demo_writes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- The first lines of the bad-canary demo's .report.md")
        .expect("the README's report excerpt");
    let block = &readme[start..];
    let block = &block[block.find("```markdown\n").unwrap() + 12..];
    let excerpt: Vec<&str> = block[..block.find("\n```").unwrap()]
        .lines()
        .filter(|l| *l != "…")
        .collect();
    for lead in [
        "**ROLLED BACK**: gate",
        "- outcome: **rolled back**",
        "- why: ",
    ] {
        assert!(
            excerpt.iter().any(|l| l.starts_with(lead)),
            "the excerpt lacks `{lead}`"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let output = ion_plan()
        .args(["demo", "--bad-canary"])
        .current_dir(dir.path())
        .run();
    assert_eq!(output.code, 3, "{}", output.stderr);
    let state = dir.path().join(".ion-plan");
    let report = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".report.md"))
        .expect("the demo wrote a Markdown report");
    let written = std::fs::read_to_string(report).unwrap();
    // Each excerpt line is a line of the report, in order.
    let mut lines = written.lines().map(without_values);
    for line in &excerpt {
        let wanted = without_values(line);
        assert!(
            lines.any(|l| l == wanted),
            "README line not in the demo's report (in order):\n{line}\n\nreport:\n{written}"
        );
    }
    assert_eq!(
        without_values("from 2026-11-28 10:10:51Z (2s509ms) +36.208ms 40/40 5% canary-5"),
        "from N-N-N N:N:NZ (N) +N N/N N% canary-N"
    );
}
