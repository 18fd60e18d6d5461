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
