//! Evidence: confidence intervals for gate conditions, and how much data a condition needs
//! before it can pass (`docs/plan.md`, "Evidence"). Pure arithmetic, no I/O.
//!
//! - ratios (`error_rate`, `success_rate`, any ratio with `of: METRIC`) take the Wilson score
//!   interval of k = round(ratio × n) in n;
//! - load percentiles take the distribution-free interval of order statistics;
//! - [`judge`] turns an interval and a threshold into pass, violation or insufficient.
//!
//! The load probe's histograms travel in the journal as base64 of the `HdrHistogram` V2 format
//! with DEFLATE ([`encode_histogram`], [`decode_histogram`]), so a stage's latencies pool across
//! a resume.

use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

use crate::plan::expr::Op;

pub mod compare;

/// The lowest confidence a condition may ask for.
pub const MIN_CONFIDENCE: f64 = 0.5;
/// The highest confidence a condition may ask for.
pub const MAX_CONFIDENCE: f64 = 0.9999;

/// A two-sided interval `[lo, hi]`. `hi` is `f64::INFINITY` when the data bound no upper side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The same interval in other units (`1e-6` turns microseconds into seconds).
    #[must_use]
    pub fn scaled(self, factor: f64) -> Interval {
        Interval {
            lo: self.lo * factor,
            hi: self.hi * factor,
        }
    }
}

/// What an interval says about a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole interval satisfies the condition.
    Pass,
    /// The whole interval breaks it.
    Violation,
    /// The interval straddles the threshold: more data is needed.
    Insufficient,
}

/// The two-sided normal quantile of a confidence: z = Φ⁻¹(1 − (1 − c)/2), so 1.959964 for 95%.
/// `confidence` is a fraction in [`MIN_CONFIDENCE`], [`MAX_CONFIDENCE`] (validation keeps it
/// there); outside (0, 1) the answer is NaN.
pub fn z(confidence: f64) -> f64 {
    inverse_normal_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// Φ⁻¹(p), the standard normal quantile: Wichura's algorithm AS 241 (`PPND16`), accurate to about
/// 1 part in 10¹⁶. NaN outside (0, 1), ∓∞ at 0 and 1.
#[expect(
    clippy::unreadable_literal,
    clippy::excessive_precision,
    reason = "AS 241's published coefficients, digit for digit"
)]
#[expect(clippy::float_cmp, reason = "0 and 1 are the exact ends of the domain")]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = poly(
            r,
            &[
                3.3871328727963666080e0,
                1.3314166789178437745e2,
                1.9715909503065514427e3,
                1.3731693765509461125e4,
                4.5921953931549871457e4,
                6.7265770927008700853e4,
                3.3430575583588128105e4,
                2.5090809287301226727e3,
            ],
        );
        let den = poly(
            r,
            &[
                1.0,
                4.2313330701600911252e1,
                6.8718700749205790830e2,
                5.3941960214247511077e3,
                2.1213794301586595867e4,
                3.9307895800092710610e4,
                2.8729085735721942674e4,
                5.2264952788528545610e3,
            ],
        );
        return q * num / den;
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        let r = r - 1.6;
        poly(
            r,
            &[
                1.42343711074968357734e0,
                4.63033784615654529590e0,
                5.76949722146069140550e0,
                3.64784832476320460504e0,
                1.27045825245236838258e0,
                2.41780725177450611770e-1,
                2.27238449892691845833e-2,
                7.74545014278341407640e-4,
            ],
        ) / poly(
            r,
            &[
                1.0,
                2.05319162663775882187e0,
                1.67638483018380384940e0,
                6.89767334985100004550e-1,
                1.48103976427480074590e-1,
                1.51986665636164571966e-2,
                5.47593808499534494600e-4,
                1.05075007164441684324e-9,
            ],
        )
    } else {
        let r = r - 5.0;
        poly(
            r,
            &[
                6.65790464350110377720e0,
                5.46378491116411436990e0,
                1.78482653991729133580e0,
                2.96560571828504891230e-1,
                2.65321895265761230930e-2,
                1.24266094738807843860e-3,
                2.71155556874348757815e-5,
                2.01033439929228813265e-7,
            ],
        ) / poly(
            r,
            &[
                1.0,
                5.99832206555887937690e-1,
                1.36929880922735805310e-1,
                1.48753612908506148525e-2,
                7.86869131145613259100e-4,
                1.84631831751005468180e-5,
                1.42151175831644588870e-7,
                2.04426310338993978564e-15,
            ],
        )
    };
    if q < 0.0 { -value } else { value }
}

