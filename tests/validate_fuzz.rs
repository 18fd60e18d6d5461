//! Validation never panics and always points inside the file: arbitrary bytes, and random
//! mutations of the real plans. `PROPTEST_CASES=100000 cargo test --release --test validate_fuzz`
//! runs it longer.

use std::path::Path;

use ion_plan::plan::load::{self, Loaded};
use ion_plan::plan::validate::{Checks, Report, validate_source};
use proptest::prelude::*;

const PLANS: &[&str] = &[
    include_str!("../plans/phase4.yaml"),
    include_str!("../plans/nginx-canary.yaml"),
    include_str!("../plans/blue-green.yaml"),
];

fn validate_bytes(bytes: Vec<u8>) -> Option<Report> {
    match load::from_bytes(Path::new("plans/fuzz.yaml"), bytes) {
        Loaded::Text(source) => Some(validate_source(source, Checks { filesystem: false })),
        Loaded::Invalid(..) => None,
    }
}

fn assert_located(report: &Report) {
    let lines = report.source.text.split('\n').count();
    for d in &report.diagnostics {
        assert!(
            d.line >= 1 && d.line <= lines,
            "line {} of {lines}: {d:?}",
            d.line
        );
        assert!(d.column >= 1, "{d:?}");
        assert!(
            d.span.offset + d.span.len <= report.source.text.len(),
            "{d:?}"
        );
        assert!(!d.diagnostic.message.is_empty());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let yamlish = prop::sample::select(vec![
        ":", " ", "\n", "-", "[", "]", "{", "}", "\"", "'", "&a", "*a", "#", "\t", "%", "${{",
        "}}", "5", "0.5%", "200ms", "<=", "==", "null", "~", "|", ">", "---", "!!str", "<<: *a",
        "é",
    ]);
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), prop::collection::vec(yamlish, 1..4)).prop_map(|(at, parts)| {
            Mutation::Insert {
                at,
                text: parts.concat(),
            }
        }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut text = text.to_owned();
    for m in mutations {
        let boundary = |text: &str, at: usize| {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match m {
            Mutation::Delete { at, len } => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + len).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Mutation::Insert { at, text: insert } => {
                let at = boundary(&text, *at);
                text.insert_str(at, insert);
            }
            Mutation::DuplicateLine { line } => {
                let mut lines: Vec<&str> = text.split('\n').collect();
                let i = line % lines.len();
                lines.insert(i, lines[i]);
                text = lines.join("\n");
            }
            Mutation::SwapLines { a, b } => {
                let mut lines: Vec<&str> = text.split('\n').collect();
                let n = lines.len();
                lines.swap(a % n, b % n);
                text = lines.join("\n");
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Some(report) = validate_bytes(bytes) {
            assert_located(&report);
        }
    }

    #[test]
    fn mutated_plans_never_panic_and_point_inside_the_file(
        plan in prop::sample::select(PLANS),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let text = apply(plan, &mutations);
        let report = validate_bytes(text.into_bytes()).expect("mutations keep UTF-8");
        assert_located(&report);
    }
}

/// The model and the schema agree: a plan that passed, written back out by the model, passes the
/// schema again and reads back to the same plan.
#[test]
fn plans_round_trip_through_the_model() {
    for text in PLANS {
        let report = validate_bytes(text.as_bytes().to_vec()).unwrap();
        let plan = report.plan.expect("the plan is valid");
        let value = serde_json::to_value(&plan).unwrap();
        let errors = ion_plan::plan::schema::PlanSchema::get().check(&value);
        assert!(errors.is_empty(), "{errors:?}");
        let again: ion_plan::plan::model::Plan = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), value);
    }
}

/// A valid plan with no warnings either, for [`MISTAKES`] to break.
const BASE: &str = "version: 1
name: fixture
probes:
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
      concurrency: 2
  app:
    http:
      url: http://127.0.0.1:9/stats.json
      metrics: { memory: /memory/used_ratio }
