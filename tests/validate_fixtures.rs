//! Every invalid fixture under `tests/fixtures/invalid/` is rejected with the diagnostics its
//! `# expect: CODE [LINE:COL]` header lines name, and no other error. A fixture under `multi/`
//! has mistakes in several layers at once; it gets exactly one finding per `# expect:` line, so a
//! finding another one's fix would remove (a cascade) fails it.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{ion_plan, root};

struct Expectation {
    code: String,
    position: Option<(u64, u64)>,
}

fn fixtures() -> Vec<(PathBuf, Vec<Expectation>)> {
    let mut out = Vec::new();
    for layer in ["yaml", "schema", "semantic", "multi"] {
        let dir = root().join("tests/fixtures/invalid").join(layer);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let expectations: Vec<Expectation> = text
                .lines()
                .filter_map(|line| line.strip_prefix("# expect: "))
                .map(|rest| {
                    let mut words = rest.split_whitespace();
                    let code = words.next().expect("a code").to_owned();
                    let position = words.next().map(|p| {
                        let (line, column) = p.split_once(':').expect("LINE:COL");
                        (line.parse().unwrap(), column.parse().unwrap())
                    });
                    Expectation { code, position }
                })
                .collect();
            assert!(
                !expectations.is_empty(),
                "{} has no `# expect:` line",
                path.display()
            );
            out.push((path, expectations));
        }
    }
    out
}

#[test]
fn there_are_enough_fixtures_to_cover_every_check() {
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 40,
        "only {} invalid fixtures",
        fixtures.len()
    );
    let codes: BTreeSet<String> = fixtures
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| e.code.clone()))
        .collect();
    // Every error code a plan file can earn has a fixture (size, UTF-8 and depth are generated
    // by tests in `validate_cli.rs`; warnings are covered there too).
    let untested: Vec<&str> = ion_plan::plan::diagnostic::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| {
            !codes.contains(*c)
                && ![
                    "too-large",
                    "not-utf8",
                    "empty",
                    "yaml-limit",
                    "command-not-found",
                    "unused",
                    "unreachable-streak",
                    "partial-rollout",
                    "secret-in-argv",
                    "insufficient-evidence",
                    "early-without-confidence",
                ]
                .contains(c)
        })
        .collect();
    assert!(untested.is_empty(), "codes without a fixture: {untested:?}");
}

#[test]
fn every_invalid_fixture_fails_with_its_diagnostics() {
    let fixtures = fixtures();
    let output = ion_plan()
        .arg("validate")
        .arg("--format=json")
        .args(fixtures.iter().map(|(p, _)| p))
        .run();
    assert_eq!(output.code, 2, "stderr: {}", output.stderr);
    let report = output.json();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), fixtures.len());
    let mut failures = Vec::new();
    for ((path, expectations), file) in fixtures.iter().zip(files) {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        assert_eq!(file["valid"], false, "{name} passed validation");
        let diagnostics = file["diagnostics"].as_array().unwrap();
        let errors: BTreeSet<&str> = diagnostics
            .iter()
            .filter(|d| d["severity"] == "error")
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = expectations
            .iter()
            .map(|e| e.code.as_str())
            .filter(|c| *c != "partial-rollout")
            .collect();
        if errors != expected {
            failures.push(format!("{name}: errors {errors:?}, expected {expected:?}"));
        }
        if name.contains("/multi/") && diagnostics.len() != expectations.len() {
            let got: Vec<String> = diagnostics
                .iter()
                .map(|d| format!("{} {}:{}", d["code"], d["line"], d["column"]))
                .collect();
            failures.push(format!(
                "{name}: {} findings, expected {}: {got:?}",
                diagnostics.len(),
                expectations.len()
            ));
        }
        for expectation in expectations {
            let found = diagnostics.iter().any(|d| {
                d["code"] == expectation.code.as_str()
                    && expectation
                        .position
                        .is_none_or(|(line, column)| d["line"] == line && d["column"] == column)
            });
            if !found {
                let got: Vec<String> = diagnostics
                    .iter()
                    .map(|d| format!("{} {}:{}", d["code"], d["line"], d["column"]))
                    .collect();
                failures.push(format!(
                    "{name}: no `{}` at {:?}; got {got:?}",
                    expectation.code, expectation.position
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