/// Σ cᵢ·xⁱ by Horner's rule (coefficients lowest degree first).
fn poly(x: f64, coefficients: &[f64]) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

/// The number of successes behind a ratio measured over `n`: round(ratio × n), kept in 0..=n.
pub fn count_from_ratio(ratio: f64, n: u64) -> u64 {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (k, nf) = ((ratio * n as f64).round(), n as f64);
    if k.is_nan() || k <= 0.0 {
        0
    } else if k >= nf {
        n
    } else {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a whole number in 0..n"
        )]
        let k = k as u64;
        k
    }
}

/// The Wilson score interval of `k` successes in `n` trials at `confidence`, as scipy's
/// `binomtest(k, n).proportion_ci(confidence, "wilson")` computes it. `n = 0` knows nothing:
/// `[0, 1]`. `k` above `n` counts as `n`.
#[expect(clippy::many_single_char_names, reason = "the formula's own letters")]
pub fn wilson(k: u64, n: u64, confidence: f64) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let k = k.min(n);
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (kf, nf) = (k as f64, n as f64);
    let z = z(confidence);
    let z2 = z * z;
    // scipy's form: center ± z·√(z² + 4·n·p·q) / (2·(n + z²)).
    let p = kf / nf;
    let q = 1.0 - p;
    let denom = 2.0 * (nf + z2);
    let center = (2.0 * nf * p + z2) / denom;
    let half = z * (z2 + 4.0 * nf * p * q).sqrt() / denom;
    // At k = 0 (k = n) the bound is exactly 0 (1); the subtraction would leave rounding dust.
    let lo = if k == 0 { 0.0 } else { center - half };
    let hi = if k == n { 1.0 } else { center + half };
    Interval {
        lo: lo.clamp(0.0, 1.0),
        hi: hi.clamp(0.0, 1.0),
    }
}

/// The 1-based ranks of the order statistics that bound the `p` quantile of `n` values at
/// `confidence`: l = ⌊n·p − z·√(n·p·(1−p))⌋ and u = ⌈n·p + z·√(n·p·(1−p))⌉ + 1. A rank outside
/// 1..=n is `None`: that side is unbounded.
#[expect(clippy::many_single_char_names, reason = "the formula's own letters")]
pub fn percentile_ranks(n: u64, p: f64, confidence: f64) -> (Option<u64>, Option<u64>) {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let nf = n as f64;
    let z = z(confidence);
    let spread = z * (nf * p * (1.0 - p)).sqrt();
    let l = (nf * p - spread).floor();
    let u = (nf * p + spread).ceil() + 1.0;
    let rank = |r: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked to lie in 1..=n first"
        )]
        (r >= 1.0 && r <= nf).then_some(r as u64)
    };
    (rank(l), rank(u))
}

/// The interval of the `p` quantile (0.95 for p95) of values sorted ascending: the l-th and u-th
/// smallest of [`percentile_ranks`]; an unbounded side is `lo = 0`, `hi = +∞`.
pub fn percentile_interval_sorted(sorted: &[f64], p: f64, confidence: f64) -> Interval {
    let (l, u) = percentile_ranks(sorted.len() as u64, p, confidence);
    let at = |rank: u64| sorted[usize::try_from(rank - 1).expect("a rank within the slice")];
    Interval {
        lo: l.map_or(0.0, at),
        hi: u.map_or(f64::INFINITY, at),
    }
}

/// The interval of the `p` quantile of the values recorded in `histogram`, in its units (the
/// load probe records microseconds: [`Interval::scaled`] by `1e-6` gives seconds).
///
/// Precision: a histogram keeps each value only to its bucket (the load probe's: 3 significant
/// digits, a bucket at most 0.1% of its value wide). `lo` is the lowest and `hi` the highest value
/// of the order statistic's bucket, so the interval contains the exact one and is at most 0.1%
/// wider on each side: a condition never passes on the histogram's rounding.
pub fn percentile_interval_histogram(
    histogram: &Histogram<u64>,
    p: f64,
    confidence: f64,
) -> Interval {
    let (l, u) = percentile_ranks(histogram.len(), p, confidence);
    #[expect(clippy::cast_precision_loss, reason = "latencies far below 2^52")]
    Interval {
        lo: l.map_or(0.0, |rank| {
            histogram.lowest_equivalent(nth_smallest(histogram, rank)) as f64
        }),
        hi: u.map_or(f64::INFINITY, |rank| {
            histogram.highest_equivalent(nth_smallest(histogram, rank)) as f64
        }),
    }
}

