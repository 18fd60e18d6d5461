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
}

impl Evaluation {
    /// "`canary.error_rate <= 1%`: 2.3% (violation, 3 of 3)".
    pub fn describe(&self, unit: LiteralUnit) -> String {
        let outcome = match &self.outcome {
            Outcome::Pass => "pass".to_owned(),
            Outcome::Violation => "violation".to_owned(),
            Outcome::Error(e) => format!("error: {e}"),
        };
        let value = self
            .value
            .map_or_else(String::new, |v| format!(" = {}", show(v, unit)));
        let streak = if self.streak.needed > 1 {
            format!(", {} of {}", self.streak.count, self.streak.needed)
        } else {
            String::new()
        };
        format!("`{}`{value} ({outcome}{streak})", self.condition)
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

fn trim(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}
