//! Scenario files: recorded or made-up samples that `run --scenario` feeds to the gates instead
//! of live probes, on simulated time. "Would this plan have rolled back last Tuesday's incident?"
//!
//! ```yaml
//! version: 1
//! metrics:                      # what every check sees, unless a change says otherwise
//!   canary.error_rate: 0.1%
//!   load.canary.p95: 120ms
//! changes:
//!   - stage: canary-10          # or `preflight`
//!     from: 2h                  # offset into the stage; default its start
//!     until: 5h                 # default: the stage's end
//!     metrics:
//!       canary.error_rate: 2%
//!       load: error             # the whole probe fails
//! approvals:
//!   canary-5: { after: 10m, by: alice }
//!   full: { never: true }
//! ```

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::plan::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::plan::metrics::{Catalog, is_distribution};
use crate::plan::model::Plan;
use crate::plan::span::join;
use crate::plan::units::{PlanDuration, parse_quantity};

/// A scenario file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ion-plan scenario")]
pub struct Scenario {
    /// Format version of this file. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// What this scenario replays, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The simulated start instant (RFC 3339). Default: the plan's `not_before`, else now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Metric (`probe.metric`) → value that every check sees unless a change overrides it.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub metrics: IndexMap<String, SampleValue>,
    /// Values for part of a stage; later changes win over earlier ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Stage → how its approval (or a pause in it) is answered. Default: approved at once.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub approvals: IndexMap<String, ApprovalScript>,
    /// A person aborts the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortScript>,
    /// Stages (or `preflight`) whose steps fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_steps: Vec<String>,
    /// The rollback steps fail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_rollback: bool,
}

/// Values for a time range of one stage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// A stage name, or `preflight`.
    pub stage: String,
    /// From this offset into the stage (inclusive). Default: its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PlanDuration>,
    /// Until this offset (exclusive). Default: the stage's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<PlanDuration>,
    /// Metric → value; a bare probe name with `error` or `no_data` fails the whole probe.
    #[schemars(length(min = 1))]
    pub metrics: IndexMap<String, SampleValue>,
}

/// How an approval is answered.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalScript {
    /// Approved this long after it was asked for. Default: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<PlanDuration>,
    /// Who approves. Default `scenario`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Nobody ever answers (to test `approval.timeout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never: bool,
}

/// A person aborts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortScript {
    /// When, from the run's start.
    pub at: PlanDuration,
    /// Why.
    pub reason: String,
    /// Who. Default `scenario`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A sample's value: a number in base units, a quantity (`2%`, `120ms`), `no_data`, `error` or
/// `error: REASON`; or `{series: [V1, V2, …]}` (the i-th check of the range gets Vi, the last
/// repeats), or, for a load target's `latency`, `{distribution: [120ms, …]}` (the raw
/// latencies every check of the range sees).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Number(f64),
    NoData,
    Error(String),
    Series(Vec<SampleValue>),
    /// Latencies in seconds.
    Distribution(Vec<f64>),
}

/// The pattern of one latency of a `distribution`.
pub const DURATION_VALUE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$";

/// The pattern the schema gives a string value.
pub const VALUE_PATTERN: &str = r"^(no_data|error(: .+)?|[0-9]+(\.[0-9]+)?(ms|s|m|h|d|%)?)$";

