//! Compare: the interval and estimate of the shift canary − baseline from the Mann–Whitney
//! (Wilcoxon rank-sum) test, asymptotic, with continuity and tie correction — what R's
//! `wilcox.test(x, y, conf.int = TRUE, conf.level = c, exact = FALSE, correct = TRUE)` reports
//! (`docs/plan.md`, "Compare").
//!
//! For a shift μ, the values x − μ and y are ranked together (average ranks for ties);
//! dz = Σ ranks(x) − nx(nx + 1)/2 − nx·ny/2, σ = √(nx·ny/12 · ((N + 1) − Σ(t³ − t)/(N(N − 1)))),
//! z(μ) = (dz − ½·sign(dz))/σ. The bounds solve z(μ) = ±`z_c` and the estimate z(μ) = 0 (there
//! without the ½, as R has it), on [min x − max y, max x − min y]. z(μ) is a step function
//! falling as μ grows, so bisection finds where it crosses each level.
//!
//! Values carry counts: a series is values of count 1, a latency histogram its buckets with
//! their counts (values within the histogram's precision tie), so ranking 100,000 latencies
//! costs what ranking their few hundred buckets does.

use hdrhistogram::Histogram;

/// Values with counts, sorted, equal values merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    /// (value, count), ascending by value, counts > 0.
    points: Vec<(f64, u64)>,
    n: u64,
}

impl Points {
    /// Values with counts; non-finite values and zero counts are dropped.
    #[expect(clippy::float_cmp, reason = "ties are exact equality, as in R's rank")]
    pub fn new(values: impl IntoIterator<Item = (f64, u64)>) -> Points {
        let mut points: Vec<(f64, u64)> = values
            .into_iter()
            .filter(|(v, c)| v.is_finite() && *c > 0)
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, u64)> = Vec::with_capacity(points.len());
        for (value, count) in points {
            match merged.last_mut() {
                // -0.0 and 0.0 are one value, as R's rank has them.
                Some(last) if last.0 == value => last.1 = last.1.saturating_add(count),
                _ => merged.push((value, count)),
            }
        }
        let n = merged.iter().fold(0u64, |n, (_, c)| n.saturating_add(*c));
        Points { points: merged, n }
    }

    /// A series: each value once.
    pub fn from_values(values: &[f64]) -> Points {
        Points::new(values.iter().map(|v| (*v, 1)))
    }

    /// A histogram's buckets, each at its highest equivalent value times `scale` (1e-6 turns the
    /// load probe's microseconds into seconds).
    #[expect(clippy::cast_precision_loss, reason = "latencies in µs far below 2^52")]
    pub fn from_histogram(histogram: &Histogram<u64>, scale: f64) -> Points {
        Points::new(
            histogram
                .iter_recorded()
                .map(|v| (v.value_iterated_to() as f64 * scale, v.count_at_value())),
        )
    }

    /// How many values, counting repeats.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The median as R's `median` has it: the middle value, or the mean of the two middle ones.
    pub fn median(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let low = self.at_rank(self.n.div_ceil(2))?;
        let high = self.at_rank(self.n / 2 + 1)?;
        Some(if self.n % 2 == 1 {
            low
        } else {
            f64::midpoint(low, high)
        })
    }

    /// The value of 1-based rank `rank`.
    fn at_rank(&self, rank: u64) -> Option<f64> {
        let mut seen = 0u64;
        self.points.iter().find_map(|(value, count)| {
            // Counts from a journal may add up past u64 (`n` saturates the same way).
            seen = seen.saturating_add(*count);
            (seen >= rank).then_some(*value)
        })
    }

    fn min(&self) -> Option<f64> {
        self.points.first().map(|p| p.0)
    }

    fn max(&self) -> Option<f64> {
        self.points.last().map(|p| p.0)
    }
}

/// The shift canary − baseline: its interval and estimate, in the values' units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub lower: f64,
    pub upper: f64,
    pub estimate: f64,
}

