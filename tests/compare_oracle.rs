//! Compare (`docs/plan.md`, "Compare") against outside judges: a port of R's `wilcox.test`
//! interval written from R's source with scipy (`tests/oracle/compare.py`), scipy's own
//! Mann–Whitney p-value at either side of each end of our interval, and numpy's median; then
//! the properties a shift interval must have whatever the oracle says.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hdrhistogram::Histogram;
use ion_plan::stats::compare::{Points, Shift, ShiftError, shift};
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

impl Rng {
    /// Uniform in `range`.
    fn below(&mut self, range: std::ops::RangeInclusive<usize>) -> usize {
        let span = (range.end() - range.start() + 1) as u64;
        range.start() + usize::try_from(self.next() % span).unwrap()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(0..=from.len() - 1)]
    }
}

/// One comparison: canary values x and baseline values y, with counts.
struct Case {
    kind: &'static str,
    x: Vec<(f64, u64)>,
    y: Vec<(f64, u64)>,
    confidence: f64,
}

const CONFIDENCES: [f64; 7] = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.9999];

fn ones(values: impl IntoIterator<Item = f64>) -> Vec<(f64, u64)> {
    values.into_iter().map(|v| (v, 1)).collect()
}

/// `n` normal values around `center` with spread `scale`, rounded to a thousandth of it (so
/// pairwise differences are apart and ties happen now and then).
fn normals(rng: &mut Rng, n: usize, center: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| ((center + rng.normal()) * 1000.0).round() / 1000.0 * scale)
        .collect()
}

/// The seeded random cases: sizes 3–60 a side, eight kinds in turn.
fn random_cases(count: usize) -> Vec<Case> {
    let mut rng = Rng(2024);
    (0..count)
        .map(|i| {
            let (nx, ny) = (rng.below(3..=60), rng.below(3..=60));
            let confidence = rng.pick(&CONFIDENCES);
            let scale = 10f64.powi(i32::try_from(rng.below(0..=12)).unwrap() - 6);
            let shift = rng.pick(&[0.0, 0.0, 0.3, 1.0, 3.0, 50.0]);
            let (kind, x, y) = match i % 8 {
                0 => (
                    "continuous",
                    ones(normals(&mut rng, nx, shift, scale)),
                    ones(normals(&mut rng, ny, 0.0, scale)),
                ),
                1 => {
                    let small = |rng: &mut Rng, n, up: u64| -> Vec<f64> {
                        #[expect(clippy::cast_precision_loss, reason = "0 to 5")]
                        (0..n).map(|_| (rng.next() % 5 + up) as f64).collect()
                    };
                    let up = rng.next() % 2;
                    (
                        "ties",
                        ones(small(&mut rng, nx, up)),
                        ones(small(&mut rng, ny, 0)),
                    )
                }
                2 => (
                    "canary constant",
                    vec![(rng.pick(&[0.0, 1.0, 2.5, -3.0]), nx as u64)],
                    ones(normals(&mut rng, ny, 0.0, 1.0)),
                ),
                3 => (
                    "baseline constant",
                    ones(normals(&mut rng, nx, shift, scale)),
                    vec![(rng.pick(&[0.0, 0.001, -7.0]) * scale, ny as u64)],
                ),
                4 => (
                    "large shift",
                    ones(normals(&mut rng, nx, 1000.0, scale)),
                    ones(normals(&mut rng, ny, 0.0, scale)),
                ),
                5 => {
                    // Latencies in seconds, to 0.1 ms, log-normal around 50 ms.
                    let mut latencies = |n, factor: f64| -> Vec<f64> {
                        (0..n)
                            .map(|_| {
                                (0.05 * factor * (0.4 * rng.normal()).exp() * 1e4).round() / 1e4
                            })
                            .collect()
                    };
                    let factor = 1.0 + shift / 10.0;
                    (
                        "latencies",
                        ones(latencies(nx, factor)),
                        ones(latencies(ny, 1.0)),
                    )
                }
                6 => {
                    // Tiny and huge values mixed, and signed zeros.
                    let mut mixed = |n| -> Vec<f64> {
                        (0..n)
                            .map(|_| {
                                let k = f64::from(u32::try_from(rng.next() % 100).unwrap());
                                match rng.next() % 4 {
                                    0 => k * 1e-9,
                                    1 => 1e6 + k,
                                    2 => -0.0,
                                    _ => 0.0,
                                }
                            })
                            .collect()
                    };
                    ("mixed magnitudes", ones(mixed(nx)), ones(mixed(ny)))
                }
                _ => {
                    // Values with counts, as histogram buckets: few values, many repeats.
                    let mut buckets = |n: usize, up: f64| -> Vec<(f64, u64)> {
                        (0..n.div_ceil(4))
                            .map(|_| {
                                let v = f64::from(u32::try_from(rng.next() % 40).unwrap());
                                ((v + up) * scale, 1 + rng.next() % 200)
                            })
                            .collect()
                    };
                    ("counts", buckets(nx, shift), buckets(ny, 0.0))
                }
            };
            Case {
                kind,
                x,
                y,
                confidence,
            }
        })
        .collect()
}