gates:
  guard:
    at: every_check
    require:
      - check: load.canary.p95 <= 1s
        consecutive: 2
      - app.memory <= 85%
    on_fail: rollback
stages:
  - name: half
    traffic: 50
    bake: 10m
    checks: { every: 1m, probes: [load, app] }
    gates: [guard]
  - name: more
    traffic: 60
    bake: 10m
    checks: { every: 1m, probes: [load, app] }
    gates: [guard]
  - name: full
    traffic: 100
    bake: 10m
    checks: { every: 1m, probes: [load, app] }
    gates: [guard]
";

/// Independent mistakes in every layer, each one edit of one line of [`BASE`] (so positions
/// stay put): the `n`-th occurrence of a text, and what it becomes.
const MISTAKES: &[(&str, usize, &str)] = &[
    // unknown-key
    ("on_fail:", 0, "on_fial:"),
    // bad-duration
    ("bake: 10m", 0, "bake: 5mins"),
    // unknown-metric
    ("load.canary.p95", 0, "load.canary.p96"),
    // traffic-order
    ("traffic: 60", 0, "traffic: 20"),
    // bad-value
    ("at: every_check", 0, "at: evry_check"),
    // bad-url
    (
        "url: http://127.0.0.1:9/stats",
        0,
        "url: ftp://127.0.0.1:9/stats",
    ),
    // range
    ("traffic: 100", 0, "traffic: 101"),
    // range
    ("version: 1", 0, "version: 2"),
    // unknown-probe
    ("probes: [load, app]", 2, "probes: [load, ap]"),
    // unknown-key and required
    ("bake: 10m", 2, "bakee: 10m"),
    // duplicate-name
    ("name: more", 0, "name: half"),
    // range, in the probe that the unknown metric reads: it does not hide that finding
    ("concurrency: 2", 0, "concurrency: 0"),
];

fn with_mistakes(chosen: &[&(&str, usize, &str)]) -> String {
    let mut edits: Vec<(usize, &str, &str)> = chosen
        .iter()
        .map(|(find, nth, replace)| {
            let at = BASE
                .match_indices(find)
                .nth(*nth)
                .unwrap_or_else(|| panic!("`{find}` #{nth} in the base plan"))
                .0;
            (at, *find, *replace)
        })
        .collect();
    // From the end, so each edit finds the base text where it was.
    edits.sort_unstable_by_key(|(at, ..)| std::cmp::Reverse(*at));
    let mut text = BASE.to_owned();
    for (at, find, replace) in edits {
        text.replace_range(at..at + find.len(), replace);
    }
    text
}

/// Each finding's place and code (a message may quote a value another mistake changed, as
/// traffic-order quotes the stage's name).
fn findings(text: &str) -> std::collections::BTreeSet<(usize, usize, String)> {
    let report = validate_bytes(text.as_bytes().to_vec()).unwrap();
    assert_located(&report);
    report
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column, d.diagnostic.code.to_string()))
        .collect()
}

#[test]
fn the_base_plan_is_clean_and_each_mistake_is_found() {
    assert!(findings(BASE).is_empty(), "{:?}", findings(BASE));
    for mistake in MISTAKES {
        assert!(
            !findings(&with_mistakes(&[mistake])).is_empty(),
            "{mistake:?} is not found"
        );
    }
}

proptest! {
    /// README: `validate` reports every problem in one run. Mistakes in different layers (schema
    /// and meaning) do not hide each other, and none adds findings of its own to another's.
    #[test]
    fn independent_mistakes_are_reported_together(
        chosen in prop::sample::subsequence(MISTAKES.iter().collect::<Vec<_>>(), 2..=3),
    ) {
        let together = findings(&with_mistakes(&chosen));
        let each: std::collections::BTreeSet<_> = chosen
            .iter()
            .flat_map(|mistake| findings(&with_mistakes(&[*mistake])))
            .collect();
        prop_assert_eq!(together, each);
    }
}
