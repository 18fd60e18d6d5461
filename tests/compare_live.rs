//! `compare:` on a live service: the demo's backends on 127.0.0.1, the canary 20% slower than
//! legacy, is caught as `higher` on `load.canary.latency` vs `load.legacy.latency` within one
//! stage; with both alike, the same gate passes.

mod common;

use common::{ion_plan, journal_records, write};
use ion_plan::demo::{Backends, Ports};
use ion_plan::event::evaluation::Outcome;
use ion_plan::event::{Evaluation, Event, ShiftWay};

/// One stage checked every second for 2 s, 40 requests to each backend per check, judged at its end.
const PLAN: &str = r"version: 1
name: compare-live
probes:
  load:
    load:
      targets:
        canary: CANARY/api/health
        legacy: LEGACY/api/health
      requests: 40
      concurrency: 2
      timeout: 2s
gates:
  judge:
    at: end
    compare:
      - canary: load.canary.latency
        baseline: load.legacy.latency
        direction: increase
        tolerance: 5%
    on_fail: rollback
stages:
  - name: canary-10
    traffic: 10
    bake: 2s
    checks: { every: 1s, probes: [load] }
    gates: [judge]
";

/// Sets a backend's latency (`PUT /admin/knobs`).
async fn latency(backend: std::net::SocketAddr, ms: u64) {
    let response = reqwest::Client::new()
        .put(format!("http://{backend}/admin/knobs"))
        .body(format!(r#"{{"latency_ms": {ms}}}"#))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

/// Runs the plan against backends at these latencies; the exit code, the comparison, and the
/// folder with the plan (`plan.yaml`) and its state (`state/`).
fn run(legacy_ms: u64, canary_ms: u64) -> (i32, Evaluation, tempfile::TempDir) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends = runtime
        .block_on(Backends::start(false, Ports::default()))
        .unwrap();
    runtime.block_on(latency(backends.legacy, legacy_ms));
    runtime.block_on(latency(backends.canary, canary_ms));
    let dir = tempfile::tempdir().unwrap();
    let plan = PLAN
        .replace("CANARY", &format!("http://{}", backends.canary))
        .replace("LEGACY", &format!("http://{}", backends.legacy));
    let path = write(dir.path(), "plan.yaml", plan);
    let state = dir.path().join("state");
    let output = ion_plan()
        .arg("run")
        .arg(&path)
        .arg("--state-dir")
        .arg(&state)
        .run();
    backends.stop();
    let compared: Vec<Evaluation> = journal_records(&state)
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Evaluated { evaluation, .. } if evaluation.compare.is_some() => Some(evaluation),
            _ => None,
        })
        .collect();
    assert_eq!(
        compared.len(),
        1,
        "one end gate, judged once: {}",
        output.stderr
    );
    let evaluation = compared.into_iter().next().unwrap();
    (output.code, evaluation, dir)
}

#[test]
fn a_canary_20_percent_slower_is_higher_and_an_equal_one_passes() {
    let (code, slower, dir) = run(20, 24);
    let comparison = slower.compare.unwrap();
    assert_eq!(slower.outcome, Outcome::Violation, "{}", slower.describe());
    assert_eq!(comparison.shift, Some(ShiftWay::Higher));
    assert_eq!(code, 3, "rolled back: {}", slower.describe());
    // The stage's checks of 40 requests on each side, pooled; the shift about 4 ms, beyond the
    // margin of 5% of legacy's ~20 ms median.
    assert!(
        comparison.nx >= 80 && comparison.nx % 40 == 0,
        "{comparison:?}"
    );
    assert_eq!(comparison.nx, comparison.ny);
    let lower = comparison.lower.unwrap();
    assert!(lower > comparison.margin, "{comparison:?}");
    assert!(
        (0.002..0.006).contains(&comparison.estimate.unwrap()),
        "{comparison:?}"
    );
    assert!(
        slower.describe().contains("higher"),
        "{}",
        slower.describe()
    );

    // Backtest: the same plan decides the same on the recorded latencies; one that tolerates
    // twice legacy's median would not have rolled back (exit 3, the comparison named).
    let plan = dir.path().join("plan.yaml");
    let backtest = |plan: &std::path::Path| {
        ion_plan()
            .arg("backtest")
            .arg(plan)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .run()
    };
    let same = backtest(&plan);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    let text = std::fs::read_to_string(&plan).unwrap();
    let tolerant = write(
        dir.path(),
        "plan.yaml",
        text.replace("tolerance: 5%", "tolerance: 200%"),
    );
    let flipped = backtest(&tolerant);
    assert_eq!(flipped.code, 3, "{}{}", flipped.stdout, flipped.stderr);
    assert!(
        flipped.stdout.contains("higher") && flipped.stdout.contains(": pass"),
        "{}",
        flipped.stdout
    );

    let (code, alike, _) = run(20, 20);
    assert_eq!(alike.outcome, Outcome::Pass, "{}", alike.describe());
    assert_eq!(alike.compare.unwrap().shift, None);
    assert_eq!(code, 0, "{}", alike.describe());
}
