//! The plan as typed data: every key of the format, strict (unknown keys are errors).
//!
//! The JSON schema is generated from these types (`ion-plan schema`), so the doc comments here are
//! what an editor shows next to each key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::plan::units::PlanDuration;

/// Names of probes, gates, targets, vars and metrics: usable inside a gate condition.
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";

/// A hand-written schema for a newtype, so its constraints live on the type itself.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// A rollout plan: how traffic moves to a new version, which checks run when, and which
/// thresholds decide GO, NO-GO and rollback.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ion-plan plan")]
pub struct Plan {
    /// Format version of this file. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The plan's name, used in notifications and reports.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// What this rollout is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Plain values usable as `${{ vars.NAME }}`. They appear in logs: put secrets in `env`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub vars: IndexMap<String, VarValue>,
    /// When stages may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Named sources of metrics, run by checks and preflight.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub probes: IndexMap<String, ProbeSpec>,
    /// Named sets of conditions that decide GO, NO-GO and rollback.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub gates: IndexMap<String, Gate>,
    /// Checks that must all pass before any traffic moves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightItem>,
    /// What every stage inherits unless it sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<StageDefaults>,
    /// The stages, in order; traffic must increase from one to the next.
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// Steps run on any NO-GO and on `ion-plan abort`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<Step>,
    /// Where to send events (Slack or JSON webhooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
}

/// A plain value of `vars`: a string, number or boolean, used as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VarValue(pub String);

impl<'de> Deserialize<'de> for VarValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = VarValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarValue, E> {
                Ok(VarValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl JsonSchema for VarValue {
    fn schema_name() -> Cow<'static, str> {
        "VarValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A plain value: string, number or boolean.",
            "type": ["string", "number", "boolean"],
        })
    }
}

/// A header's value: a string, or `{value: STRING, secret: true}` for a value that is a
/// secret (redacted everywhere as `***`, like `env` values and the values of `Authorization`,
/// `Cookie`, `*-Key` and `*-Token` headers, which always are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue {
    pub value: String,
    pub secret: bool,
}

impl Serialize for HeaderValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        if !self.secret {
            return serializer.serialize_str(&self.value);
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("value", &self.value)?;
        map.serialize_entry("secret", &true)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = HeaderValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a map `{value: STRING, secret: true}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue, E> {
                Ok(HeaderValue {
                    value: v.to_owned(),
                    secret: false,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderValue, A::Error> {
                let mut value = None;
                let mut secret = false;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "value" => value = Some(map.next_value::<String>()?),
                        "secret" => secret = map.next_value::<bool>()?,
                        other => {
                            return Err(de::Error::unknown_field(other, &["value", "secret"]));
                        }
                    }
                }
                let value = value.ok_or_else(|| de::Error::missing_field("value"))?;
                Ok(HeaderValue { value, secret })
            }
        }
        deserializer.deserialize_any(HeaderVisitor)
    }
}

impl JsonSchema for HeaderValue {
    fn schema_name() -> Cow<'static, str> {
        "HeaderValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A header's value (may use `${{ env.NAME }}`), or `{value, secret: true}` to redact it everywhere as a secret.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "value": { "type": "string", "description": "The header's value; may use `${{ env.NAME }}`." },
                        "secret": { "type": "boolean", "description": "Redact the value everywhere as `***`." }
                    },
                    "required": ["value"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// When stages may start.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Nothing moves before this instant (RFC 3339, e.g. `2025-10-22T14:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// A stage may start only inside this standard 5-field crontab window, e.g.
    /// `* 13-17 * * Mon-Thu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// IANA time zone of `window`, e.g. `Asia/Seoul`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "UTC", "examples" = ["UTC", "Asia/Seoul"]))]
    pub timezone: Option<String>,
}