/// The edges: one value on a side, two constant sides, signed zeros, huge counts.
fn edge_cases() -> Vec<Case> {
    let case = |kind, x: Vec<(f64, u64)>, y: Vec<(f64, u64)>| Case {
        kind,
        x,
        y,
        confidence: 0.98,
    };
    vec![
        // R's own extreme: `wilcox.test(1, 2:60, conf.int = TRUE)` returns the ends.
        case("n = 1", vec![(1.0, 1)], ones((2..=60).map(f64::from))),
        case("n = 1", ones((2..=60).map(f64::from)), vec![(1.0, 1)]),
        // One value a side: two constant sides, where R stops.
        case("n = 1", vec![(1.0, 1)], vec![(2.0, 1)]),
        case("n = 1", vec![(5.0, 1)], ones([1.0, 2.0, 3.0])),
        case("all tied", vec![(1.0, 3)], vec![(1.0, 2)]),
        case("all tied", vec![(0.0, 10)], vec![(-0.0, 10)]),
        case("two constants", vec![(0.7, 5)], vec![(0.01, 4)]),
        case("two constants", vec![(2.0, 5)], vec![(1.0, 4)]),
        case(
            "signed zeros",
            ones([-0.0, 0.0, 1.0, 2.0, -0.0]),
            ones([0.0, -0.0, 0.0, 1.0]),
        ),
        case(
            "mixed magnitudes",
            ones([1e-9, 2e-9, 1e6, 3e-9, 1e6 + 1.0]),
            ones([1e6, 5e-9, 1e6 + 2.0, 0.0, 1e-9]),
        ),
        case(
            "huge counts",
            vec![(0.010, 40_000), (0.011, 50_000), (0.020, 10_000)],
            vec![(0.010, 45_000), (0.011, 50_000), (0.015, 5_000)],
        ),
        case(
            "huge counts",
            vec![(1.0, 100_000), (2.0, 1)],
            vec![(1.0, 99_999), (3.0, 2)],
        ),
    ]
}

/// The load probe's histogram (µs, 1 µs to an hour, 3 digits) of `n` latencies log-normal
/// around `median_ms`, and their bucket values in seconds, one per latency: the expansion the
/// oracle ranks, built from each raw latency rather than from the histogram's iterator.
fn latency_histogram(rng: &mut Rng, n: usize, median_ms: f64) -> (Histogram<u64>, Vec<f64>) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let mut expanded = Vec::with_capacity(n);
    for _ in 0..n {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive latency far below an hour"
        )]
        let micros = (median_ms * 1000.0 * (0.3 * rng.normal()).exp()) as u64;
        histogram.record(micros.max(1)).unwrap();
        #[expect(clippy::cast_precision_loss, reason = "µs far below 2^52")]
        expanded.push(histogram.highest_equivalent(micros.max(1)) as f64 * 1e-6);
    }
    (histogram, expanded)
}

