//! The decision rules, in process: the engine on a simulated clock, a scripted sampler and a
//! `Vec` sink, no binary and no journal file, so each rule runs in milliseconds. (The same rules
//! run through the binary in `run_scenarios.rs`.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::BoxFuture;

use ion_plan::engine::clock::{Clock, SimClock};
use ion_plan::engine::dry_run::ApproveAtOnce;
use ion_plan::engine::run::{Engine, Options, Parts, RunInfo};
use ion_plan::engine::{
    Announce, CheckContext, Control, ControlSource, Sampler, Sink, StepContext, StepResult,
    StepRunner,
};
use ion_plan::event::{Event, Mode, Outcome, Record};
use ion_plan::plan::load::Source;
use ion_plan::plan::model::{Plan, Step};
use ion_plan::plan::validate::{Checks, validate_source};
use ion_plan::probe::{Reading, Sample};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap()
}

/// A plan of two stages checked every minute for 10 minutes, with `gates` on probe `app`.
fn plan(gates: &str, first_stage_extra: &str) -> Plan {
    let gate_names = gates
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "\
version: 1
name: engine
probes:
  app:
    command: [app-metrics]
gates:
{gates}
defaults:
  checks: {{ every: 1m, probes: [app] }}
  gates: [{gate_names}]
stages:
  - name: first
    traffic: 10
    bake: 10m
{first_stage_extra}
  - name: last
    traffic: 100
    bake: 10m
rollback:
  - run: [rollback]
"
    );
    let report = validate_source(
        Source::new("engine.yaml", text),
        Checks { filesystem: false },
    );
    let errors: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| &d.diagnostic.message)
        .collect();
    report
        .plan
        .unwrap_or_else(|| panic!("the test plan is invalid: {errors:?}"))
}

/// Answers every check with `error_rate` = the value the script gives for (stage, minute).
/// (stage, minute since the stage started) → the error rate, or `None` for a probe error.
type Rates = dyn Fn(&str, u64) -> Option<f64> + Send + Sync;

struct Script(Box<Rates>);

impl Sampler for Script {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        let minute = context.offset.as_secs() / 60;
        let reading = match (self.0)(context.stage.unwrap_or(""), minute) {
            Some(value) => Reading::Value(value),
            None => Reading::Error("connection refused".to_owned()),
        };
        // Legacy's rate beside it, a little different each minute: a baseline to compare with.
        #[expect(clippy::cast_precision_loss, reason = "minutes of a test run")]
        let legacy = Reading::Value(0.001 + minute as f64 * 1e-5);
        let sample = Sample::ok(
            probe,
            BTreeMap::from([
                ("error_rate".to_owned(), reading),
                ("legacy_rate".to_owned(), legacy),
            ]),
        );
        Box::pin(std::future::ready(sample))
    }
}

/// Steps always succeed, and are counted.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl StepRunner for Steps {
    fn describe(&self, step: &Step, _: StepContext<'_>) -> String {
        step.run
            .as_ref()
            .map(|argv| {
                argv.iter()
                    .map(|a| a.0.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        context: StepContext<'a>,
        mut announce: Announce,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            announce.started(None).await;
            self.0.lock().unwrap().push(self.describe(step, context));
            StepResult {
                ok: true,
                detail: "exit 0".to_owned(),
            }
        })
    }
}

/// Nobody answers. With `can_answer: false` (no terminal), a wait for a person suspends the run;
/// with `true`, the run waits out the deadline.
struct Silent {
    can_answer: bool,
}

const NOBODY: Silent = Silent { can_answer: false };

impl ControlSource for Silent {
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>> {
        Box::pin(async move {
            clock.sleep_until(deadline).await;
            None
        })
    }
    fn person_needed(&mut self, _: &str, _: DateTime<Utc>) {}
    fn can_answer(&self) -> bool {
        self.can_answer
    }
}

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<Record>>>);

