//! The gate condition grammar: `METRIC OP VALUE` or `METRIC OP METRIC [* FACTOR]`.
//!
//! ```text
//! condition := metric op (quantity | metric ["*" number])
//! metric    := name ("." name)+            e.g. load.canary.p95
//! op        := "<" | "<=" | ">" | ">=" | "==" | "!="
//! quantity  := number [unit]               e.g. 200ms, 0.5%, 1.2
//! ```

use std::fmt;

use serde::Serialize;

use crate::plan::units::{LiteralUnit, parse_quantity};

/// A metric named in a condition, e.g. `load.canary.p95`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricRef {
    /// The full dotted name.
    pub name: String,
    /// Byte offset of the name in the condition text.
    #[serde(skip)]
    pub start: usize,
}

impl MetricRef {
    /// The probe that produces the metric (the first segment).
    pub fn probe(&self) -> &str {
        self.name.split('.').next().unwrap_or_default()
    }

    /// The metric within the probe (`canary.p95` of `load.canary.p95`).
    pub fn within_probe(&self) -> &str {
        self.name.split_once('.').map_or("", |(_, rest)| rest)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// Whether `left OP right` holds. NaN never satisfies a condition.
    pub fn holds(self, left: f64, right: f64) -> bool {
        #[expect(clippy::float_cmp, reason = "`==` in a plan means exact equality")]
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right && !left.is_nan() && !right.is_nan(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rhs {
    /// A threshold in base units (`200ms` is 0.2, `0.5%` is 0.005).
    Quantity {
        value: f64,
        unit: LiteralUnit,
        #[serde(skip)]
        start: usize,
    },
    /// Another metric, times a factor (1 when none is written).
    Metric { metric: MetricRef, factor: f64 },
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub metric: MetricRef,
    pub op: Op,
    pub rhs: Rhs,
}

impl Expr {
    /// Every metric the condition reads.
    pub fn metrics(&self) -> impl Iterator<Item = &MetricRef> {
        let rhs = match &self.rhs {
            Rhs::Metric { metric, .. } => Some(metric),
            Rhs::Quantity { .. } => None,
        };
        std::iter::once(&self.metric).chain(rhs)
    }
}

/// Why a condition did not parse, and where (byte range in the condition text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub start: usize,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    Number(&'a str),
    Op(Op),
    Star,
}

fn tokenize(text: &str) -> Result<Vec<(Token<'_>, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
            {
                i += 1;
            }
            tokens.push((Token::Name(&text[start..i]), start));
        } else if c.is_ascii_digit() || c == b'.' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'%'))
            {
                i += 1;
            }
            tokens.push((Token::Number(&text[start..i]), start));
        } else if c == b'*' {
            i += 1;
            tokens.push((Token::Star, start));
        } else if matches!(c, b'<' | b'>' | b'=' | b'!') {
            let two = bytes.get(i + 1) == Some(&b'=');
            let op = match (c, two) {
                (b'<', true) => Op::Le,
                (b'<', false) => Op::Lt,
                (b'>', true) => Op::Ge,
                (b'>', false) => Op::Gt,
                (b'=', true) => Op::Eq,
                (b'!', true) => Op::Ne,
                _ => {
                    return Err(ParseError {
                        message: format!(
                            "`{}` is not an operator; use ==, !=, <, <=, > or >=",
                            c as char
                        ),
                        start,
                        len: 1,
                    });
                }
            };
            i += if two { 2 } else { 1 };
            tokens.push((Token::Op(op), start));
        } else {
            let ch = text[start..].chars().next().unwrap_or('?');
            return Err(ParseError {
                message: format!("unexpected `{ch}`"),
                start,
                len: ch.len_utf8(),
            });
        }
    }
    Ok(tokens)
}

fn metric(name: &str, start: usize) -> Result<MetricRef, ParseError> {
    let valid = name.split('.').count() >= 2 && name.split('.').all(|part| !part.is_empty());
    if !valid {
        return Err(ParseError {
            message: format!(
                "`{name}` is not a metric: write PROBE.METRIC, e.g. `canary.error_rate`"
            ),
            start,
            len: name.len(),
        });
    }
    Ok(MetricRef {
        name: name.to_owned(),
        start,
    })
}