impl SampleValue {
    pub fn parse(text: &str) -> Option<SampleValue> {
        match text {
            "no_data" => Some(SampleValue::NoData),
            "error" => Some(SampleValue::Error("error (scenario)".to_owned())),
            other => match other.strip_prefix("error: ") {
                Some(reason) => Some(SampleValue::Error(reason.to_owned())),
                None => parse_quantity(other).map(|(v, _)| SampleValue::Number(v)),
            },
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, SampleValue::Number(_))
    }
}

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'v> Visitor<'v> for ValueVisitor {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a quantity such as `2%`, `no_data` or `error`")
            }
            #[expect(clippy::cast_precision_loss, reason = "sample values are small")]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v as f64))
            }
            #[expect(clippy::cast_precision_loss, reason = "sample values are small")]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue::Number(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                SampleValue::parse(v)
                    .ok_or_else(|| E::custom(format!("`{v}` is not a sample value")))
            }
            fn visit_map<A: de::MapAccess<'v>>(self, mut map: A) -> Result<SampleValue, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::custom("expected `series` or `distribution`"))?;
                let value = match key.as_str() {
                    "series" => SampleValue::Series(map.next_value()?),
                    "distribution" => {
                        let values: Vec<SampleValue> = map.next_value()?;
                        SampleValue::Distribution(
                            values
                                .into_iter()
                                .map(|v| match v {
                                    SampleValue::Number(n) if n >= 0.0 => Ok(n),
                                    _ => Err(de::Error::custom(
                                        "a distribution holds latencies: `120ms` or seconds",
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                        )
                    }
                    other => {
                        return Err(de::Error::unknown_field(other, &["series", "distribution"]));
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "give `series` or `distribution`, not both",
                    ));
                }
                Ok(value)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl Serialize for SampleValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SampleValue::Number(n) => serializer.serialize_f64(*n),
            SampleValue::NoData => serializer.serialize_str("no_data"),
            SampleValue::Error(reason) => serializer.serialize_str(&format!("error: {reason}")),
            SampleValue::Series(values) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("series", values)?;
                map.end()
            }
            SampleValue::Distribution(values) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("distribution", values)?;
                map.end()
            }
        }
    }
}

impl JsonSchema for SampleValue {
    fn schema_name() -> Cow<'static, str> {
        "SampleValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let scalar = json_schema!({
            "oneOf": [
                { "type": "number" },
                { "type": "string", "pattern": VALUE_PATTERN },
            ],
        });
        json_schema!({
            "description": "A number in base units (seconds, fractions), a quantity such as `2%` or `120ms`, `no_data`, `error` or `error: REASON`; `{series: [V1, V2, …]}` (the i-th check gets Vi, the last repeats); or, for a load target's `latency`, `{distribution: [120ms, …]}`.",
            "oneOf": [
                { "type": "number" },
                { "type": "string", "pattern": VALUE_PATTERN },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["series"],
                    "properties": {
                        "series": {
                            "description": "The value of each check in turn; the last repeats.",
                            "type": "array",
                            "minItems": 1,
                            "items": scalar,
                        },
                    },
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["distribution"],
                    "properties": {
                        "distribution": {
                            "description": "A load target's latencies at each check, e.g. `[120ms, 95ms]`.",
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "oneOf": [
                                    { "type": "number", "minimum": 0 },
                                    { "type": "string", "pattern": DURATION_VALUE_PATTERN },
                                ],
                            },
                        },
                    },
                },
            ],
        })
    }
}

/// Checks a scenario against the plan it drives: stages, probes and metrics must exist.
pub fn check_against(scenario: &Scenario, plan: &Plan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let stages: Vec<String> = plan.stages.iter().map(|s| s.name.clone()).collect();
    let mut with_preflight = stages.clone();
    with_preflight.push("preflight".to_owned());
    let stage_error = |pointer: String, name: &str, known: &[String]| {
        let d = Diagnostic::error(
            Code::BadValue,
            pointer,
            format!("the plan has no stage `{name}`"),
        );
        let help = did_you_mean(name, known, "")
            .unwrap_or_else(|| format!("stages: {}", known.join(", ")));
        d.with_help(help)
    };
    if let Some(start) = &scenario.start
        && chrono::DateTime::parse_from_rfc3339(start).is_err()
    {
        out.push(Diagnostic::error(
            Code::BadTimestamp,
            "/start",
            format!("`{start}` is not an RFC 3339 instant such as `2025-10-22T14:00:00Z`"),
        ));
    }
    check_metrics(plan, "/metrics", &scenario.metrics, &mut out);
    for (i, change) in scenario.changes.iter().enumerate() {
        let pointer = format!("/changes/{i}");
        if !with_preflight.contains(&change.stage) {
            out.push(stage_error(
                format!("{pointer}/stage"),
                &change.stage,
                &with_preflight,
            ));
        }
        if let (Some(from), Some(until)) = (change.from, change.until)
            && from >= until
        {
            out.push(
                Diagnostic::error(
                    Code::Range,
                    format!("{pointer}/until"),
                    format!("`until: {until}` must come after `from: {from}`"),
                )
                .depending_on(format!("{pointer}/from")),
            );
        }
        check_metrics(
            plan,
            &format!("{pointer}/metrics"),
            &change.metrics,
            &mut out,
        );
    }
    for name in scenario.approvals.keys() {
        if !stages.contains(name) {
            out.push(stage_error(join("/approvals", name), name, &stages).at_key());
        }
    }
    for (i, name) in scenario.fail_steps.iter().enumerate() {
        if !with_preflight.contains(name) {
            out.push(stage_error(
                format!("/fail_steps/{i}"),
                name,
                &with_preflight,
            ));
        }
    }
    out
}