impl Sink for Recorded {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

struct Ran {
    outcome: Outcome,
    records: Vec<Record>,
    steps: Vec<String>,
}

impl Ran {
    /// Minutes since the run started at which `pick` matched an event.
    fn minutes_of(&self, pick: impl Fn(&Event) -> bool) -> Vec<i64> {
        self.records
            .iter()
            .filter(|r| pick(&r.event))
            .map(|r| (r.at - start()).num_seconds() / 60)
            .collect()
    }

    fn gate_failures(&self) -> Vec<(String, String)> {
        self.records
            .iter()
            .filter_map(|r| match &r.event {
                Event::GateFailed { stage, gate, .. } => Some((stage.clone(), gate.clone())),
                _ => None,
            })
            .collect()
    }
}

fn run_with(
    plan: &Plan,
    script: impl Fn(&str, u64) -> Option<f64> + Send + Sync + 'static,
    control: Box<dyn ControlSource>,
) -> Ran {
    run_from(plan, None, start(), script, control)
}

/// Runs `plan` afresh, or takes up `resume` (a journal's state), on a clock starting at `at`.
fn run_from(
    plan: &Plan,
    resume: Option<ion_plan::event::state::RunState>,
    at: DateTime<Utc>,
    script: impl Fn(&str, u64) -> Option<f64> + Send + Sync + 'static,
    control: Box<dyn ControlSource>,
) -> Ran {
    let sink = Recorded::default();
    let steps = Arc::new(Steps::default());
    let parts = Parts {
        clock: Arc::new(SimClock::new(at)),
        sampler: Arc::new(Script(Box::new(script))),
        steps: Arc::clone(&steps) as Arc<dyn StepRunner>,
        control,
        sinks: vec![Box::new(sink.clone())],
    };
    let info = RunInfo {
        run_id: "test".to_owned(),
        plan_path: "engine.yaml".to_owned(),
        digest: "sha256:test".to_owned(),
        mode: Mode::Scenario,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let engine = Engine::resume(plan, info, parts, resume, Options::default()).unwrap();
    let outcome = runtime.block_on(engine.run()).unwrap();
    let records = sink.0.lock().unwrap().clone();
    let steps = steps.0.lock().unwrap().clone();
    Ran {
        outcome,
        records,
        steps,
    }
}

fn run(plan: &Plan, script: impl Fn(&str, u64) -> Option<f64> + Send + Sync + 'static) -> Ran {
    run_with(plan, script, Box::new(ApproveAtOnce::default()))
}

const GUARD: &str = "  guard:
    at: every_check
    on_fail: rollback
    require:
      - check: app.error_rate <= 1%
        consecutive: 3";

#[test]
fn a_healthy_canary_completes_every_stage_with_its_checks() {
    let ran = run(&plan(GUARD, ""), |_, _| Some(0.001));
    assert_eq!(ran.outcome, Outcome::Completed);
    let checks = ran.minutes_of(|e| matches!(e, Event::CheckStarted { .. }));
    // Ten checks a stage (minutes 1..=10), the second stage starting at minute 10.
    assert_eq!(checks.len(), 20, "{checks:?}");
    assert_eq!(checks.first(), Some(&1));
    assert_eq!(checks.last(), Some(&20));
    assert!(ran.gate_failures().is_empty());
    assert!(ran.steps.is_empty(), "no rollback ran: {:?}", ran.steps);
}

#[test]
fn three_violations_in_a_row_roll_back_at_the_third_and_not_before() {
    // Bad from minute 4 of the first stage: violations at checks 4, 5, 6.
    let ran = run(&plan(GUARD, ""), |stage, minute| {
        Some(if stage == "first" && minute >= 4 {
            0.05
        } else {
            0.0
        })
    });
    assert_eq!(ran.outcome, Outcome::RolledBack);
    assert_eq!(
        ran.minutes_of(|e| matches!(e, Event::GateFailed { .. })),
        vec![6]
    );
    assert_eq!(ran.steps, vec!["rollback"]);
}

#[test]
fn a_pass_between_violations_resets_the_streak() {
    // Violation, violation, pass, violation, violation, pass …: never three in a row.
    let ran = run(&plan(GUARD, ""), |_, minute| {
        Some(if minute % 3 == 0 { 0.0 } else { 0.05 })
    });
    assert_eq!(ran.outcome, Outcome::Completed, "{:?}", ran.gate_failures());
}

#[test]
fn probe_errors_in_a_row_take_the_gates_on_error_action_and_are_not_violations() {
    let gates = "  guard:
    at: every_check
    on_fail: rollback
    on_error: { consecutive: 2, then: rollback }
    require:
      - check: app.error_rate <= 1%
        consecutive: 3";
    // One error, then a pass: no action. Then two errors in a row: the on_error action.
    let ran = run(&plan(gates, ""), |stage, minute| match (stage, minute) {
        ("first", 2 | 5 | 6) => None,
        _ => Some(0.0),
    });
    assert_eq!(ran.outcome, Outcome::RolledBack);
    assert_eq!(
        ran.minutes_of(|e| matches!(e, Event::GateFailed { .. })),
        vec![6]
    );
}

#[test]
fn an_end_gate_judges_the_newest_sample_when_the_bake_ends() {
    let gates = "  go:
    at: end
    on_fail: rollback
    require:
      - check: app.error_rate <= 0.5%";
    // Bad early in the first stage, good at its end: the end gate passes.
    let early_bad = run(&plan(gates, ""), |_, minute| {
        Some(if minute < 5 { 0.05 } else { 0.0 })
    });
    assert_eq!(early_bad.outcome, Outcome::Completed);
    // Good all along, bad at the last check of the first stage: rolled back at the bake's end.
    let late_bad = run(&plan(gates, ""), |stage, minute| {
        Some(if stage == "first" && minute == 10 {
            0.05
        } else {
            0.0
        })
    });
    assert_eq!(late_bad.outcome, Outcome::RolledBack);
    assert_eq!(
        late_bad.minutes_of(|e| matches!(e, Event::GateFailed { .. })),
        vec![10]
    );
    assert_eq!(
        late_bad.gate_failures(),
        vec![("first".to_owned(), "go".to_owned())]
    );
}

#[test]
fn a_pause_with_nobody_to_answer_suspends_the_run_waiting() {
    let gates = "  soft:
    at: every_check
    on_fail: pause
    require:
      - check: app.error_rate <= 1%";
    let ran = run_with(
        &plan(gates, ""),
        |_, minute| Some(if minute == 3 { 0.05 } else { 0.0 }),
        Box::new(NOBODY),
    );
    assert_eq!(ran.outcome, Outcome::Waiting);
    assert_eq!(
        ran.minutes_of(|e| matches!(e, Event::Paused { .. })),
        vec![3]
    );
    assert!(
        !ran.records
            .iter()
            .any(|r| matches!(r.event, Event::StageStarted { ref stage, .. } if stage == "last")),
        "a paused stage is not promoted"
    );
}

#[test]
fn an_approval_that_times_out_takes_on_timeout_at_its_deadline() {
    let approval = "    approval: { timeout: 30m, on_timeout: rollback }";
    let gates = "  guard:
    at: every_check
    on_fail: rollback
    require:
      - check: app.error_rate <= 1%";
    let ran = run_with(
        &plan(gates, approval),
        |_, _| Some(0.0),
        Box::new(Silent { can_answer: true }),
    );
    assert_eq!(ran.outcome, Outcome::RolledBack);
    // Bake ends at minute 10; the approval times out 30 minutes later.
    assert_eq!(
        ran.minutes_of(|e| matches!(e, Event::ApprovalTimedOut { .. })),
        vec![40]
    );
    // The guards kept checking while it waited (every minute).
    let checks = ran.minutes_of(|e| matches!(e, Event::CheckStarted { .. }));
    assert!(checks.contains(&25), "{checks:?}");
}

#[test]
fn a_stage_approved_before_a_crash_is_not_asked_for_approval_again() {
    let approval = "    approval: { timeout: 30m, on_timeout: rollback }";
    let plan = plan(GUARD, approval);
    let first = run(&plan, |_, _| Some(0.0));
    assert_eq!(first.outcome, Outcome::Completed);
    // The runner died right after the approval was journaled, before `stage_completed`.
    let approved = first
        .records
        .iter()
        .position(|r| matches!(r.event, Event::Approved { .. }))
        .expect("the stage was approved");
    let journal = &first.records[..=approved];
    let state =
        ion_plan::event::state::RunState::fold("test", "engine.yaml", "sha256:test", journal);

    // Taken up with nobody at the terminal: it goes on, it does not wait for a second approval.
    let resumed = run_from(
        &plan,
        Some(state),
        journal.last().unwrap().at,
        |_, _| Some(0.0),
        Box::new(NOBODY),
    );
    assert_eq!(resumed.outcome, Outcome::Completed);
    let resumed = resumed.records;
    assert!(
        !resumed.iter().any(|r| matches!(
            r.event,
            Event::ApprovalRequested { .. } | Event::Suspended { .. }
        )),
        "{resumed:#?}"
    );
}

/// A compared series survives a crash: the stage's values before it and after it are judged
/// together at the stage's end, as a run that never stopped judges them.
#[test]
fn a_compared_series_pools_across_a_resume() {
    let judge = "  judge:
    at: end
    on_fail: rollback
    compare:
      - { canary: app.error_rate, baseline: app.legacy_rate, tolerance: 10% }";
    let plan = plan(judge, "");
    #[expect(clippy::cast_precision_loss, reason = "minutes of a test run")]
    let higher = |_: &str, minute: u64| Some(0.05 + minute as f64 * 1e-4);
    let comparisons = |ran: &Ran| -> Vec<ion_plan::event::Comparison> {
        ran.records
            .iter()
            .filter_map(|r| match &r.event {
                Event::Evaluated { evaluation, .. } => evaluation.compare,
                _ => None,
            })
            .collect()
    };
    let fresh = run(&plan, higher);
    assert_eq!(fresh.outcome, Outcome::RolledBack);
    let judged = comparisons(&fresh);
    assert_eq!(judged.len(), 1, "judged once, at the first stage's end");
    assert_eq!(judged[0].shift, Some(ion_plan::event::ShiftWay::Higher));
    let checks = fresh
        .records
        .iter()
        .filter(|r| matches!(r.event, Event::CheckStarted { .. }))
        .count();
    assert_eq!(
        judged[0].nx, checks as u64,
        "every check of the stage, once"
    );

    // The runner died after the stage's fourth sample.
    let fourth = fresh
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.event, Event::SampleTaken { .. }))
        .nth(3)
        .map(|(i, _)| i)
        .unwrap();
    let journal = &fresh.records[..=fourth];
    let state =
        ion_plan::event::state::RunState::fold("test", "engine.yaml", "sha256:test", journal);
    let resumed = run_from(
        &plan,
        Some(state),
        journal.last().unwrap().at,
        higher,
        Box::new(NOBODY),
    );
    assert_eq!(resumed.outcome, Outcome::RolledBack);
    let after = comparisons(&resumed);
    assert_eq!(after.len(), 1);
    // Taken up, the stage checks at once (the service may have changed meanwhile), then at
    // its cadence: the 4 values from before the crash and every check since are judged.
    let since = resumed
        .records
        .iter()
        .filter(|r| matches!(r.event, Event::CheckStarted { .. }))
        .count() as u64;
    assert_eq!((after[0].nx, after[0].ny), (4 + since, 4 + since));
    assert_eq!(after[0].shift, Some(ion_plan::event::ShiftWay::Higher));
}