/// Why no interval could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShiftError {
    #[error("no values on the {0} side")]
    Empty(Side),
    #[error("every value is tied: the rank test has no spread to measure a shift by")]
    AllTied,
    #[error("the values are too far apart to compare: their differences overflow")]
    Overflow,
}

/// Which side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Side {
    Canary,
    Baseline,
}

/// The two-sided `confidence` interval and the estimate of the shift `canary − baseline`
/// (module docs).
pub fn shift(canary: &Points, baseline: &Points, confidence: f64) -> Result<Shift, ShiftError> {
    let (Some(x_min), Some(x_max)) = (canary.min(), canary.max()) else {
        return Err(ShiftError::Empty(Side::Canary));
    };
    let (Some(y_min), Some(y_max)) = (baseline.min(), baseline.max()) else {
        return Err(ShiftError::Empty(Side::Baseline));
    };
    // Two constant sides allow one shift, at which every value ties; rounding in x − μ may
    // untie them, but R stops there either way (σ = 0, or `uniroot` on a one-point range).
    if canary.points.len() == 1 && baseline.points.len() == 1 {
        return Err(ShiftError::AllTied);
    }
    let test = RankSum { canary, baseline };
    let (low, high) = (x_min - y_max, x_max - y_min);
    // Values near ±1.8e308 have differences that overflow: no shift to search for.
    if !low.is_finite() || !high.is_finite() {
        return Err(ShiftError::Overflow);
    }
    let zc = super::z(confidence);
    // σ is 0 only when every value ties, which the check above rules out; `None` stays an
    // error rather than a NaN all the same.
    let root = |above: &dyn Fn(f64) -> Option<bool>| {
        test.boundary(low, high, above).ok_or(ShiftError::AllTied)
    };
    // R's `root`: the bounds solve z(μ) = ±z_c with the continuity correction; the estimate
    // solves it for 0 with the correction off (R sets `correct <- FALSE` before its `uniroot`).
    let lower = root(&|mu| test.z(mu, true).map(|z| z > zc))?;
    let upper = root(&|mu| test.z(mu, true).map(|z| z > -zc))?;
    // Uncorrected z is 0 on a whole range of μ when nx·ny is even (between the two middle
    // pairwise differences); R's `uniroot` stops anywhere in it. The middle of that range is
    // the one answer symmetric under swapping the sides (and, without ties, the median of the
    // pairwise differences).
    let last_above = root(&|mu| test.z(mu, false).map(|z| z > 0.0))?;
    let first_below = root(&|mu| test.z(mu, false).map(|z| z >= 0.0))?;
    Ok(Shift {
        lower,
        upper,
        estimate: f64::midpoint(last_above, first_below),
    })
}

/// The rank-sum statistic of `canary − μ` against `baseline`.
struct RankSum<'a> {
    canary: &'a Points,
    baseline: &'a Points,
}