fn check_metrics(
    plan: &Plan,
    pointer: &str,
    metrics: &IndexMap<String, SampleValue>,
    out: &mut Vec<Diagnostic>,
) {
    let probes: Vec<String> = plan.probes.keys().cloned().collect();
    for (name, value) in metrics {
        let at = join(pointer, name);
        let (probe, metric) = name.split_once('.').unwrap_or((name, ""));
        let Some(model) = plan.probes.get(probe) else {
            let mut d = Diagnostic::error(
                Code::UnknownProbe,
                at,
                format!("the plan has no probe `{probe}`"),
            )
            .at_key();
            if let Some(help) = did_you_mean(probe, &probes, "") {
                d = d.with_help(help);
            }
            out.push(d);
            continue;
        };
        if metric.is_empty() {
            if value.is_number() {
                out.push(
                    Diagnostic::error(
                        Code::BadValue,
                        at,
                        format!("a whole probe (`{probe}`) can only be `error` or `no_data`"),
                    )
                    .with_help(format!("name a metric, e.g. `{probe}.METRIC`")),
                );
            }
            continue;
        }
        let catalog = Catalog::of(model);
        let distribution = is_distribution(model, metric);
        match value {
            SampleValue::Distribution(_) if !distribution => out.push(
                Diagnostic::error(
                    Code::BadValue,
                    &at,
                    format!(
                        "`{name}` is one number per check; only a load target's `latency` takes a `distribution`"
                    ),
                )
                .with_help("give a number, or `{series: [V1, V2, …]}` for values that change from check to check"),
            ),
            SampleValue::Number(_) | SampleValue::Series(_) if distribution => out.push(
                Diagnostic::error(
                    Code::BadValue,
                    &at,
                    format!("`{name}` is a distribution of latencies, not one number"),
                )
                .with_help("give its raw latencies: `{distribution: [110ms, 120ms, 135ms]}`"),
            ),
            SampleValue::Series(values) if values.is_empty() => out.push(Diagnostic::error(
                Code::Range,
                join(&at, "series"),
                "`series` needs at least 1 item",
            )),
            SampleValue::Series(values)
                if values.iter().any(|v| {
                    matches!(v, SampleValue::Series(_) | SampleValue::Distribution(_))
                }) =>
            {
                out.push(Diagnostic::error(
                    Code::Type,
                    join(&at, "series"),
                    "a `series` holds numbers, quantities, `no_data` or `error`",
                ));
            }
            _ => {}
        }
        if catalog.unit(metric).is_none() {
            let names = catalog.names();
            let help = did_you_mean(metric, &names, &format!("{probe}."))
                .unwrap_or_else(|| format!("probe `{probe}` produces: {}", names.join(", ")));
            out.push(
                Diagnostic::error(
                    Code::UnknownMetric,
                    at,
                    format!("probe `{probe}` cannot produce `{name}`"),
                )
                .at_key()
                .with_help(help),
            );
        }
    }
}