/// A named source of metrics. Exactly one of `command`, `http`, `prometheus` or `load`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["command"] },
    { "required": ["http"] },
    { "required": ["prometheus"] },
    { "required": ["load"] },
]))]
#[schemars(rename = "Probe")]
pub struct ProbeSpec {
    /// A program (argv, no shell) that prints a JSON object of numbers; each key is a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<Argv>,
    /// One HTTP request; metrics read from the JSON body by JSON Pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    /// `PromQL` instant queries; each query is a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProbeSpec>,
    /// N requests to each target, side by side; latency and error metrics per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadProbeSpec>,
    /// The longest the whole probe may take; past it the sample is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PlanDuration>,
}

/// The kind of a probe, as decided by which key it sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeKind<'a> {
    Command(&'a Argv),
    Http(&'a HttpProbeSpec),
    Prometheus(&'a PrometheusProbeSpec),
    Load(&'a LoadProbeSpec),
}

impl ProbeSpec {
    /// The probe's kind; `None` when the plan sets none or several (validation reports that).
    pub fn kind(&self) -> Option<ProbeKind<'_>> {
        match (&self.command, &self.http, &self.prometheus, &self.load) {
            (Some(c), None, None, None) => Some(ProbeKind::Command(c)),
            (None, Some(h), None, None) => Some(ProbeKind::Http(h)),
            (None, None, Some(p), None) => Some(ProbeKind::Prometheus(p)),
            (None, None, None, Some(l)) => Some(ProbeKind::Load(l)),
            _ => None,
        }
    }
}

/// A program and its arguments; there is no shell, so no quoting and no injection.
pub type Argv = Vec<ArgvItem>;

/// One element of an argv. `${{ … }}` interpolation fills it without splitting it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ArgvItem(pub String);

string_schema!(ArgvItem, "ArgvItem", { "type": "string", "minLength": 1 });

/// HTTP methods a probe or step may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Read; the default.
    #[default]
    Get,
    /// Like `GET`, headers only.
    Head,
    /// Send `body`.
    Post,
    /// Replace with `body`.
    Put,
    /// Change with `body`.
    Patch,
    /// Remove.
    Delete,
}

/// One HTTP request whose JSON body holds the metrics.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpProbe")]
pub struct HttpProbeSpec {
    /// The URL to request.
    pub url: String,
    /// Default `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<Method>,
    /// Request headers; values may use `${{ env.NAME }}` and are redacted in output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// Further headers whose values are secrets, by name, case-insensitive (beside
    /// `Authorization`, `Cookie`, `*-Key` and `*-Token`, which always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Metric name → JSON Pointer into the response body, e.g. `memory: /memory/used_ratio`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub metrics: IndexMap<String, JsonPointer>,
    /// The status the response must have; default any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<StatusCode>,
    /// Request timeout. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub timeout: Option<PlanDuration>,
}

/// An RFC 6901 JSON Pointer such as `/memory/used_ratio` (empty for the whole body).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct JsonPointer(pub String);

string_schema!(JsonPointer, "JsonPointer", {
    "description": "An RFC 6901 JSON Pointer, e.g. `/memory/used_ratio`.",
    "type": "string",
    "pattern": "^(/([^~/]|~[01])*)*$",
});

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StatusCode(pub u16);

string_schema!(StatusCode, "StatusCode", {
    "description": "An HTTP status code.",
    "type": "integer",
    "minimum": 100,
    "maximum": 599,
});

/// `PromQL` instant queries against a Prometheus HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PrometheusProbe")]
pub struct PrometheusProbeSpec {
    /// Base URL of the Prometheus server, e.g. `http://prometheus:9090`.
    pub url: String,
    /// Metric name → `PromQL` query returning one series (or a scalar).
    #[schemars(length(min = 1), extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub queries: IndexMap<String, String>,
    /// Request headers (e.g. `Authorization`); redacted in output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// Further headers whose values are secrets, by name, case-insensitive (beside
    /// `Authorization`, `Cookie`, `*-Key` and `*-Token`, which always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Timeout of each query. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10s"))]
    pub timeout: Option<PlanDuration>,
}

/// Requests a load probe sends each target in one check when the plan sets none (the seed's
/// `rate_limit_probe` "medium" preset).
pub const DEFAULT_REQUESTS: u64 = 50;

/// Requests to each target, side by side, so canary and legacy are measured at the same moment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LoadProbe")]
pub struct LoadProbeSpec {
    /// Target name → URL, e.g. `canary: https://canary.example/api/health`.
    #[schemars(length(min = 1), extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub targets: IndexMap<String, String>,
    /// Requests per target. Default 50 unless `duration` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub requests: Option<u64>,
    /// Send for this long instead of a fixed count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<PlanDuration>,
    /// Pause between two requests of one worker (closed model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<PlanDuration>,
    /// Requests per second per target (open model, latency corrected for coordinated omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 1_000_000.0))]
    pub rate: Option<f64>,
    /// Workers per target. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    #[schemars(extend("default" = 1))]
    pub concurrency: Option<u32>,
    /// Timeout of each request. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "5s"))]
    pub timeout: Option<PlanDuration>,
    /// Default `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<Method>,
    /// Request headers; redacted in output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// Further headers whose values are secrets, by name, case-insensitive (beside
    /// `Authorization`, `Cookie`, `*-Key` and `*-Token`, which always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The status a response must have to count as a success; default any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<StatusCode>,
}

/// Overrides of a load probe's settings for one use of it (`preflight[].with`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeOverrides {
    /// Requests per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub requests: Option<u64>,
    /// Send for this long instead of a fixed count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<PlanDuration>,
    /// Pause between two requests of one worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<PlanDuration>,
    /// Requests per second per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 1_000_000.0))]
    pub rate: Option<f64>,
    /// Workers per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub concurrency: Option<u32>,
    /// Timeout of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PlanDuration>,
}

