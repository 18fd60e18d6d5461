//! A problem found in a plan: what, where (JSON Pointer, then `file:line:col`), and how to fix it.

use std::fmt;

use serde::Serialize;

use crate::plan::span::{ByteSpan, LineIndex, SourceMap};

/// How bad a diagnostic is. Warnings fail validation only under `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// Stable diagnostic codes: tools and tests match on these, so they never change meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// The file is larger than a plan may be.
    TooLarge = "too-large",
    /// The file is not UTF-8.
    NotUtf8 = "not-utf8",
    /// The file holds no document (empty, or only comments).
    Empty = "empty",
    /// The YAML does not parse.
    YamlSyntax = "yaml-syntax",
    /// A mapping names the same key twice.
    DuplicateKey = "duplicate-key",
    /// The YAML is too deep, has too many aliases, or is too big once aliases expand.
    YamlLimit = "yaml-limit",
    /// A key the format does not know.
    UnknownKey = "unknown-key",
    /// A value of the wrong type.
    Type = "type",
    /// A required key is missing.
    Required = "required",
    /// A value outside the allowed set.
    BadValue = "bad-value",
    /// A number outside its range, or a list or string of the wrong length.
    Range = "range",
    /// A duration that does not parse.
    BadDuration = "bad-duration",
    /// A name with characters gate conditions cannot refer to.
    BadName = "bad-name",
    /// Zero or several of keys of which exactly one is needed.
    OneOf = "one-of",
    /// Any other schema violation.
    Schema = "schema",
    /// `schedule.window` is not a 5-field crontab.
    BadWindow = "bad-window",
    /// `schedule.timezone` is not an IANA time zone.
    BadTimezone = "bad-timezone",
    /// `schedule.not_before` is not an RFC 3339 instant.
    BadTimestamp = "bad-timestamp",
    /// Traffic does not increase from one stage to the next.
    TrafficOrder = "traffic-order",
    /// Two stages, or two preflight items, share a name.
    DuplicateName = "duplicate-name",
    /// A reference to a probe that does not exist.
    UnknownProbe = "unknown-probe",
    /// A reference to a gate that does not exist.
    UnknownGate = "unknown-gate",
    /// `${{ vars.X }}` where `X` is not in `vars`.
    UnknownVar = "unknown-var",
    /// A `${{ … }}` that does not parse, or is not allowed where it stands.
    BadInterpolation = "bad-interpolation",
    /// A gate condition that does not parse.
    BadExpression = "bad-expression",
    /// A metric its probe cannot produce.
    UnknownMetric = "unknown-metric",
    /// A threshold in a unit the metric is not measured in (`error_rate <= 200ms`).
    UnitMismatch = "unit-mismatch",
    /// A gate reads a probe that the stage's checks do not run.
    ProbeNotRun = "probe-not-run",
    /// A check offset beyond the stage's bake.
    OffsetBeyondBake = "offset-beyond-bake",
    /// A stage that would run more checks than a run may hold (`every: 1ms` over a long bake).
    TooManyChecks = "too-many-checks",
    /// A relative script path that does not exist beside the plan.
    MissingScript = "missing-script",
    /// `consecutive` or `within` out of range.
    StreakRange = "streak-range",
    /// Keys that exclude each other (`delay` and `rate`, `consecutive` and `within`).
    Conflict = "conflict",
    /// A URL that does not parse.
    BadUrl = "bad-url",
    /// A program not found on PATH (warning).
    CommandNotFound = "command-not-found",
    /// A probe or gate that nothing uses (warning).
    Unused = "unused",
    /// A streak longer than the checks a stage runs: it can never fire (warning).
    UnreachableStreak = "unreachable-streak",
    /// The last stage does not reach 100% traffic (warning).
    PartialRollout = "partial-rollout",
    /// A secret (`${{ env.NAME }}`) on a command line, where `ps` shows it (warning).
    SecretInArgv = "secret-in-argv",
    /// `confidence` on a metric that has no interval (no count, not a load percentile).
    NoInterval = "no-interval",
    /// `confidence` on `==` or `!=`.
    ConfidenceOperator = "confidence-operator",
    /// A `confidence` condition that cannot pass on the data the plan gathers, even with no
    /// errors (warning).
    InsufficientEvidence = "insufficient-evidence",
    /// A stage that may end early although no end condition has `confidence` (warning).
    EarlyWithoutConfidence = "early-without-confidence",
    /// A condition reads a distribution (`load.canary.latency`), which only `compare:` judges.
    DistributionInCondition = "distribution-in-condition",
    /// A `compare:` entry whose sides are not of one kind (a series against a distribution).
    CompareKind = "compare-kind",
    /// A `compare:` entry that compares a metric with itself.
    CompareSelf = "compare-self",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the node a diagnostic points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The value at the pointer.
    Value,
    /// The key of the entry at the pointer (an unknown key, a duplicate name).
    Key,
    /// A part of the string value: byte range inside the string's text.
    Within { start: usize, len: usize },
    /// An exact place in the file, known from the parser.
    Span(ByteSpan),
}

/// A problem found in a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// JSON Pointer of the node at fault ("" for the whole document).
    pub pointer: String,
    pub help: Option<String>,
    pub target: Target,
    /// Other nodes the finding reads (a probe's definition, the previous stage's traffic): when
    /// validation had to repair one of them, the finding is not reported (see `plan::repair`).
    /// (A boxed slice: it keeps `Diagnostic` small enough to travel in `Result`s.)
    pub depends: Box<[String]>,
}

