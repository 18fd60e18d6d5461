//! Compare benchmarks (prints figures; asserts only that the shift is found): the Mann–Whitney
//! shift interval (`docs/plan.md`, "Compare") for a series gate of 12 checks a side, and for two
//! load-probe histograms of 100,000 latencies each, reading the histograms' buckets included.
//!
//! `cargo bench --bench compare`

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ion_plan::stats::compare::{Points, shift};

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

/// The median of `runs` timings of `f`.
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The load probe's histogram (src/probe/load.rs: µs, 1 µs to an hour, 3 digits) of `n`
/// latencies log-normal around `median_ms`.
fn latencies(rng: &mut Rng, n: usize, median_ms: f64) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for _ in 0..n {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive latency far below an hour"
        )]
        let micros = (median_ms * 1000.0 * (0.35 * rng.normal()).exp()) as u64;
        histogram.record(micros.max(1)).unwrap();
    }
    histogram
}

fn main() {
    let mut rng = Rng(10);

    // A series gate: one value per check, 12 checks a side (error rates around 0.2%).
    let canary: Vec<f64> = (0..12).map(|_| 0.0025 + 0.001 * rng.normal()).collect();
    let baseline: Vec<f64> = (0..12).map(|_| 0.002 + 0.001 * rng.normal()).collect();
    let (x, y) = (Points::from_values(&canary), Points::from_values(&baseline));
    let result = shift(&x, &y, 0.98).expect("a shift");
    let time = median_time(20_001, || {
        std::hint::black_box(shift(&x, &y, 0.98).unwrap());
    });
    println!(
        "shift, 12 vs 12 points: median {time:?} of 20,001 (estimate {:+.5}, [{:+.5}, {:+.5}])",
        result.estimate, result.lower, result.upper
    );

    // A distribution gate: two 100,000-latency histograms, canary 4% slower.
    let canary = latencies(&mut rng, 100_000, 52.0);
    let baseline = latencies(&mut rng, 100_000, 50.0);
    let (x, y) = (
        Points::from_histogram(&canary, 1e-6),
        Points::from_histogram(&baseline, 1e-6),
    );
    let buckets = (
        canary.iter_recorded().count(),
        baseline.iter_recorded().count(),
    );
    let result = shift(&x, &y, 0.98).expect("a shift");
    let read = median_time(51, || {
        std::hint::black_box(Points::from_histogram(&canary, 1e-6));
        std::hint::black_box(Points::from_histogram(&baseline, 1e-6));
    });
    let whole = median_time(51, || {
        let x = Points::from_histogram(&canary, 1e-6);
        let y = Points::from_histogram(&baseline, 1e-6);
        std::hint::black_box(shift(&x, &y, 0.98).unwrap());
    });
    println!(
        "shift, two 100,000-latency histograms ({} and {} buckets), from_histogram included: \
         median {whole:?} of 51, of which from_histogram (both) {read:?} \
         (estimate {:+.3} ms, [{:+.3}, {:+.3}] ms)",
        buckets.0,
        buckets.1,
        result.estimate * 1e3,
        result.lower * 1e3,
        result.upper * 1e3
    );
}