/// The bucket value of the `rank`-th smallest recorded value (1-based, at most `len()`).
fn nth_smallest(histogram: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for bucket in histogram.iter_recorded() {
        seen += bucket.count_at_value();
        if seen >= rank {
            return bucket.value_iterated_to();
        }
    }
    histogram.max()
}

/// Judges `METRIC op threshold` on an interval of the metric (`docs/plan.md`, "Evidence"):
/// `<=` passes when hi ≤ X and is violated when lo > X; `<` passes when hi < X and is violated
/// when lo ≥ X; `>=` and `>` mirror them. Anything else is insufficient. (`==` and `!=` take no
/// confidence in a plan; for completeness `==` passes only on the point interval [X, X], `!=`
/// the other way round.) An interval with NaN is insufficient.
#[expect(clippy::float_cmp, reason = "`==` in a plan means exact equality")]
pub fn judge(op: Op, threshold: f64, interval: Interval) -> Outcome {
    let Interval { lo, hi } = interval;
    if lo.is_nan() || hi.is_nan() || threshold.is_nan() {
        return Outcome::Insufficient;
    }
    let (pass, violation) = match op {
        Op::Le => (hi <= threshold, lo > threshold),
        Op::Lt => (hi < threshold, lo >= threshold),
        Op::Ge => (lo >= threshold, hi < threshold),
        Op::Gt => (lo > threshold, hi <= threshold),
        Op::Eq => (
            lo == threshold && hi == threshold,
            lo > threshold || hi < threshold,
        ),
        Op::Ne => (
            lo > threshold || hi < threshold,
            lo == threshold && hi == threshold,
        ),
    };
    match (pass, violation) {
        (true, _) => Outcome::Pass,
        (false, true) => Outcome::Violation,
        (false, false) => Outcome::Insufficient,
    }
}

/// How many trials a ratio condition needs before it can pass at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// At least this many (0: it passes on no data).
    Count(u64),
    /// No amount of data makes it pass (`error_rate < 0%`, `success_rate > 100%`).
    Never,
}

/// The smallest n at which `RATIO op threshold` at `confidence` can pass, on the best data there
/// is: no errors. For `<=` / `<` the best ratio is 0 (k = 0), whose Wilson upper bound is
/// z²/(n + z²); `≤ X` holds from n ≥ z²·(1 − X)/X (765 for 0.5% at 95%). For `>=` / `>` the best
/// ratio is 1 (k = n), whose lower bound is n/(n + z²) by symmetry; `≥ X` holds from
/// n ≥ z²·X/(1 − X) (765 for 99.5% at 95%). `==` and `!=` take no confidence: `Never`.
pub fn ratio_needed(op: Op, threshold: f64, confidence: f64) -> Needed {
    let z2 = z(confidence).powi(2);
    // The bound at the best case is monotone in n; `bound_ok(n)` says whether n suffices.
    let (bound, bound_ok): (f64, fn(f64, f64) -> bool) = match op {
        // Upper bound of k = 0 against X; the mirror case against 1 − X.
        Op::Le => (threshold, |b, x| b <= x),
        Op::Lt => (threshold, |b, x| b < x),
        Op::Ge => (1.0 - threshold, |b, x| b <= x),
        Op::Gt => (1.0 - threshold, |b, x| b < x),
        Op::Eq | Op::Ne => return Needed::Never,
    };
    let upper = |n: f64| z2 / (n + z2);
    if bound_ok(1.0, bound) {
        return Needed::Count(0); // [0, 1] already satisfies it
    }
    if bound <= 0.0 {
        return Needed::Never;
    }
    // The closed form, then a step either way to absorb rounding in the division.
    let estimate = (z2 * (1.0 - bound) / bound).ceil().max(1.0);
    if estimate > 1e15 {
        return Needed::Never;
    }
    let mut n = estimate;
    while n > 1.0 && bound_ok(upper(n - 1.0), bound) {
        n -= 1.0;
    }
    while !bound_ok(upper(n), bound) {
        n += 1.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive whole number below 1e15"
    )]
    Needed::Count(n as u64)
}