/// When a gate is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateAt {
    /// Once, when a stage's bake ends, on the newest sample of each metric.
    End,
    /// After every check; streaks (`consecutive`, `within`) count across checks.
    EveryCheck,
}

/// What a failed gate, an error streak or an approval timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// Run the rollback steps; the run ends `rolled_back`.
    Rollback,
    /// Wait for `ion-plan approve` or `ion-plan abort`; guards keep running.
    Pause,
    /// Record it, notify, and go on.
    Warn,
}

/// A named set of conditions. It needs `require`, `compare` or both, each non-empty.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    { "required": ["require"], "properties": { "require": { "minItems": 1 } } },
    { "required": ["compare"], "properties": { "compare": { "minItems": 1 } } },
]))]
pub struct Gate {
    /// `end`: once when the bake ends; `every_check`: after every check.
    pub at: GateAt,
    /// Conditions that must all hold. A gate has `require`, `compare`, or both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Condition>,
    /// The canary against the version it replaces, statistically (`docs/plan.md`, "Compare"):
    /// each entry is judged like a condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<Compare>,
    /// What a failure does. Default `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "rollback"))]
    pub on_fail: Option<Action>,
    /// What errors in a row (failed probes, no data) do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// What an `at: end` verdict of *insufficient* (nothing violated, some condition with
    /// `confidence` short of evidence) does: extend the bake, then act. Default
    /// `{extend: 0s, then: pause}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insufficient: Option<Insufficient>,
}

impl Gate {
    /// The action a failure takes.
    pub fn on_fail(&self) -> Action {
        self.on_fail.unwrap_or(Action::Rollback)
    }

    /// What an insufficient verdict does, defaults filled in.
    pub fn on_insufficient(&self) -> Insufficient {
        self.insufficient.unwrap_or_default()
    }
}

/// One `compare:` entry: is the canary worse than the baseline, beyond a tolerance, at a
/// confidence? Judged on the Mann–Whitney interval of the shift canary − baseline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The canary's metric: a scalar metric (`canary.error_rate`: its values at the stage's
    /// checks) or a load target's latencies (`load.canary.latency`: a distribution).
    #[schemars(length(min = 1))]
    pub canary: String,
    /// The baseline's metric, of the same kind and unit (`load.legacy.latency`).
    #[schemars(length(min = 1))]
    pub baseline: String,
    /// Which shift is worse: `increase` (default), `decrease` or `either`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "increase"))]
    pub direction: Option<Direction>,
    /// A shift within this fraction of the baseline's median is no change (`10%`). Default 0%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "0%", "examples" = ["10%"]))]
    pub tolerance: Option<Tolerance>,
    /// Fewer values on either side are *insufficient*. Default 5 for a series, 20 for a
    /// distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1_000_000))]
    pub min_points: Option<u32>,
    /// The interval's two-sided confidence. Default 98%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "98%", "examples" = ["95%"]))]
    pub confidence: Option<Confidence>,
}

