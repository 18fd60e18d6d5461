//! Durations (`500ms`, `30s`, `5m`, `24h`, `14d`) and quantities in Prometheus base units.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression the schema uses for a duration; `parse_duration` accepts exactly this.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// The longest duration a plan may name: ten years, far beyond any rollout, and far from overflow.
const MAX_DURATION: Duration = Duration::from_hours(87840);

/// A duration as a plan writes it: one or more `NUMBER UNIT` pairs, e.g. `90s` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanDuration(pub Duration);

impl PlanDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for PlanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// Why a duration did not parse; the message is a lowercase fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("`{0}` is not a duration: write a number followed by ms, s, m, h or d (e.g. `30s`)")]
    Syntax(String),
    #[error("duration `{0}` is too long (the limit is ten years)")]
    TooLong(String),
}

/// Parses `500ms`, `30s`, `5m`, `24h`, `14d` and sums such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax(text.to_owned());
    let bytes = text.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(syntax());
        }
        let number: u64 = text[start..i]
            .parse()
            .map_err(|_| DurationError::TooLong(text.to_owned()))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &text[unit_start..i] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            _ => return Err(syntax()),
        };
        total = total.saturating_add(part);
    }
    if total > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(total)
}

/// Formats a duration the way a plan would write it, largest units first (`1h30m`, `250ms`).
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    let millis = duration.subsec_millis();
    if millis > 0 {
        let _ = write!(out, "{millis}ms");
    }
    out
}

impl<'de> Deserialize<'de> for PlanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse_duration(&text)
            .map(PlanDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for PlanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl JsonSchema for PlanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number and a unit (ms, s, m, h, d), e.g. `500ms`, `30s`, `5m`, `24h`, `14d`, or a sum such as `1h30m`.",
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// The unit a literal in a gate condition was written with; decides which metrics it may be
/// compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiteralUnit {
    /// A bare number: compared as is.
    Plain,
    /// `200ms`, `1s`: converted to seconds.
    Duration,
    /// `0.5%`: converted to a fraction.
    Percent,
}

/// Parses a gate literal (`0.5%`, `200ms`, `1.2`, `3`) into its value in base units.
pub fn parse_quantity(text: &str) -> Option<(f64, LiteralUnit)> {
    if let Some(number) = text.strip_suffix('%') {
        return parse_number(number).map(|v| (v / 100.0, LiteralUnit::Percent));
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value = parse_number(number)?;
    let seconds = match unit {
        "" => return Some((value, LiteralUnit::Plain)),
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return None,
    };
    Some((seconds, LiteralUnit::Duration))
}

fn parse_number(text: &str) -> Option<f64> {
    // Digits with at most one point; no exponent, sign, `inf` or `nan`, which `f64::from_str`
    // would otherwise let through into a threshold.
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text.bytes().any(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    text.parse().ok().filter(|v: &f64| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_mins(5)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_hours(24)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_hours(336)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_mins(90)));
    }

    #[test]
    fn bad_durations_are_errors() {
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "5min",
            "-5s",
            "1.5h",
            "5s ",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            parse_duration("4000d"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn durations_format_back_to_what_parses() {
        for text in ["0s", "250ms", "1h30m", "14d", "1d2h3m4s5ms"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn quantities_are_in_base_units() {
        assert_eq!(parse_quantity("0.5%"), Some((0.005, LiteralUnit::Percent)));
        assert_eq!(parse_quantity("200ms"), Some((0.2, LiteralUnit::Duration)));
        assert_eq!(parse_quantity("2s"), Some((2.0, LiteralUnit::Duration)));
        assert_eq!(parse_quantity("1.2"), Some((1.2, LiteralUnit::Plain)));
        for bad in ["", "%", "1e3", "inf", "NaN", "1.2.3", "5x", "-1", "ms"] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }
}