/// The smallest n at which the `p` quantile's interval at `confidence` is bounded on the side
/// `op` needs: the upper side (u ≤ n) for `<=` / `<`, the lower side (l ≥ 1) for `>=` / `>`.
/// `Never` for `==` / `!=`, and past ten million values.
pub fn percentile_needed(op: Op, p: f64, confidence: f64) -> Needed {
    const LIMIT: u64 = 10_000_000;
    let bounded = |n: u64| {
        let (l, u) = percentile_ranks(n, p, confidence);
        match op {
            Op::Le | Op::Lt => u.is_some(),
            Op::Ge | Op::Gt => l.is_some(),
            Op::Eq | Op::Ne => false,
        }
    };
    if matches!(op, Op::Eq | Op::Ne) {
        return Needed::Never;
    }
    (1..=LIMIT)
        .find(|&n| bounded(n))
        .map_or(Needed::Never, Needed::Count)
}

/// Why a serialized histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not in the HdrHistogram V2 format: {0}")]
    Format(String),
}

/// A histogram as text for the journal: base64 (standard alphabet, padded) of the `HdrHistogram`
/// V2 format with DEFLATE, which the format's cookie identifies (its version travels with it).
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into memory cannot fail");
    STANDARD.encode(bytes)
}

/// The most a histogram's text may inflate to: a journal line holds at most 1 MiB, and the load
/// probe's histogram is a few kilobytes however many requests it counts.
const MAX_HISTOGRAM_BYTES: u64 = 1 << 20;
/// The widest histogram read back: the load probe's (1 µs to an hour, 3 significant digits).
/// The deserializer allocates counts for the range and precision a header states.
const MAX_HISTOGRAM_HIGHEST: u64 = 3_600_000_000;
const MAX_HISTOGRAM_DIGITS: u32 = 3;
// The V2 cookies as `hdrhistogram` writes them (the format's base cookie | 0x10, its word size).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;