/// Histogram cases: `Points::from_histogram` against the expanded bucket values.
fn histogram_cases() -> Vec<(Case, Points, Points)> {
    let mut rng = Rng(7);
    [
        (200, 50.0, 55.0),
        (100_000, 50.0, 51.0),
        (100_000, 50.0, 50.0),
    ]
    .into_iter()
    .map(|(n, baseline_ms, canary_ms)| {
        let (canary, x) = latency_histogram(&mut rng, n, canary_ms);
        let (baseline, y) = latency_histogram(&mut rng, n, baseline_ms);
        let case = Case {
            kind: "histogram",
            x: ones(x),
            y: ones(y),
            confidence: 0.98,
        };
        (
            case,
            Points::from_histogram(&canary, 1e-6),
            Points::from_histogram(&baseline, 1e-6),
        )
    })
    .collect()
}

fn range_of(case: &Case) -> f64 {
    let values = || case.x.iter().chain(&case.y).map(|p| p.0);
    values().fold(f64::NEG_INFINITY, f64::max) - values().fold(f64::INFINITY, f64::min)
}

/// Runs the oracle on every case (with our answers, for the p-values at our ends) and returns
/// its answers in order.
fn ask_oracle(cases: &[(&Case, &Result<Shift, ShiftError>)]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/compare.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut input = String::new();
    for (id, (case, ours)) in cases.iter().enumerate() {
        let ours = ours
            .as_ref()
            .ok()
            .map(|s| json!({"lower": s.lower, "upper": s.upper, "estimate": s.estimate}));
        let line = json!({"id": id, "x": case.x, "y": case.y, "c": case.confidence, "ours": ours});
        input.push_str(&line.to_string());
        input.push('\n');
    }
    // Written from a thread: the oracle answers while it reads, and a full pipe either way
    // would stall both.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("the oracle finishes");
    writer.join().unwrap().expect("the oracle reads every case");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per case");
    answers
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

fn same_median(ours: Option<f64>, numpy: f64) -> bool {
    ours.is_some_and(|m| (m - numpy).abs() <= 1e-12 * numpy.abs() + f64::MIN_POSITIVE)
}

/// What the oracle's answer says about one case: failures, and which edges it exercised.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    seen: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn see(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    fn judge(
        &mut self,
        case: &Case,
        points: (&Points, &Points),
        ours: &Result<Shift, ShiftError>,
        answer: &Value,
    ) {
        let kind = case.kind;
        let fail = |failures: &mut Vec<String>, what: String| {
            failures.push(format!("{kind} (c = {}): {what}", case.confidence));
        };
        for (side, points, key) in [
            ("canary", points.0, "median_x"),
            ("baseline", points.1, "median_y"),
        ] {
            if !same_median(points.median(), number(answer, key)) {
                fail(
                    &mut self.failures,
                    format!("{side} median {:?}, numpy {}", points.median(), answer[key]),
                );
            }
        }
        let port = &answer["port"];
        let ours = match (ours, port.is_null()) {
            (Err(ShiftError::AllTied), true) => {
                self.see("all tied, or two constant sides (R stops)");
                return;
            }
            (Ok(ours), false) => ours,
            (ours, _) => {
                fail(
                    &mut self.failures,
                    format!("ours {ours:?}, R's port {port}"),
                );
                return;
            }
        };
        self.see(kind);
        let tolerance = 1e-3 * range_of(case);
        let (lower, upper) = (number(port, "lower"), number(port, "upper"));
        let (estimate_lo, estimate_hi) = (number(port, "estimate_lo"), number(port, "estimate_hi"));
        if (ours.lower - lower).abs() > tolerance
            || (ours.upper - upper).abs() > tolerance
            || ours.estimate < estimate_lo - tolerance
            || ours.estimate > estimate_hi + tolerance
        {
            fail(
                &mut self.failures,
                format!("ours {ours:?}, R's port {port}, tolerance {tolerance}"),
            );
        }
        if estimate_hi - estimate_lo > tolerance {
            self.see("estimate: W = 0 on a range");
        }
        // scipy's test: the interval is the set of shifts it does not reject at 1 − c.
        let p = &answer["pvalues"];
        let alpha = 1.0 - case.confidence;
        let lower_clamped = port["lower_clamped"].as_bool().unwrap();
        let upper_clamped = port["upper_clamped"].as_bool().unwrap();
        let mut check = |key: &str, holds: bool| {
            if !holds {
                fail(
                    &mut self.failures,
                    format!(
                        "scipy p-value {key} = {} against 1 − c = {alpha}: ours {ours:?}, {p}",
                        p[key]
                    ),
                );
            }
        };
        // Both ends at one step (heavy ties, low confidence): z leaps from above z_c to below
        // −z_c there, and the interval is that one point, with no inside to test.
        let one_step = p["one_step"].as_bool().unwrap();
        if !one_step {
            check("lower_in", number(p, "lower_in") >= alpha);
            check("upper_in", number(p, "upper_in") >= alpha);
        }
        if !lower_clamped {
            check("lower_out", number(p, "lower_out") < alpha);
        }
        if !upper_clamped {
            check("upper_out", number(p, "upper_out") < alpha);
        }
        if one_step {
            self.see("both ends at one step");
        }
        if lower_clamped || upper_clamped {
            self.see("an end at mumin or mumax");
        } else if !one_step {
            self.see("p-value checked on both sides of both ends");
        }
        if case.x.iter().chain(&case.y).any(|p| p.1 > 1) || ties(&case.x, &case.y) {
            self.see("ties");
        }
    }
}