impl Compare {
    /// The default confidence of a comparison (Kayenta's).
    pub const CONFIDENCE: f64 = 0.98;
    /// The default `min_points` of a series and of a distribution.
    pub const MIN_POINTS_SERIES: u32 = 5;
    pub const MIN_POINTS_DISTRIBUTION: u32 = 20;

    pub fn direction(&self) -> Direction {
        self.direction.unwrap_or_default()
    }

    /// The tolerance as a fraction (0.1).
    pub fn tolerance(&self) -> f64 {
        self.tolerance.map_or(0.0, |t| t.0)
    }

    /// The confidence as a fraction (0.98).
    pub fn confidence(&self) -> f64 {
        self.confidence
            .map_or(Self::CONFIDENCE, Confidence::fraction)
    }

    /// "`load.canary.latency` vs `load.legacy.latency`": how reports name the entry.
    pub fn label(&self) -> String {
        format!("{} vs {}", self.canary, self.baseline)
    }
}

/// Which shift of the canary against the baseline is worse.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema, strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Direction {
    /// Higher is worse (latency, error rate).
    #[default]
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any shift beyond the tolerance is a change.
    Either,
}

/// A tolerance, as a fraction: `10%` is 0.1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance(pub f64);

/// `tolerance` as the schema checks it: a percentage, at most 1000%.
pub const TOLERANCE_PATTERN: &str = r"^([0-9]{1,3}|1000)(\.[0-9]{1,4})?%$";

impl Serialize for Tolerance {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}%", (self.0 * 1e6).round() / 1e4))
    }
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToleranceVisitor;
        impl Visitor<'_> for ToleranceVisitor {
            type Value = Tolerance;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage from 0% to 1000%, e.g. `10%`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tolerance, E> {
                match crate::plan::units::parse_quantity(v) {
                    Some((fraction, crate::plan::units::LiteralUnit::Percent)) => {
                        self.visit_f64(fraction)
                    }
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tolerance, E> {
                if (0.0..=10.0).contains(&v) {
                    Ok(Tolerance(v))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tolerance, E> {
                if v == 0 {
                    Ok(Tolerance(0.0))
                } else {
                    Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                }
            }
        }
        deserializer.deserialize_any(ToleranceVisitor)
    }
}

impl JsonSchema for Tolerance {
    fn schema_name() -> Cow<'static, str> {
        "Tolerance".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A tolerance from 0% to 1000%, e.g. `10%` (or the fraction, 0.1).",
            "examples": ["10%"],
            "oneOf": [
                { "type": "string", "pattern": TOLERANCE_PATTERN },
                { "type": "number", "minimum": 0, "maximum": 10 },
            ],
        })
    }
}

/// An end gate short of evidence: checks go on at the stage's cadence for up to `extend`, the
/// gate judged after each; the stage goes on the first time it passes, takes `on_fail` the
/// first time it is violated, and `then` when the extension runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Insufficient {
    /// How much longer the bake may run to gather evidence. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "0s", "examples" = ["10m"]))]
    pub extend: Option<PlanDuration>,
    /// What happens when the extension runs out: `rollback`, `pause` (a person decides) or
    /// `warn` (go on, recorded). Default `pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "pause"))]
    pub then: Option<Action>,
}

impl Insufficient {
    pub fn extend(self) -> std::time::Duration {
        self.extend
            .map_or(std::time::Duration::ZERO, PlanDuration::as_duration)
    }

    pub fn then(self) -> Action {
        self.then.unwrap_or(Action::Pause)
    }
}

/// Errors in a row that make a gate act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnError {
    /// Errors in a row on one gate that trigger `then`. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(extend("default" = 3))]
    pub consecutive: Option<u32>,
    /// The action. Default: the gate's `on_fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Action>,
}