impl RankSum<'_> {
    /// z(μ), with the continuity correction when `correct`; `None` when σ is 0 (every value
    /// tied).
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    #[expect(clippy::float_cmp, reason = "ties are exact equality, as in R's rank")]
    fn z(&self, mu: f64, correct: bool) -> Option<f64> {
        // x − μ must be a number for the merge below to move on (NaN equals nothing).
        if !mu.is_finite() {
            return None;
        }
        let (x, y) = (&self.canary.points, &self.baseline.points);
        let (nx, ny) = (self.canary.n as f64, self.baseline.n as f64);
        let (mut i, mut j) = (0, 0);
        let (mut below, mut rank_sum_x, mut ties) = (0.0f64, 0.0f64, 0.0f64);
        while i < x.len() || j < y.len() {
            let next_x = x.get(i).map(|p| p.0 - mu);
            let next_y = y.get(j).map(|p| p.0);
            let value = match (next_x, next_y) {
                (Some(from_x), Some(from_y)) => from_x.min(from_y),
                (Some(from_x), None) => from_x,
                (None, Some(from_y)) => from_y,
                (None, None) => break,
            };
            // Every x − μ and y equal to `value` tie: x values apart may meet after the shift's
            // rounding, so take all of them.
            let mut tied_x = 0.0;
            while let Some(p) = x.get(i).filter(|p| p.0 - mu == value) {
                tied_x += p.1 as f64;
                i += 1;
            }
            let mut tied_y = 0.0;
            while let Some(p) = y.get(j).filter(|p| p.0 == value) {
                tied_y += p.1 as f64;
                j += 1;
            }
            let tied = tied_x + tied_y;
            // The average of ranks below + 1 ..= below + tied.
            rank_sum_x += tied_x * (below + f64::midpoint(tied, 1.0));
            ties += tied * tied * tied - tied;
            below += tied;
        }
        let total = nx + ny;
        let dz = rank_sum_x - nx * (nx + 1.0) / 2.0 - nx * ny / 2.0;
        let variance = nx * ny / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
        if variance.is_nan() || variance <= 0.0 {
            return None;
        }
        let correction = if !correct || dz == 0.0 {
            0.0
        } else {
            0.5_f64.copysign(dz)
        };
        Some((dz - correction) / variance.sqrt())
    }

    /// Where `above(μ)` turns from true to false on [low, high], z falling as μ grows: `low`
    /// when it is false there already, `high` when still true there (R's `root` returns the
    /// ends so). z steps only where some x − μ meets some y, so the turn is a pairwise
    /// difference x − y: bisection narrows the bracket until it holds one, and that difference
    /// is the answer, exactly (a bound of exactly 0 stays 0, not ±1e-13 of rounding, and a
    /// narrow interval among large values keeps its size). `None` when σ is 0 on the way.
    fn boundary(&self, low: f64, high: f64, above: &dyn Fn(f64) -> Option<bool>) -> Option<f64> {
        if !above(low)? {
            return Some(low);
        }
        if above(high)? {
            return Some(high);
        }
        let (mut lo, mut hi) = (low, high);
        // Below this width the bracket usually holds one difference; it is looked for from
        // there on, each look costing about what a z(μ) does.
        let narrow = (high - low) * 1e-12;
        // Enough halvings to reach adjacent floats from any bracket of normal numbers.
        for _ in 0..2200 {
            let mid = f64::midpoint(lo, hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if hi - lo <= narrow {
                match self.differences_within(lo, hi) {
                    Within::One(difference) => return Some(difference),
                    Within::None => break,
                    Within::Many => {}
                }
            }
            if above(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(match self.differences_within(lo, hi) {
            Within::One(difference) => difference,
            Within::None | Within::Many => f64::midpoint(lo, hi),
        })
    }

    /// The pairwise differences x − y in [lo, hi]: none, one value, or several.
    #[expect(clippy::float_cmp, reason = "one difference is one exact value")]
    fn differences_within(&self, lo: f64, hi: f64) -> Within {
        let y = &self.baseline.points;
        let mut found = Within::None;
        for &(x, _) in &self.canary.points {
            // y in [x − hi, x − lo], one more on each side for the rounding of x − hi.
            let start = y.partition_point(|p| p.0 < x - hi).saturating_sub(1);
            let end = (y.partition_point(|p| p.0 <= x - lo) + 1).min(y.len());
            for &(y, _) in &y[start..end] {
                let difference = x - y;
                if !(lo..=hi).contains(&difference) {
                    continue;
                }
                match found {
                    Within::None => found = Within::One(difference),
                    Within::One(seen) if seen == difference => {}
                    Within::One(_) | Within::Many => return Within::Many,
                }
            }
        }
        found
    }
}

/// What a bracket holds of the pairwise differences.
enum Within {
    None,
    One(f64),
    Many,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    /// A sample shifted by 5 against itself: the estimate is the shift, inside its interval.
    #[test]
    fn a_pure_shift_is_estimated() {
        let y: Vec<f64> = (1..=10).map(f64::from).collect();
        let x: Vec<f64> = y.iter().map(|v| v + 5.0).collect();
        let s = shift(&Points::from_values(&x), &Points::from_values(&y), 0.95).unwrap();
        assert!(close(s.estimate, 5.0), "{s:?}");
        assert!(s.lower < 5.0 && 5.0 < s.upper, "{s:?}");
    }

    /// Values whose differences overflow (a hostile scenario's 1e308) are an error, at once:
    /// the merge of x − μ and y once spun forever on x − μ = NaN.
    #[test]
    fn differences_that_overflow_are_an_error_not_a_hang() {
        let x = Points::from_values(&[1e308, -1e308, 1e308, 5.0, 6.0]);
        let y = Points::from_values(&[-1e308, 1e308, 3.0, 4.0, 1e308]);
        assert_eq!(shift(&x, &y, 0.98), Err(ShiftError::Overflow));
        assert_eq!(shift(&y, &x, 0.98), Err(ShiftError::Overflow));
        // Large but apart by less than f64::MAX: a shift.
        let x = Points::from_values(&[1e307, 2e307, 3e307]);
        let y = Points::from_values(&[-1e307, 0.0, 1e307]);
        assert!(shift(&x, &y, 0.98).is_ok());
    }

    #[test]
    fn all_tied_is_an_error_not_a_nan() {
        let x = Points::from_values(&[1.0, 1.0, 1.0]);
        let y = Points::from_values(&[1.0, 1.0]);
        assert_eq!(shift(&x, &y, 0.98), Err(ShiftError::AllTied));
        assert_eq!(
            shift(&Points::default(), &y, 0.98),
            Err(ShiftError::Empty(Side::Canary))
        );
    }

    /// R's estimate solves z(μ) = 0 without the continuity correction. With it, z is 0 over
    /// (0, 20) here and the search ended at 0; without it the sign changes at 10, the median of
    /// the pairwise differences 0, 10, 20 (R: `wilcox.test(c(0, 10, 20), 0, conf.int = TRUE,
    /// exact = FALSE)$estimate` is 10).
    #[test]
    fn the_estimate_takes_no_continuity_correction() {
        let x = Points::from_values(&[0.0, 10.0, 20.0]);
        let y = Points::from_values(&[0.0]);
        let s = shift(&x, &y, 0.5).unwrap();
        assert!(close(s.estimate, 10.0), "{s:?}");
    }

    /// 0.7 − (0.7 − 0.01) is not 0.01 in floating point, so the one shift both constant sides
    /// allow ties nothing after rounding; R stops there all the same (`uniroot` on the
    /// one-point range), and so do we.
    #[test]
    fn two_constant_sides_are_all_tied_whatever_the_rounding() {
        let x = Points::from_values(&[0.7; 5]);
        let y = Points::from_values(&[0.01; 4]);
        assert_eq!(shift(&x, &y, 0.98), Err(ShiftError::AllTied));
        assert_eq!(shift(&y, &x, 0.98), Err(ShiftError::AllTied));
    }

    /// Two equal samples: the estimate and the bounds are pairwise differences exactly, so an
    /// estimate of 0 is 0 and not ±1e-13 (which a margin of 0 would read as a shift).
    #[test]
    #[expect(clippy::float_cmp, reason = "exactly a difference, by design")]
    fn ends_are_exact_pairwise_differences() {
        let v = [0.0, 0.001, 0.002, 0.002, 0.004, 0.0105, 0.02, 0.03];
        let p = Points::from_values(&v);
        let s = shift(&p, &p, 0.9).unwrap();
        assert_eq!(s.estimate.to_bits(), 0.0f64.to_bits(), "{s:?}");
        for end in [s.lower, s.upper] {
            assert!(v.iter().any(|a| v.iter().any(|b| a - b == end)), "{s:?}");
        }
    }

    #[test]
    fn median_is_rs() {
        assert_eq!(Points::from_values(&[3.0, 1.0, 2.0]).median(), Some(2.0));
        assert_eq!(
            Points::from_values(&[4.0, 1.0, 2.0, 3.0]).median(),
            Some(2.5)
        );
        assert_eq!(Points::new([(1.0, 3), (5.0, 1)]).median(), Some(1.0));
        assert_eq!(Points::default().median(), None);
        assert!(close(
            Points::new([(1.0, 2), (5.0, 2)]).median().unwrap(),
            3.0
        ));
    }
}
