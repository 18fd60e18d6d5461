//! One condition judged at one check: what the journal stores, and reports show in the unit
//! its threshold was written in.

use serde::{Deserialize, Serialize};

use crate::plan::units::LiteralUnit;

/// The result of one condition at one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Violation,
    /// Judged on an interval (`confidence`) that straddles the threshold: not enough data to
    /// say. It neither resets nor extends a streak, and is not an error (`docs/plan.md`,
    /// "Evidence").
    Insufficient,
    Error(String),
}

/// The state of a streak after an evaluation: `count` of `needed` (for `within`, violations
/// among the last `window` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    pub count: u32,
    pub needed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

/// One condition evaluated at one check: what the journal and the report record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub gate: String,
    pub condition: String,
    pub outcome: Outcome,
    /// The metric's value, in base units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it was compared with, in base units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub streak: Streak,
    /// This evaluation failed the condition.
    pub fired: bool,
    /// The interval it was judged on, when the condition sets `confidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The unit its threshold is written in, for showing values (journals written before it
    /// was recorded read as plain numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<LiteralUnit>,
    /// What a `compare:` entry was judged on (`condition` is then "CANARY vs BASELINE").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
}

/// A `compare:` entry's statistic: the shift canary − baseline with its interval, in base
/// units (`docs/plan.md`, "Compare").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Values on the canary's side and the baseline's (latencies for a distribution, checks
    /// for a series).
    pub nx: u64,
    pub ny: u64,
    /// The interval of the shift; `None` when it could not be computed (too few values, or
    /// every value tied).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The shift's estimate (Hodges–Lehmann-like: where the test statistic is centred).
    pub estimate: Option<f64>,
    /// tolerance × |median(baseline)|: a shift within it is no change (0 when it overflows,
    /// and the outcome is then an error saying so).
    pub margin: f64,
    pub median_canary: Option<f64>,
    pub median_baseline: Option<f64>,
    /// The confidence asked for, a fraction (0.98).
    pub confidence: f64,
    /// `higher` or `lower` when the outcome is a violation: which way the canary moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftWay>,
}

/// Which way a violating canary moved against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ShiftWay {
    Higher,
    Lower,
}

/// The interval a condition with `confidence` was judged on, and what it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The confidence asked for, a fraction (0.95).
    pub confidence: f64,
    /// The interval's lower bound, in base units.
    pub lo: f64,
    /// Its upper bound; `None`: unbounded (too few data for that side).
    pub hi: Option<f64>,
    /// How many observations it rests on: requests for a ratio, latencies for a percentile.
    pub n: u64,
    /// How many checks were pooled (1 for an `every_check` gate).
    pub checks: u32,
}

impl Evaluation {
    /// The unit its values are shown in: as recorded, or (a journal written before units were
    /// recorded) as its condition writes its threshold.
    pub fn unit(&self) -> LiteralUnit {
        self.unit.unwrap_or_else(|| literal_unit(&self.condition))
    }

    /// "`canary.error_rate <= 1%` = 2.3% (violation, 3 of 3)"; with `confidence`,
    /// "`canary.error_rate <= 0.5%` = 0% [0%, 0.61%] at 95% over 600 (insufficient)".
    pub fn describe(&self) -> String {
        if let Some(comparison) = &self.compare {
            return self.describe_comparison(comparison);
        }
        let unit = self.unit();
        let outcome = match &self.outcome {
            Outcome::Pass => "pass".to_owned(),
            Outcome::Violation => "violation".to_owned(),
            Outcome::Insufficient => "insufficient".to_owned(),
            Outcome::Error(e) => format!("error: {e}"),
        };
        let mut value = self
            .value
            .map_or_else(String::new, |v| format!(" = {}", show(v, unit)));
        if let Some(evidence) = &self.evidence {
            value = format!("{value} {}", evidence.describe(unit));
        }
        let streak = if self.streak.needed > 1 {
            format!(", {} of {}", self.streak.count, self.streak.needed)
        } else {
            String::new()
        };
        format!("`{}`{value} ({outcome}{streak})", self.condition)
    }
}

impl Evaluation {
    /// "`load.canary.latency` +12.3ms [+8.1ms, +16ms] vs `load.legacy.latency`, 98%,
    /// margin 5ms, 2000/2000 values: higher".
    fn describe_comparison(&self, comparison: &Comparison) -> String {
        let unit = self.unit();
        let (canary, baseline) = self
            .condition
            .split_once(" vs ")
            .unwrap_or((self.condition.as_str(), ""));
        let signed = |v: f64| show_signed(v, unit);
        let shift = match (comparison.estimate, comparison.lower, comparison.upper) {
            (Some(estimate), Some(lower), Some(upper)) => format!(
                " {} [{}, {}]",
                signed(estimate),
                signed(lower),
                signed(upper)
            ),
            _ => String::new(),
        };
        let outcome = match (&self.outcome, comparison.shift) {
            (_, Some(way)) => way.to_string(),
            (Outcome::Pass, None) => "pass".to_owned(),
            (Outcome::Violation, None) => "violation".to_owned(),
            (Outcome::Insufficient, None) => "insufficient".to_owned(),
            (Outcome::Error(e), None) => format!("error: {e}"),
        };
        format!(
            "`{canary}`{shift} vs `{baseline}`, {}%, margin {}, {}/{} values: {outcome}",
            trim(comparison.confidence * 100.0),
            show(comparison.margin, unit),
            comparison.nx,
            comparison.ny,
        )
    }
}

impl Evidence {
    /// "[0%, 0.61%] at 95% over 600".
    pub fn describe(&self, unit: LiteralUnit) -> String {
        let hi = self.hi.map_or_else(|| "∞".to_owned(), |hi| show(hi, unit));
        format!(
            "[{}, {hi}] at {}% over {}",
            show(self.lo, unit),
            trim(self.confidence * 100.0),
            self.n
        )
    }
}

/// A value shown in the unit its threshold was written in.
pub fn show(value: f64, unit: LiteralUnit) -> String {
    match unit {
        LiteralUnit::Percent => format!("{}%", trim(value * 100.0)),
        LiteralUnit::Duration if value < 1.0 => format!("{}ms", trim(value * 1000.0)),
        LiteralUnit::Duration => format!("{}s", trim(value)),
        LiteralUnit::Plain => trim(value),
    }
}

/// A shift shown with its sign: "+4ms", "-1.2%", "0".
pub fn show_signed(value: f64, unit: LiteralUnit) -> String {
    let text = show(value, unit);
    if value > 0.0 {
        format!("+{text}")
    } else {
        text
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// The unit a condition's threshold is written in (`<= 1%`: percent); plain when it compares
/// two metrics or does not parse.
pub fn literal_unit(condition: &str) -> LiteralUnit {
    match crate::plan::expr::parse(condition).map(|e| e.rhs) {
        Ok(crate::plan::expr::Rhs::Quantity { unit, .. }) => unit,
        _ => LiteralUnit::Plain,
    }
}