/// A gate condition: `METRIC OP VALUE` or `METRIC OP METRIC [* FACTOR]` as a string, or a map with
/// `check` and a streak rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `load.canary.p95 <= 200ms`: fails on one violation.
    Plain(String),
    /// `{check: …, consecutive: 3}` and the like.
    Detailed(ConditionSpec),
}

impl Condition {
    /// The expression text.
    pub fn check(&self) -> &str {
        match self {
            Condition::Plain(text) => text,
            Condition::Detailed(spec) => &spec.check,
        }
    }

    /// The streak rule and no-data policy, with defaults filled in.
    pub fn spec(&self) -> ConditionSpec {
        match self {
            Condition::Plain(text) => ConditionSpec {
                check: text.clone(),
                consecutive: None,
                within: None,
                no_data: None,
                confidence: None,
                of: None,
            },
            Condition::Detailed(spec) => spec.clone(),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Condition::Plain(text) => serializer.serialize_str(text),
            Condition::Detailed(spec) => spec.serialize(serializer),
        }
    }
}

// A string or a map, told apart by the YAML node itself: no `untagged` guessing, and a bad map
// gets the map's own error.
impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConditionVisitor;
        impl<'de> Visitor<'de> for ConditionVisitor {
            type Value = Condition;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition string or a map with `check`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Condition, E> {
                Ok(Condition::Plain(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Condition, A::Error> {
                ConditionSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Condition::Detailed)
            }
        }
        deserializer.deserialize_any(ConditionVisitor)
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> Cow<'static, str> {
        "Condition".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // yaml-language-server names a `oneOf` branch by its title in "Expected …" (the `$ref`'s
        // name, `ConditionSpec`, otherwise).
        let mut spec = generator.subschema_for::<ConditionSpec>();
        spec.insert("title".into(), "a mapping with `check:`".into());
        json_schema!({
            "description": "`METRIC OP VALUE` or `METRIC OP METRIC [* FACTOR]` (OP: < <= > >= == !=), e.g. `load.canary.p95 <= 200ms`; or a map with `check` and `consecutive` or `within`, and `confidence` to judge on an interval instead of the point value.",
            "examples": ["load.canary.error_rate <= 1%", "load.canary.p95 <= 200ms"],
            "oneOf": [
                { "type": "string", "minLength": 1 },
                spec,
            ],
        })
    }
}

/// A condition with a streak rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// The expression, e.g. `canary.error_rate <= 1%`.
    #[schemars(length(min = 1))]
    #[schemars(extend("examples" = ["load.canary.error_rate <= 0.5%", "load.canary.p95 <= 200ms"]))]
    pub check: String,
    /// Fails on the N-th violation in a row; a pass resets the streak, an error leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(extend("default" = 1, "examples" = [3]))]
    pub consecutive: Option<u32>,
    /// Fails when M of the last N evaluated checks were violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Within>,
    /// What a missing value counts as. Default `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "error"))]
    pub no_data: Option<NoData>,
    /// Judge on a two-sided interval at this confidence (50% to 99.99%) instead of the point
    /// value: `<=` passes when the whole interval is at most the threshold, is violated when all
    /// of it is above, and is otherwise *insufficient* (more data needed). Ratios with a count
    /// take the Wilson score interval, load percentiles the order-statistic interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// The count a ratio metric was measured over (`PROBE.NAME`), e.g. a query of
    /// `sum(increase(requests_total[5m]))`: what gives a ratio from a query its interval. The
    /// load probe's `error_rate` and `success_rate` need none (their count is `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub of: Option<String>,
}

/// A confidence level, as a fraction: `95%` is 0.95.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence(pub f64);

/// `confidence` as the schema checks it: a percentage from 50% to 99.99%.
pub const CONFIDENCE_PATTERN: &str = r"^(5[0-9]|[6-9][0-9])(\.[0-9]{1,2})?%$";

impl Confidence {
    /// The lowest and highest confidence a condition may ask for.
    pub const MIN: f64 = crate::stats::MIN_CONFIDENCE;
    pub const MAX: f64 = crate::stats::MAX_CONFIDENCE;