#[expect(clippy::float_cmp, reason = "ties are exact equality")]
fn ties(x: &[(f64, u64)], y: &[(f64, u64)]) -> bool {
    let mut values: Vec<f64> = x.iter().chain(y).map(|p| p.0).collect();
    values.sort_by(f64::total_cmp);
    values.windows(2).any(|w| w[0] == w[1])
}

#[test]
#[ignore = "needs python3 with scipy; .ci/run installs it"]
fn compare_matches_rs_algorithm_and_scipys_test() {
    let mut cases: Vec<(Case, Points, Points)> = random_cases(240)
        .into_iter()
        .chain(edge_cases())
        .map(|case| {
            let (x, y) = (Points::new(case.x.clone()), Points::new(case.y.clone()));
            (case, x, y)
        })
        .collect();
    cases.extend(histogram_cases());
    let results: Vec<Result<Shift, ShiftError>> = cases
        .iter()
        .map(|(case, x, y)| shift(x, y, case.confidence))
        .collect();
    let asked: Vec<(&Case, &Result<Shift, ShiftError>)> =
        cases.iter().map(|c| &c.0).zip(&results).collect();
    let answers = ask_oracle(&asked);
    let mut tally = Tally::default();
    for (((case, x, y), ours), answer) in cases.iter().zip(&results).zip(&answers) {
        tally.judge(case, (x, y), ours, answer);
    }
    let seen = |what: &str| tally.seen.get(what).copied().unwrap_or(0);
    let summary = format!("{:?}", tally.seen);
    assert!(
        tally.failures.is_empty(),
        "{}\n{summary}",
        tally.failures.join("\n")
    );
    // The table reached every edge it is meant to.
    for kind in [
        "continuous",
        "ties",
        "canary constant",
        "baseline constant",
        "large shift",
        "latencies",
        "mixed magnitudes",
        "counts",
    ] {
        assert!(seen(kind) >= 25, "{kind}: {summary}");
    }
    assert!(
        seen("histogram") == 3 && seen("huge counts") == 2 && seen("n = 1") == 3,
        "{summary}"
    );
    assert!(
        seen("all tied, or two constant sides (R stops)") >= 4,
        "{summary}"
    );
    assert!(seen("estimate: W = 0 on a range") >= 10, "{summary}");
    assert!(seen("both ends at one step") >= 5, "{summary}");
    assert!(seen("an end at mumin or mumax") >= 2, "{summary}");
    assert!(
        seen("p-value checked on both sides of both ends") >= 200,
        "{summary}"
    );
    assert!(seen("ties") >= 50, "{summary}");
}