impl Diagnostic {
    pub fn error(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            pointer: pointer.into(),
            help: None,
            target: Target::Value,
            depends: Box::default(),
        }
    }

    pub fn warning(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, pointer, message)
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// Records another node the finding depends on.
    #[must_use]
    pub fn depending_on(mut self, pointer: impl Into<String>) -> Self {
        self.add_depends([pointer.into()]);
        self
    }

    /// Records other nodes the finding depends on.
    pub fn add_depends(&mut self, pointers: impl IntoIterator<Item = String>) {
        let mut all = std::mem::take(&mut self.depends).into_vec();
        all.extend(pointers);
        self.depends = all.into_boxed_slice();
    }

    #[must_use]
    pub fn at_key(self) -> Self {
        self.with_target(Target::Key)
    }

    /// Places the diagnostic in the file.
    pub fn locate(self, text: &str, map: &SourceMap, lines: &LineIndex) -> Located {
        let span = match self.target {
            Target::Span(span) => span,
            target => map
                .lookup(&self.pointer)
                .map_or_else(ByteSpan::default, |node| {
                    let value = node.value;
                    match target {
                        Target::Key => node.key.unwrap_or(value),
                        Target::Within { start, len } => within(text, value, start, len),
                        Target::Value | Target::Span(_) => value,
                    }
                }),
        };
        let (line, column) = lines.line_col(text, span.offset);
        Located {
            diagnostic: self,
            span,
            line,
            column,
        }
    }
}

/// The span of a part of a string scalar, when the scalar stands in the file as written (plain
/// or quoted without escapes); else the whole scalar.
fn within(text: &str, value: ByteSpan, start: usize, len: usize) -> ByteSpan {
    let Some(raw) = text.get(value.offset..value.offset + value.len) else {
        return value;
    };
    let quoted = raw.starts_with('"') || raw.starts_with('\'');
    let inner_start = usize::from(quoted);
    if raw.len() >= inner_start + start + len && raw.is_char_boundary(inner_start + start) {
        ByteSpan::new(value.offset + inner_start + start, len.max(1))
    } else {
        value
    }
}

/// A diagnostic with its place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub diagnostic: Diagnostic,
    pub span: ByteSpan,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

/// The help for an unknown name (``did you mean `canary`?``) when a known name is close enough
/// to be a likely typo (see [`closest`]). `prefix` (`vars.`, `PROBE.` or empty) goes before the
/// suggestion where names are compared bare but written qualified (``did you mean `vars.port`?``).
pub fn did_you_mean(name: &str, known: &[String], prefix: &str) -> Option<String> {
    closest(name, known).map(|best| format!("did you mean `{prefix}{best}`?"))
}

/// The longest name compared for a suggestion: typos happen in names people type, and
/// comparing a megabyte-long one with every known name costs seconds.
const MAX_SUGGESTION_LEN: usize = 64;

/// Name comparisons one validation may spend on suggestions: ample for any real plan, and a
/// bound on a hostile one (20,000 unknown names against 20,000 known ones would take minutes).
const SUGGESTION_BUDGET: usize = 2_000_000;

thread_local! {
    /// What is left of the current validation's budget; files are validated one per thread at a
    /// time, and `reset_suggestion_budget` starts each.
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(SUGGESTION_BUDGET) };
}

/// Gives the next validation on this thread its whole suggestion budget.
pub fn reset_suggestion_budget() {
    BUDGET.set(SUGGESTION_BUDGET);
}

/// The known name closest to `name`, if it is close enough to be a likely typo. Once the
/// validation's budget is spent, no more suggestions are made (the finding itself stays).
pub fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    if name.len() > MAX_SUGGESTION_LEN {
        return None;
    }
    let left = BUDGET.get();
    if left < known.len() {
        BUDGET.set(0);
        return None;
    }
    BUDGET.set(left - known.len());
    known
        .iter()
        .filter(|k| k.len() <= MAX_SUGGESTION_LEN)
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_only() {
        let known: Vec<String> = ["traffic", "bake", "name"].map(String::from).to_vec();
        assert_eq!(closest("trafic", &known), Some("traffic"));
        assert_eq!(closest("bkae", &known), Some("bake"));
        assert_eq!(closest("zzz", &known), None);
    }

    #[test]
    fn suggestions_stop_when_the_budget_is_spent_and_skip_huge_names() {
        reset_suggestion_budget();
        let known: Vec<String> = (0..1000).map(|i| format!("name{i:04}")).collect();
        assert_eq!(closest(&"x".repeat(100_000), &known), None);
        let mut suggested = 0;
        for i in 0..3000 {
            if closest(&format!("name{:04}x", i % 1000), &known).is_some() {
                suggested += 1;
            }
        }
        // 2,000,000 comparisons buy 2,000 searches of 1,000 names.
        assert_eq!(suggested, 2000);
        reset_suggestion_budget();
        assert_eq!(closest("name0001x", &known), Some("name0001"));
    }

    #[test]
    fn the_suggestion_names_the_closest_known_name_with_its_prefix() {
        reset_suggestion_budget();
        let known: Vec<String> = ["canary", "legacy"].map(String::from).to_vec();
        assert_eq!(
            did_you_mean("canray", &known, "").as_deref(),
            Some("did you mean `canary`?")
        );
        assert_eq!(
            did_you_mean("legacyy", &known, "vars.").as_deref(),
            Some("did you mean `vars.legacy`?")
        );
        assert_eq!(did_you_mean("zzz", &known, ""), None);
    }
}