    pub fn fraction(self) -> f64 {
        self.0
    }

    /// A fraction in range, or `None`; a hair of rounding from a percentage is forgiven.
    pub fn new(fraction: f64) -> Option<Confidence> {
        (Self::MIN - 1e-12..=Self::MAX + 1e-12)
            .contains(&fraction)
            .then(|| Confidence(fraction.clamp(Self::MIN, Self::MAX)))
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Four decimals of a percent are all a plan can write.
        write!(f, "{}%", (self.0 * 1e6).round() / 1e4)
    }
}

impl Serialize for Confidence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConfidenceVisitor;
        impl Visitor<'_> for ConfidenceVisitor {
            type Value = Confidence;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage from 50% to 99.99%, e.g. `95%`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Confidence, E> {
                match crate::plan::units::parse_quantity(v) {
                    Some((fraction, crate::plan::units::LiteralUnit::Percent)) => {
                        self.visit_f64(fraction)
                    }
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Confidence, E> {
                Confidence::new(v).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Confidence, E> {
                Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Confidence, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(ConfidenceVisitor)
    }
}

impl JsonSchema for Confidence {
    fn schema_name() -> Cow<'static, str> {
        "Confidence".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A confidence level from 50% to 99.99%, e.g. `95%` (or the fraction, 0.95).",
            "examples": ["95%"],
            "oneOf": [
                { "type": "string", "pattern": CONFIDENCE_PATTERN },
                { "type": "number", "minimum": Confidence::MIN, "maximum": Confidence::MAX },
            ],
        })
    }
}

/// M violations within the last N checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Within {
    /// M: violations that fail the condition.
    #[schemars(range(min = 1, max = 1000))]
    pub violations: u32,
    /// N: the window, in evaluated checks.
    #[schemars(range(min = 1, max = 1000))]
    pub checks: u32,
}

/// How a condition treats a metric with no data (empty vector, NaN, missing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// An error: neither a pass nor a violation; counts toward `on_error`.
    #[default]
    Error,
    /// Counts as a pass.
    Pass,
    /// Counts as a violation.
    Fail,
}

/// A check, run, or HTTP call that must pass before any traffic moves. Exactly one of `probe`,
/// `run` or `http`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["probe"] },
    { "required": ["run"] },
    { "required": ["http"] },
], "dependentRequired" = { "env": ["run"] }))]
pub struct PreflightItem {
    /// What this check is, for people.
    #[schemars(length(min = 1))]
    pub name: String,
    /// A probe to run; it must succeed, and `require` must hold on its sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// Overrides of the probe's load settings for this check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<ProbeOverrides>,
    /// Conditions on the probe's metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Condition>,
    /// A program to run (argv); it must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub run: Option<Argv>,
    /// An HTTP call that must answer with the expected status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStep>,
    /// Environment variables for `run`; values may use `${{ env.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The longest it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PlanDuration>,
}

/// An action that changes the world: a program or an HTTP call. Exactly one of `run` or `http`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["run"] },
    { "required": ["http"] },
]))]
pub struct Step {
    /// A label for logs and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A program and its arguments (no shell). Relative paths are relative to the plan's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub run: Option<Argv>,
    /// An HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStep>,
    /// Environment variables for `run`; values may use `${{ env.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The longest one attempt may take. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10m"))]
    pub timeout: Option<PlanDuration>,
    /// Attempts after the first failure. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    #[schemars(extend("default" = 0))]
    pub retries: Option<u32>,
    /// Safe to run again after a crash interrupted it. Default false: the runner asks instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub idempotent: bool,
}

/// An HTTP request made by a step.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    /// Default `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<Method>,
    /// The URL to request.
    pub url: String,
    /// Request headers; redacted in output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// Further headers whose values are secrets, by name, case-insensitive (beside
    /// `Authorization`, `Cookie`, `*-Key` and `*-Token`, which always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The status the response must have; default any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<StatusCode>,
}