/// Reads back [`encode_histogram`]'s text (plain V2 is accepted too). The text comes from a
/// journal, which may be damaged or hostile: its header is checked against what the bytes hold
/// before the deserializer sizes a buffer from it (a header may claim 4 GiB).
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, HistogramCodecError> {
    let format = |why: &str| HistogramCodecError::Format(why.to_owned());
    let bytes = STANDARD.decode(text)?;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let plain = match word(&bytes, 0) {
        Some(V2_COOKIE) => bytes,
        Some(V2_COMPRESSED_COOKIE) => {
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(bytes.get(8..).unwrap_or_default())
                .take(MAX_HISTOGRAM_BYTES + 1)
                .read_to_end(&mut plain)
                .map_err(|e| format(&format!("cannot inflate: {e}")))?;
            if plain.len() as u64 > MAX_HISTOGRAM_BYTES {
                return Err(format("inflates past 1 MiB"));
            }
            plain
        }
        _ => return Err(format("unknown cookie")),
    };
    // cookie, payload length, offset, digits (4 bytes each), lowest, highest, ratio (8 each).
    let header = 40;
    let (Some(V2_COOKIE), Some(payload), Some(digits)) =
        (word(&plain, 0), word(&plain, 4), word(&plain, 12))
    else {
        return Err(format("truncated header"));
    };
    let highest = plain
        .get(24..32)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_be_bytes);
    if plain.len() < header || payload as usize > plain.len() - header {
        return Err(format("the header claims more counts than it holds"));
    }
    if digits > MAX_HISTOGRAM_DIGITS || highest > MAX_HISTOGRAM_HIGHEST {
        return Err(format("wider than a load probe's histogram"));
    }
    Deserializer::new()
        .deserialize(&mut plain.as_slice())
        .map_err(|e| HistogramCodecError::Format(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn z_of_common_confidences() {
        // scipy.stats.norm.ppf(0.975), ppf(0.995), ppf(0.99995)
        assert!(close(z(0.95), 1.959_963_984_540_054, 1e-15));
        assert!(close(z(0.99), 2.575_829_303_548_900_4, 1e-15));
        assert!(close(z(0.9999), 3.890_591_886_413_094_6, 1e-14));
        assert!(close(z(0.5), 0.674_489_750_196_081_7, 1e-15));
        assert!(inverse_normal_cdf(1e-300) < -37.0); // the far tail branch
        assert!(inverse_normal_cdf(1.5).is_nan());
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "the bounds are exactly 0 and 1 there")]
    fn wilson_bounds_at_the_edges() {
        assert_eq!(wilson(0, 0, 0.95), Interval { lo: 0.0, hi: 1.0 });
        let none = wilson(0, 50, 0.95);
        assert_eq!(none.lo, 0.0);
        // 0 errors in 50 leave room for up to 7.1% errors: a ≤ 0.5% gate cannot pass yet.
        assert!(close(none.hi, 0.071_348_, 1e-4), "{none:?}");
        let all = wilson(50, 50, 0.95);
        assert_eq!(all.hi, 1.0);
        assert!(close(all.lo, 1.0 - none.hi, 1e-12));
    }

    #[test]
    fn counts_come_from_ratios_rounded() {
        assert_eq!(count_from_ratio(0.02, 50), 1);
        assert_eq!(count_from_ratio(0.0149, 100), 1);
        assert_eq!(count_from_ratio(1.5, 10), 10);
        assert_eq!(count_from_ratio(-0.1, 10), 0);
        assert_eq!(count_from_ratio(f64::NAN, 10), 0);
    }

    #[test]
    fn zero_errors_need_765_requests_for_half_a_percent_at_95() {
        assert_eq!(ratio_needed(Op::Le, 0.005, 0.95), Needed::Count(765));
        assert!(wilson(0, 765, 0.95).hi <= 0.005);
        assert!(wilson(0, 764, 0.95).hi > 0.005);
        // The mirror: a success rate of at least 99.5%.
        assert_eq!(ratio_needed(Op::Ge, 0.995, 0.95), Needed::Count(765));
        assert!(wilson(765, 765, 0.95).lo >= 0.995);
        assert!(wilson(764, 764, 0.95).lo < 0.995);
        // Pooled 50 a check, the first count that passes is 800 (16 checks).
        assert!(wilson(0, 800, 0.95).hi <= 0.005 && wilson(0, 750, 0.95).hi > 0.005);
    }

    #[test]
    fn ratio_needs_at_the_limits() {
        assert_eq!(ratio_needed(Op::Le, 1.0, 0.95), Needed::Count(0));
        assert_eq!(ratio_needed(Op::Lt, 0.0, 0.95), Needed::Never);
        assert_eq!(ratio_needed(Op::Le, 0.0, 0.95), Needed::Never);
        assert_eq!(ratio_needed(Op::Gt, 1.0, 0.95), Needed::Never);
        assert_eq!(ratio_needed(Op::Ge, 0.0, 0.95), Needed::Count(0));
        assert_eq!(ratio_needed(Op::Eq, 0.01, 0.95), Needed::Never);
        // Every answer is the smallest that works, for `<` too.
        for (op, x) in [(Op::Lt, 0.01), (Op::Le, 0.01), (Op::Lt, 0.2), (Op::Gt, 0.9)] {
            let Needed::Count(n) = ratio_needed(op, x, 0.99) else {
                panic!("{op} {x}")
            };
            let best = |n| match op {
                Op::Lt | Op::Le => wilson(0, n, 0.99),
                _ => wilson(n, n, 0.99),
            };
            assert_eq!(judge(op, x, best(n)), Outcome::Pass, "{op} {x} at {n}");
            assert_ne!(
                judge(op, x, best(n - 1)),
                Outcome::Pass,
                "{op} {x} at {n}-1"
            );
        }
    }

    #[test]
    fn judging_follows_the_operator() {
        let iv = Interval { lo: 0.1, hi: 0.2 };
        assert_eq!(judge(Op::Le, 0.2, iv), Outcome::Pass);
        assert_eq!(judge(Op::Lt, 0.2, iv), Outcome::Insufficient);
        assert_eq!(judge(Op::Le, 0.15, iv), Outcome::Insufficient);
        assert_eq!(judge(Op::Le, 0.05, iv), Outcome::Violation);
        assert_eq!(judge(Op::Lt, 0.1, iv), Outcome::Violation);
        assert_eq!(judge(Op::Le, 0.1, iv), Outcome::Insufficient);
        assert_eq!(judge(Op::Ge, 0.1, iv), Outcome::Pass);
        assert_eq!(judge(Op::Gt, 0.1, iv), Outcome::Insufficient);
        assert_eq!(judge(Op::Ge, 0.25, iv), Outcome::Violation);
        assert_eq!(judge(Op::Gt, 0.2, iv), Outcome::Violation);
        assert_eq!(judge(Op::Ge, 0.2, iv), Outcome::Insufficient);
        let unbounded = Interval {
            lo: 0.0,
            hi: f64::INFINITY,
        };
        assert_eq!(judge(Op::Le, 1e9, unbounded), Outcome::Insufficient);
        let nan = Interval {
            lo: f64::NAN,
            hi: 1.0,
        };
        assert_eq!(judge(Op::Ge, 0.0, nan), Outcome::Insufficient);
    }

    #[test]
    fn percentile_ranks_as_written() {
        // n = 200, p = 0.9, z = 1.96: 180 ∓ 1.96·√18 = 180 ∓ 8.3155 → l = 171, u = 189 + 1.
        assert_eq!(percentile_ranks(200, 0.9, 0.95), (Some(171), Some(190)));
        // Too few values for the upper side of p99.
        assert_eq!(percentile_ranks(50, 0.99, 0.95).1, None);
        assert_eq!(percentile_ranks(0, 0.5, 0.95), (None, None));
        // n = 8: 4 + 1.96·√2 = 6.77 → u = 7 + 1 = 8; at n = 7, u = ⌈6.09⌉ + 1 = 8 > 7.
        assert_eq!(percentile_needed(Op::Le, 0.5, 0.95), Needed::Count(8));
        let Needed::Count(n) = percentile_needed(Op::Le, 0.99, 0.95) else {
            panic!()
        };
        assert!(percentile_ranks(n, 0.99, 0.95).1.is_some());
        assert!(percentile_ranks(n - 1, 0.99, 0.95).1.is_none());
    }

    #[test]
    fn the_issues_latency_example() {
        // 200 requests, 10% at 100 ms, the rest at 10 ms (in µs as the load probe records).
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        let mut sorted = Vec::new();
        for i in 0..200 {
            let micros: u32 = if i % 10 == 0 { 100_000 } else { 10_000 };
            histogram.record(u64::from(micros)).unwrap();
            sorted.push(f64::from(micros));
        }
        sorted.sort_by(f64::total_cmp);
        let at = |p| percentile_interval_histogram(&histogram, p, 0.95).scaled(1e-6);
        assert_eq!(judge(Op::Le, 0.05, at(0.5)), Outcome::Pass);
        assert_eq!(judge(Op::Le, 0.05, at(0.9)), Outcome::Insufficient);
        assert_eq!(judge(Op::Le, 0.05, at(0.95)), Outcome::Violation);
        for p in [0.5, 0.9, 0.95] {
            let exact = percentile_interval_sorted(&sorted, p, 0.95).scaled(1e-6);
            assert_eq!(judge(Op::Le, 0.05, exact), judge(Op::Le, 0.05, at(p)));
        }
    }

    /// `n` latencies from 5 ms to 200 ms, skewed low like real ones, from a fixed seed.
    fn spread_latencies(n: usize) -> Histogram<u64> {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        let mut state = 12345_u64;
        for _ in 0..n {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            #[expect(clippy::cast_precision_loss, reason = "53 bits of a random word")]
            let u = (state >> 11) as f64 / (1_u64 << 53) as f64;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "5,000 to 200,000 µs"
            )]
            histogram
                .record((5000.0 * 40_f64.powf(u * u)) as u64)
                .unwrap();
        }
        histogram
    }

    #[test]
    fn a_checks_histogram_stays_small_in_the_journal() {
        // Measured: 208 characters for 50 latencies, 2,224 for 5,000 (plain V2 would take 220
        // and 5,436 in base64).
        assert!(encode_histogram(&spread_latencies(50)).len() <= 250);
        assert!(encode_histogram(&spread_latencies(5000)).len() <= 2500);
    }

    #[test]
    fn histograms_round_trip_through_text() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for i in 1..=5000_u64 {
            histogram.record(i * 37 % 250_000 + 900).unwrap();
        }
        let text = encode_histogram(&histogram);
        let back = decode_histogram(&text).unwrap();
        assert_eq!(back, histogram);
        assert_eq!(back.len(), 5000);
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram(&STANDARD.encode(b"not a histogram")).is_err());
    }
}