/// Values on a grid of quarters (sums and differences exact), or few values with many ties.
fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec(-400i32..400, 1..40),
        prop::collection::vec(-3i32..3, 1..40),
    ]
    .prop_map(|v| v.into_iter().map(|k| f64::from(k) / 4.0).collect())
}

fn shifted(values: &[f64], by: f64) -> Points {
    Points::from_values(&values.iter().map(|v| v + by).collect::<Vec<_>>())
}

fn scaled(values: &[f64], by: f64) -> Points {
    Points::from_values(&values.iter().map(|v| v * by).collect::<Vec<_>>())
}

/// Within `tolerance`, `b` is `a` mapped by `f` on each of lower, upper, estimate.
fn agrees(a: &Result<Shift, ShiftError>, b: &Result<Shift, ShiftError>, tolerance: f64) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            (a.lower - b.lower).abs() <= tolerance
                && (a.upper - b.upper).abs() <= tolerance
                && (a.estimate - b.estimate).abs() <= tolerance
        }
        (a, b) => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Adding the same constant to both sides moves nothing.
    #[test]
    fn adding_a_constant_to_both_sides_changes_nothing(
        x in sample(), y in sample(), by in -1_000_000i32..1_000_000,
        confidence in prop::sample::select(CONFIDENCES.to_vec()),
    ) {
        let by = f64::from(by);
        let plain = shift(&Points::from_values(&x), &Points::from_values(&y), confidence);
        let moved = shift(&shifted(&x, by), &shifted(&y, by), confidence);
        prop_assert!(agrees(&plain, &moved, 1e-6), "{plain:?} vs {moved:?}");
    }

    /// Swapping canary and baseline negates the shift: [lo, hi] becomes [−hi, −lo].
    #[test]
    fn swapping_the_sides_negates_the_interval(
        x in sample(), y in sample(),
        confidence in prop::sample::select(CONFIDENCES.to_vec()),
    ) {
        let (x, y) = (Points::from_values(&x), Points::from_values(&y));
        let forward = shift(&x, &y, confidence);
        let back = shift(&y, &x, confidence).map(|s| Shift {
            lower: -s.upper,
            upper: -s.lower,
            estimate: -s.estimate,
        });
        prop_assert!(agrees(&forward, &back, 1e-6), "{forward:?} vs {back:?}");
    }

    /// Scaling both sides by k > 0 scales the shift by k.
    #[test]
    fn scaling_both_sides_scales_the_shift(
        x in sample(), y in sample(), k in 1e-3f64..1e3,
        confidence in prop::sample::select(CONFIDENCES.to_vec()),
    ) {
        let plain = shift(&Points::from_values(&x), &Points::from_values(&y), confidence)
            .map(|s| Shift { lower: s.lower * k, upper: s.upper * k, estimate: s.estimate * k });
        let scaled = shift(&scaled(&x, k), &scaled(&y, k), confidence);
        prop_assert!(agrees(&plain, &scaled, 1e-6 * k), "{plain:?} vs {scaled:?}");
    }

    /// Any finite values, tiny and huge mixed: an ordered finite interval around the
    /// estimate, or `AllTied` — never a NaN, never a panic.
    #[test]
    fn any_values_give_an_ordered_interval_or_all_tied(
        x in prop::collection::vec(-1e12f64..1e12, 1..30),
        y in prop::collection::vec(prop_oneof![-1e-6f64..1e-6, Just(-0.0), Just(0.0), -1e12f64..1e12], 1..30),
        confidence in prop::sample::select(CONFIDENCES.to_vec()),
    ) {
        match shift(&Points::from_values(&x), &Points::from_values(&y), confidence) {
            Ok(s) => prop_assert!(
                s.lower.is_finite() && s.upper.is_finite() && s.lower <= s.estimate && s.estimate <= s.upper,
                "{s:?}"
            ),
            Err(e) => prop_assert_eq!(e, ShiftError::AllTied),
        }
    }
}