/// When checks run during a stage's bake.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// A check every this long, from the stage's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("examples" = ["30s", "1m"]))]
    pub every: Option<PlanDuration>,
    /// Checks at these offsets from the stage's start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at: Vec<PlanDuration>,
    /// The probes each check runs, concurrently.
    #[schemars(length(min = 1))]
    pub probes: Vec<String>,
}

/// What stages inherit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDefaults {
    /// Steps that move traffic to the stage's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// The checks of each stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// Gates, by name, that judge each stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<String>>,
}

/// A person's sign-off at the end of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// How long to wait; none means wait as long as it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("examples" = ["1h"]))]
    pub timeout: Option<PlanDuration>,
    /// What happens when nobody answers in time. Default `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "rollback"))]
    pub on_timeout: Option<Action>,
}

/// One step of the rollout: a traffic share held for a bake time.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Unique name, e.g. `canary-5`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
    #[schemars(extend("examples" = ["canary-5"]))]
    pub name: String,
    /// Percent of traffic on the new version, 0 to 100.
    #[schemars(range(min = 0, max = 100))]
    #[schemars(extend("examples" = [5, 50, 100]))]
    pub traffic: f64,
    /// How long the stage holds before its `end` gates decide.
    #[schemars(extend("examples" = ["10m", "1h"]))]
    pub bake: PlanDuration,
    /// Steps run when the stage starts; default `defaults.steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Checks during the bake; default `defaults.checks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// Gates by name; default `defaults.gates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<String>>,
    /// A person must approve before the stage ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// End the bake early: from `after` on, the `at: end` gates are judged after every check
    /// and the bake ends the first time all of them pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early: Option<Early>,
}

/// When a stage's bake may end before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Early {
    /// The least time the stage bakes; from then on, its end gates are judged after every check.
    pub after: PlanDuration,
}

/// A webhook that receives events.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Where to POST; usually `${{ env.SLACK_WEBHOOK_URL }}`.
    pub url: String,
    /// `slack` or `json`. Default `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "json"))]
    pub format: Option<NotifyFormat>,
    /// Which events to send; default all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<EventKind>,
    /// Request headers; redacted in output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// Further headers whose values are secrets, by name, case-insensitive (beside
    /// `Authorization`, `Cookie`, `*-Key` and `*-Token`, which always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
}

/// The body format of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// A Slack incoming-webhook message.
    Slack,
    /// The event as JSON.
    Json,
}

/// Events a notification can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The run began.
    RunStarted,
    /// A preflight check failed; no traffic moved.
    PreflightFailed,
    /// A stage began.
    StageStarted,
    /// A stage ended and the run goes on.
    StageCompleted,
    /// A gate failed.
    GateFailed,
    /// A gate with `warn` as its action failed; the run goes on.
    GateWarned,
    /// A stage waits for `ion-plan approve`.
    ApprovalRequested,
    /// Someone approved.
    Approved,
    /// The run paused for a person to decide.
    Paused,
    /// The run rolled back.
    RolledBack,
    /// Someone aborted the run.
    Aborted,
    /// The run completed.
    Completed,
    /// The run failed.
    Failed,
}

impl Stage {
    /// The stage's steps, falling back to the plan's defaults.
    pub fn effective_steps<'a>(&'a self, defaults: Option<&'a StageDefaults>) -> &'a [Step] {
        self.steps
            .as_deref()
            .or_else(|| defaults.and_then(|d| d.steps.as_deref()))
            .unwrap_or_default()
    }

    /// The stage's checks, falling back to the plan's defaults.
    pub fn effective_checks<'a>(
        &'a self,
        defaults: Option<&'a StageDefaults>,
    ) -> Option<&'a Checks> {
        self.checks
            .as_ref()
            .or_else(|| defaults.and_then(|d| d.checks.as_ref()))
    }

    /// The stage's gate names, falling back to the plan's defaults.
    pub fn effective_gates<'a>(&'a self, defaults: Option<&'a StageDefaults>) -> &'a [String] {
        self.gates
            .as_deref()
            .or_else(|| defaults.and_then(|d| d.gates.as_deref()))
            .unwrap_or_default()
    }
}
