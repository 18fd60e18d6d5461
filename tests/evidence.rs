//! Decisions on evidence (`docs/plan.md`, "Evidence"): intervals instead of point values,
//! `insufficient` as an outcome, bakes that extend or end early, and `ion-plan promote`. Scenario
//! runs on simulated time pin the timing rules; a real loopback server pins the percentile
//! interval; a live runner takes a promotion from another process.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use chrono::{DateTime, TimeZone, Utc};
use common::server::serve;
use common::{KillOnDrop, ion_plan, journal_records, journals, records, write};
use ion_plan::event::evaluation::Outcome as Judged;
use ion_plan::event::{Event, Outcome, Record};
use ion_plan::plan::model::Action;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap()
}

/// A plan whose first stage bakes `bake`, checked every 5 minutes by a load probe of
/// `requests` a check, with `gates` (YAML under `gates:`) on it, then a last stage at 100%.
fn plan(requests: u32, bake: &str, gates: &str, gate_names: &str, stage_extra: &str) -> String {
    format!(
        "\
version: 1
name: evidence
probes:
  load:
    load:
      targets: {{ canary: \"http://127.0.0.1:9/\" }}
      requests: {requests}
gates:
{gates}
stages:
  - name: canary
    traffic: 5
    bake: {bake}
    checks: {{ every: 5m, probes: [load] }}
    gates: [{gate_names}]
{stage_extra}
  - name: full
    traffic: 100
    bake: 0s
"
    )
}

/// Runs `plan` on `scenario` (its body after `version` and `start`), returning the exit code
/// and the typed records of `--json`.
fn scenario(plan: &str, body: &str) -> (i32, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = write(dir.path(), "plan.yaml", plan);
    let scenario_path = write(
        dir.path(),
        "scenario.yaml",
        format!("version: 1\nstart: {}\n{body}", start().to_rfc3339()),
    );
    let output = ion_plan()
        .arg("run")
        .arg(&plan_path)
        .arg("--scenario")
        .arg(&scenario_path)
        .arg("--json")
        .run();
    assert_ne!(output.code, 2, "invalid input: {}", output.stderr);
    (output.code, records(&output.stdout))
}

/// Minutes since the simulated start of the records `pick` matches.
fn minutes(records: &[Record], pick: impl Fn(&Event) -> bool) -> Vec<i64> {
    records
        .iter()
        .filter(|r| pick(&r.event))
        .map(|r| (r.at - start()).num_seconds() / 60)
        .collect()
}

fn extend_gate(extend: &str, then: &str) -> String {
    format!(
        "  go:
    at: end
    on_fail: rollback
    insufficient: {{ extend: {extend}, then: {then} }}
    require:
      - {{ check: load.canary.error_rate <= 0.5%, confidence: 95% }}"
    )
}

const CLEAN: &str = "metrics:\n  load.canary.requests: 50\n  load.canary.error_rate: 0%\n";

#[test]
fn an_insufficient_end_gate_extends_the_bake_until_the_pooled_evidence_passes() {
    // 50 requests a check, every 5 minutes, a 60-minute bake: 600 requests at the bake's end,
    // short of the 765 that `<= 0.5%` at 95% needs with no error. Extended by up to 30
    // minutes, the check at +80 pools 800 requests (the first count that is enough): the stage
    // goes on at +80.
    let (code, records) = scenario(
        &plan(50, "60m", &extend_gate("30m", "rollback"), "go", ""),
        CLEAN,
    );
    assert_eq!(code, 0);
    assert_eq!(
        minutes(&records, |e| matches!(e, Event::BakeExtended { .. })),
        [60]
    );
    assert_eq!(
        minutes(
            &records,
            |e| matches!(e, Event::BakeEnded { stage, .. } if stage == "canary")
        ),
        [80]
    );
    let last_judged: Vec<(Judged, u64)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Evaluated { evaluation, .. } => {
                Some((evaluation.outcome.clone(), evaluation.evidence?.n))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        last_judged,
        [
            (Judged::Insufficient, 600),
            (Judged::Insufficient, 650),
            (Judged::Insufficient, 700),
            (Judged::Insufficient, 750),
            (Judged::Pass, 800),
        ]
    );
}

#[test]
fn when_the_extension_runs_out_the_gate_takes_then() {
    // Extended by 10 minutes only: +65 and +70 pool 650 and 700, still short; at +70 `then`.
    let (code, records) = scenario(
        &plan(50, "60m", &extend_gate("10m", "rollback"), "go", ""),
        CLEAN,
    );
    assert_eq!(code, 3, "rolled back");
    let failed: Vec<(i64, Action, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::GateFailed { action, reason, .. } => {
                Some(((r.at - start()).num_minutes(), *action, reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 70);
    assert_eq!(failed[0].1, Action::Rollback);
    assert!(
        failed[0].2.contains("insufficient evidence") && failed[0].2.contains("10m"),
        "{}",
        failed[0].2
    );
}

#[test]
fn by_default_insufficient_evidence_pauses_for_a_person_and_promotes_nothing() {
    let gate = "  go:
    at: end
    on_fail: rollback
    require:
      - { check: load.canary.error_rate <= 0.5%, confidence: 95% }";
    // Nobody approves: the run waits (exit 4) at the bake's end; the last stage never starts.
    let (code, records) = scenario(
        &plan(50, "60m", gate, "go", ""),
        &format!("{CLEAN}approvals:\n  canary: {{ never: true }}\n"),
    );
    assert_eq!(code, 4);
    assert_eq!(
        minutes(&records, |e| matches!(e, Event::Paused { .. })),
        [60]
    );
    assert!(
        !records
            .iter()
            .any(|r| matches!(&r.event, Event::StageStarted { stage, .. } if stage == "full"))
    );
}

#[test]
fn a_violated_interval_takes_on_fail_at_once_without_extending() {
    // 5% errors in 600 requests: the whole interval is above 0.5%.
    let (code, records) = scenario(
        &plan(50, "60m", &extend_gate("30m", "pause"), "go", ""),
        "metrics:\n  load.canary.requests: 50\n  load.canary.error_rate: 5%\n",
    );
    assert_eq!(code, 3);
    assert!(minutes(&records, |e| matches!(e, Event::BakeExtended { .. })).is_empty());
    assert_eq!(
        minutes(&records, |e| matches!(e, Event::GateFailed { .. })),
        [60]
    );
}

#[test]
fn a_stage_ends_early_the_first_time_its_end_gates_pass_after_early_after() {
    // 100 requests a check: 400 at +20 (short), 800 at +40 (enough): the bake of 2h ends at +40.
    let (code, records) = scenario(
        &plan(
            100,
            "2h",
            &extend_gate("0s", "pause"),
            "go",
            "    early: { after: 20m }",
        ),
        "metrics:\n  load.canary.requests: 100\n  load.canary.error_rate: 0%\n",
    );
    assert_eq!(code, 0);
    let ended: Vec<(i64, bool)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::BakeEnded { stage, early } if stage == "canary" => {
                Some(((r.at - start()).num_minutes(), *early))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ended, [(40, true)]);
    // Before `after`, the end gates are not judged at all.
    assert!(
        minutes(&records, |e| matches!(e, Event::Evaluated { .. }))
            .iter()
            .all(|m| *m >= 20)
    );
}

#[test]
fn insufficient_neither_resets_nor_extends_a_streak_and_is_no_error() {
    let gate = "  guard:
    at: every_check
    on_fail: rollback
    on_error: { consecutive: 1, then: rollback }
    require:
      - { check: load.canary.error_rate <= 1%, confidence: 95%, consecutive: 2 }";
    // +5: 50 errors in 1000, a violation (streak 1). +10: 0 in 10, insufficient (still 1, and
    // no error for `on_error`). +15: a violation again: the second in a row fires.
    let body = "\
metrics:
  load.canary.requests: 1000
  load.canary.error_rate: 5%
changes:
  - stage: canary
    from: 10m
    until: 15m
    metrics:
      load.canary.requests: 10
      load.canary.error_rate: 0%
";
    let (code, records) = scenario(&plan(1000, "60m", gate, "guard", ""), body);
    assert_eq!(code, 3);
    let outcomes: Vec<Judged> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Evaluated { evaluation, .. } => Some(evaluation.outcome.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        [Judged::Violation, Judged::Insufficient, Judged::Violation]
    );
    let failed: Vec<(i64, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::GateFailed { reason, .. } => {
                Some(((r.at - start()).num_minutes(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 15);
    assert!(failed[0].1.contains("violation, 2 of 2"), "{}", failed[0].1);
}

/// 200 requests one after the other: every tenth takes 100 ms, the others 10 ms. At 95%,
/// `p50 <= 50ms` passes, `p90 <= 50ms` is insufficient and `p95 <= 50ms` is violated.
#[test]
fn percentile_intervals_come_from_the_latencies_of_a_real_server() {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&count);
    let server = serve(Router::new().route(
        "/",
        get(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let ms = if n % 10 == 9 { 100 } else { 10 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "ok"
            }
        }),
    ));
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "\
version: 1
name: latencies
probes:
  load:
    load:
      targets: {{ canary: \"{}\" }}
      requests: 200
      concurrency: 1
gates:
  end:
    at: end
    on_fail: warn
    insufficient: {{ then: warn }}
    require:
      - {{ check: load.canary.p50 <= 50ms, confidence: 95% }}
      - {{ check: load.canary.p90 <= 50ms, confidence: 95% }}
      - {{ check: load.canary.p95 <= 50ms, confidence: 95% }}
stages:
  - name: only
    traffic: 100
    bake: 1s
    checks: {{ every: 1s, probes: [load] }}
    gates: [end]
",
        server.url("/")
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan()
        .arg("run")
        .arg(&path)
        .env_remove("ION_PLAN_CRASH_AFTER_EVENT")
        .run();
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 200);
    let judged: Vec<(String, Judged)> = journal_records(&dir.path().join(".ion-plan"))
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Evaluated { evaluation, .. } => Some((evaluation.condition, evaluation.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        judged,
        [
            ("load.canary.p50 <= 50ms".to_owned(), Judged::Pass),
            ("load.canary.p90 <= 50ms".to_owned(), Judged::Insufficient),
            ("load.canary.p95 <= 50ms".to_owned(), Judged::Violation),
        ]
    );
    // The decision log shows each outcome with the interval it rests on.
    let report = ion_plan()
        .args(["report", "--format", "md"])
        .arg(&path)
        .run();
    assert_eq!(report.code, 0, "{}", report.stderr);
    let line = report
        .stdout
        .lines()
        .find(|l| l.contains("p90 <= 50ms"))
        .unwrap_or_else(|| panic!("{}", report.stdout));
    assert!(
        line.contains("insufficient") && line.contains("at 95% over 200"),
        "{line}"
    );
}

fn promote(path: &Path, by: &str) -> common::Output {
    ion_plan()
        .args(["promote", "--reason", "metrics are clean", "--by", by])
        .arg(path)
        .run()
}

#[test]
fn a_person_promotes_a_baking_stage_from_another_shell_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = "\
version: 1
name: promoted
stages:
  - name: canary
    traffic: 5
    bake: 1h
  - name: full
    traffic: 100
    bake: 0s
";
    let path = write(dir.path(), "plan.yaml", plan);
    // Nothing runs: nothing to promote.
    let refused = promote(&path, "sena");
    assert_eq!(refused.code, 6, "{}", refused.stderr);

    let mut runner = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ion-plan"))
            .arg("run")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let state = dir.path().join(".ion-plan");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(state.exists()
        && !journals(&state).is_empty()
        && journal_records(&state)
            .iter()
            .any(|r| matches!(r.event, Event::StageStarted { .. })))
    {
        assert!(Instant::now() < deadline, "the stage did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
    let promoted = promote(&path, "sena");
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = runner.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the runner did not take the promotion"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(status.code(), Some(0));
    let events: Vec<Event> = journal_records(&state)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Promoted { stage, by, reason, request: Some(_) }
            if stage == "canary" && by == "sena" && reason == "metrics are clean"
    )));
    assert!(matches!(
        events.last(),
        Some(Event::RunEnded {
            outcome: Outcome::Completed,
            ..
        })
    ));
    // The run is over: a promotion now is refused, not recorded for nobody.
    let late = promote(&path, "sena");
    assert_eq!(late.code, 6, "{}", late.stderr);
}

#[test]
fn status_shows_an_extended_bake_and_how_far_its_evidence_is() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.sh",
        "#!/bin/sh\necho '{\"error_ratio\": 0, \"requests\": 50}'\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.path().join("app.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let plan = "\
version: 1
name: extended
probes:
  app:
    command: [./app.sh]
gates:
  go:
    at: end
    insufficient: { extend: 1h, then: pause }
    require:
      - { check: app.error_ratio <= 0.5%, confidence: 95%, of: app.requests }
stages:
  - name: canary
    traffic: 5
    bake: 1s
    checks: { every: 1s, probes: [app] }
    gates: [go]
  - name: full
    traffic: 100
    bake: 0s
";
    let path = write(dir.path(), "plan.yaml", plan);
    let _runner = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ion-plan"))
            .arg("run")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let status = ion_plan().args(["status", "--json"]).arg(&path).run();
        if status.code == 0 {
            let next = status.json()["next"]["action"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if next.starts_with("extended") {
                break next;
            }
        }
        assert!(Instant::now() < deadline, "the bake was never extended");
        std::thread::sleep(Duration::from_millis(100));
    };
    // 50 requests a check against the 765 that `<= 0.5%` at 95% needs.
    assert!(
        next.contains("waiting for evidence")
            && next.contains("`app.error_ratio <= 0.5%`: ")
            && next.contains(" of 765 requests"),
        "{next}"
    );
}
