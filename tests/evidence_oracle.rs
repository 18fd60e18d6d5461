//! The evidence arithmetic against outside judges: scipy for the Wilson bounds and the normal
//! quantile (`tests/oracle/wilson.py`), and a brute-force sort for percentile intervals read off
//! an HDR histogram.

use std::path::PathBuf;
use std::process::Command;

use hdrhistogram::Histogram;
use ion_plan::stats::{
    decode_histogram, encode_histogram, percentile_interval_histogram, percentile_interval_sorted,
    wilson, z,
};
use proptest::prelude::*;

/// Equal to 1e-9 relative; bounds at (or next to) 0 compare absolutely.
fn agrees(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-3)
}

#[test]
#[ignore = "needs python3 with scipy; .ci/run installs it"]
fn wilson_bounds_and_z_match_scipy() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/wilson.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8(output.stdout).unwrap();
    let mut failures = Vec::new();
    let (mut zs, mut intervals) = (0, 0);
    let (mut zero_k, mut all_k, mut one_n, mut top_c) = (false, false, false, false);
    for line in table.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["z", c, expected] => {
                let (c, expected): (f64, f64) = (c.parse().unwrap(), expected.parse().unwrap());
                if !agrees(z(c), expected) {
                    failures.push(format!("z({c}) = {}, scipy {expected}", z(c)));
                }
                zs += 1;
            }
            ["wilson", k, n, c, lo, hi] => {
                let (k, n): (u64, u64) = (k.parse().unwrap(), n.parse().unwrap());
                let c: f64 = c.parse().unwrap();
                let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
                let ours = wilson(k, n, c);
                if !agrees(ours.lo, lo) || !agrees(ours.hi, hi) {
                    failures.push(format!(
                        "wilson({k}, {n}, {c}) = [{}, {}], scipy [{lo}, {hi}]",
                        ours.lo, ours.hi
                    ));
                }
                intervals += 1;
                zero_k |= k == 0;
                all_k |= k == n;
                one_n |= n == 1;
                #[expect(clippy::float_cmp, reason = "the literal the script prints")]
                {
                    top_c |= c == 0.9999;
                }
            }
            _ => panic!("unexpected line from the oracle: {line:?}"),
        }
    }
    // The table covers what the edges of the formula are: no errors, no successes, one request,
    // the highest confidence a plan may ask for.
    assert!(
        zs >= 5 && intervals >= 300,
        "{zs} z values, {intervals} intervals"
    );
    assert!(zero_k && all_k && one_n && top_c);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn histogram_of(latencies: &[u32]) -> Histogram<u64> {
    // The load probe's histogram: microseconds up to an hour, 3 significant digits.
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for &micros in latencies {
        histogram.record(u64::from(micros)).unwrap();
    }
    histogram
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The histogram's interval is the sorted latencies' interval, widened by at most one
    /// bucket (under 0.1%) on each side and never narrowed; an unbounded side is unbounded in
    /// both. It survives the journal's text form unchanged.
    #[test]
    fn histogram_interval_matches_a_brute_force_sort(
        latencies in prop::collection::vec(1_u32..20_000_000, 1..1500),
        p in prop::sample::select(vec![0.5, 0.9, 0.95, 0.99]),
        confidence in prop::sample::select(vec![0.5, 0.8, 0.9, 0.95, 0.99, 0.9999]),
    ) {
        let histogram = histogram_of(&latencies);
        let mut sorted: Vec<f64> = latencies.iter().map(|&v| f64::from(v)).collect();
        sorted.sort_by(f64::total_cmp);
        let exact = percentile_interval_sorted(&sorted, p, confidence);
        let read = percentile_interval_histogram(&histogram, p, confidence);
        prop_assert!(read.lo <= exact.lo, "lo {} above exact {}", read.lo, exact.lo);
        prop_assert!(exact.lo - read.lo <= exact.lo / 1000.0, "lo {} vs {}", read.lo, exact.lo);
        prop_assert_eq!(read.hi.is_infinite(), exact.hi.is_infinite());
        if exact.hi.is_finite() {
            prop_assert!(read.hi >= exact.hi, "hi {} below exact {}", read.hi, exact.hi);
            prop_assert!(read.hi - exact.hi <= exact.hi / 1000.0, "hi {} vs {}", read.hi, exact.hi);
        }
        let back = decode_histogram(&encode_histogram(&histogram)).unwrap();
        prop_assert_eq!(percentile_interval_histogram(&back, p, confidence), read);
    }
}