fn quantity(text: &str, start: usize) -> Result<(f64, LiteralUnit), ParseError> {
    parse_quantity(text).ok_or_else(|| ParseError {
        message: format!("`{text}` is not a number (units: ms, s, m, h, d, %)"),
        start,
        len: text.len(),
    })
}

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let end = text.len();
    let expected = |what: &str, at: Option<&(Token<'_>, usize)>| {
        let (start, len) = at.map_or((end, 0), |(token, start)| {
            let len = match token {
                Token::Name(s) | Token::Number(s) => s.len(),
                Token::Op(op) => op.as_str().len(),
                Token::Star => 1,
            };
            (*start, len)
        });
        ParseError {
            message: if at.is_some() {
                format!("expected {what} here")
            } else {
                format!("expected {what} at the end")
            },
            start,
            len,
        }
    };
    let mut tokens = tokens.iter();
    let left = match tokens.next() {
        Some((Token::Name(name), start)) => metric(name, *start)?,
        other => return Err(expected("a metric such as `canary.error_rate`", other)),
    };
    let op = match tokens.next() {
        Some((Token::Op(op), _)) => *op,
        other => return Err(expected("an operator (<, <=, >, >=, ==, !=)", other)),
    };
    let rhs = match tokens.next() {
        Some((Token::Number(number), start)) => {
            let (value, unit) = quantity(number, *start)?;
            Rhs::Quantity {
                value,
                unit,
                start: *start,
            }
        }
        Some((Token::Name(name), start)) => {
            let right = metric(name, *start)?;
            let factor = match tokens.next() {
                None => 1.0,
                Some((Token::Star, _)) => match tokens.next() {
                    Some((Token::Number(number), start)) => match quantity(number, *start)? {
                        (value, LiteralUnit::Plain) => value,
                        _ => {
                            return Err(ParseError {
                                message: "a factor is a plain number, e.g. `* 1.2`".into(),
                                start: *start,
                                len: number.len(),
                            });
                        }
                    },
                    other => return Err(expected("a factor such as `1.2`", other)),
                },
                other => return Err(expected("`*` or the end", other)),
            };
            Rhs::Metric {
                metric: right,
                factor,
            }
        }
        other => return Err(expected("a threshold or a metric", other)),
    };
    if let Some(extra) = tokens.next() {
        // `250 ms`: a unit apart from its number.
        if let (Rhs::Quantity { start: at, .. }, (Token::Name(unit), start)) = (&rhs, extra)
            && matches!(*unit, "ms" | "s" | "m" | "h" | "d" | "%")
        {
            let number = text[*at..*start].trim_end();
            return Err(ParseError {
                message: format!(
                    "no space between a number and its unit: `{number}{unit}`, not `{number} {unit}`"
                ),
                start: *at,
                len: start + unit.len() - at,
            });
        }
        return Err(expected("the end of the condition", Some(extra)));
    }
    Ok(Expr {
        metric: left,
        op,
        rhs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_in_base_units() {
        let e = parse("load.canary.p95 <= 200ms").unwrap();
        assert_eq!(e.metric.name, "load.canary.p95");
        assert_eq!(e.metric.probe(), "load");
        assert_eq!(e.op, Op::Le);
        assert!(
            matches!(e.rhs, Rhs::Quantity { value, unit: LiteralUnit::Duration, .. } if (value - 0.2).abs() < 1e-12)
        );
        let e = parse("canary.error_rate<=0.5%").unwrap();
        assert!(matches!(e.rhs, Rhs::Quantity { value, .. } if (value - 0.005).abs() < 1e-12));
    }

    #[test]
    fn metric_against_metric_with_factor() {
        let e = parse("load.canary.p95 <= load.legacy.p95 * 1.2").unwrap();
        match e.rhs {
            Rhs::Metric { metric, factor } => {
                assert_eq!(metric.name, "load.legacy.p95");
                assert_eq!(metric.start, 19);
                assert!((factor - 1.2).abs() < 1e-12);
            }
            Rhs::Quantity { .. } => panic!("expected a metric"),
        }
    }

    #[test]
    fn errors_point_at_the_fault() {
        let e = parse("canary.error_rate =< 1%").unwrap_err();
        assert_eq!(e.start, 18);
        let e = parse("canary.error_rate <=").unwrap_err();
        assert_eq!((e.start, e.len), (20, 0));
        assert!(e.message.contains("at the end"), "{}", e.message);
        let e = parse("error_rate <= 1%").unwrap_err();
        assert!(e.message.contains("PROBE.METRIC"));
        let e = parse("a.b <= 5 5").unwrap_err();
        assert_eq!(e.start, 9);
        let e = parse("a.b <= c.d * 2s").unwrap_err();
        assert!(e.message.contains("factor"));
        assert!(parse("a.b <= 1e9").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn operators_hold_as_written_and_nan_never_passes() {
        assert!(Op::Le.holds(1.0, 1.0));
        assert!(!Op::Lt.holds(1.0, 1.0));
        assert!(Op::Ne.holds(1.0, 2.0));
        for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne] {
            assert!(!op.holds(f64::NAN, 1.0), "{op}");
        }
    }
}
