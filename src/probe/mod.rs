//! Probes: where every number a gate judges comes from. One trait ([`Probe`]), one file per
//! kind, each building itself from its spec in the plan ([`build`]).
//!
//! A probe's result is a [`Sample`]: a number per metric, no data, or an error. A failing probe
//! is data for the gates (an error sample), never a crash of the run.

pub mod command;
pub mod http;
pub mod load;
pub mod prometheus;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::plan::model::{ProbeKind, ProbeOverrides, ProbeSpec};
use crate::plan::units::PlanDuration;
use crate::redact::Redactor;

/// The default timeout of a probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_mins(1);
/// The default timeout of one HTTP request of a probe.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A probe, built for one check: its `${…}` filled in, ready to sample.
pub trait Probe: Send + Sync {
    /// Takes one sample. `client` is the run's HTTP client (same-origin redirects only),
    /// shared so that connections are reused between checks.
    fn sample<'a>(&'a self, client: &'a reqwest::Client) -> BoxFuture<'a, Sample>;

    /// The longest the sample may take before it reads as a timeout, given the probe's
    /// `limit` (its `timeout`); `None` when the probe bounds itself (a program is ended with
    /// its process group).
    fn deadline(&self, limit: Duration) -> Option<Duration>;
}

/// Fills `${…}` into a text: the value, and the form that may be printed.
pub type Fill<'a> = dyn Fn(&str) -> Result<(String, String), String> + Sync + 'a;

/// What a probe takes from the run to build itself.
pub struct Setup<'a> {
    pub name: &'a str,
    /// Interpolates `${…}`: the value, and the form that may be printed (secrets as `***`).
    pub fill: &'a Fill<'a>,
    /// The plan's folder: where programs run and `./relative` paths point.
    pub dir: &'a Path,
    /// The run's secrets, to take out of what a probe shows.
    pub redact: &'a Arc<Redactor>,
    /// The whole probe's limit (`timeout`, else [`PROBE_TIMEOUT`]).
    pub timeout: Duration,
    /// Preflight's `with`.
    pub overrides: Option<&'a ProbeOverrides>,
}

/// Builds the probe that `spec` describes.
pub fn build(spec: &ProbeSpec, setup: &Setup<'_>) -> Result<Box<dyn Probe>, String> {
    Ok(match spec.kind() {
        Some(ProbeKind::Command(argv)) => Box::new(command::CommandProbe::build(argv, setup)?),
        Some(ProbeKind::Http(http)) => Box::new(http::HttpProbe::build(http, setup)?),
        Some(ProbeKind::Prometheus(prometheus)) => {
            Box::new(prometheus::PrometheusProbe::build(prometheus, setup)?)
        }
        Some(ProbeKind::Load(load)) => Box::new(load::LoadProbe::from_plan(
            setup.name,
            load,
            setup.overrides,
            |text| (setup.fill)(text),
        )?),
        None => return Err(format!("probe `{}` sets no kind", setup.name)),
    })
}

/// The limit of a probe: its `timeout`, else [`PROBE_TIMEOUT`].
pub fn limit(spec: &ProbeSpec) -> Duration {
    spec.timeout
        .map_or(PROBE_TIMEOUT, PlanDuration::as_duration)
}

/// Takes a sample from `probe`, bounded by its deadline.
pub async fn sample(
    name: &str,
    probe: &dyn Probe,
    limit: Duration,
    client: &reqwest::Client,
) -> Sample {
    let Some(limit) = probe.deadline(limit) else {
        return probe.sample(client).await;
    };
    tokio::time::timeout(limit, probe.sample(client))
        .await
        .unwrap_or_else(|_| {
            Sample::failed(
                name,
                format!(
                    "probe timed out after {}",
                    crate::plan::units::format_duration(limit)
                ),
            )
        })
}

/// One metric's reading in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// A finite number, in base units (seconds, fractions).
    Value(f64),
    /// No data: an empty Prometheus vector, NaN, a missing key.
    NoData,
    /// The metric could not be read.
    Error(String),
}

impl Reading {
    /// A number as a reading: NaN and infinities are no data.
    pub fn from_number(value: f64) -> Reading {
        if value.is_finite() {
            Reading::Value(value)
        } else {
            Reading::NoData
        }
    }
}

/// What one probe returned at one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub probe: String,
    /// Metric (within the probe, e.g. `canary.p95`) → reading.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Reading>,
    /// Set when the whole probe failed; every metric then reads as this error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A load probe's latencies, by target (`canary`): microseconds, as `HdrHistogram` V2 with
    /// DEFLATE in base64 (`stats::encode_histogram`). An `at: end` gate pools them over the
    /// stage, across a resume.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

impl Sample {
    pub fn ok(probe: &str, metrics: BTreeMap<String, Reading>) -> Sample {
        Sample {
            probe: probe.to_owned(),
            metrics,
            error: None,
            histograms: BTreeMap::new(),
        }
    }

    pub fn failed(probe: &str, error: impl Into<String>) -> Sample {
        Sample {
            probe: probe.to_owned(),
            metrics: BTreeMap::new(),
            error: Some(error.into()),
            histograms: BTreeMap::new(),
        }
    }

    /// The reading of a metric within this probe; a missing metric is no data.
    pub fn reading(&self, metric: &str) -> Reading {
        match &self.error {
            Some(error) => Reading::Error(error.clone()),
            None => self.metrics.get(metric).cloned().unwrap_or(Reading::NoData),
        }
    }
}

/// Keeps only the last `limit` bytes of a text, on a character boundary (stderr tails).
pub fn tail(text: &str, limit: usize) -> &str {
    let text = text.trim_end();
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Reads a JSON object of numbers into readings; `null`/NaN are no data, a non-number is an
/// error for that key.
pub fn readings_from_json(value: &serde_json::Value) -> Result<BTreeMap<String, Reading>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected a JSON object of numbers, got {}", kind(value)))?;
    Ok(object
        .iter()
        .map(|(key, value)| {
            let reading = match value {
                serde_json::Value::Number(n) => {
                    n.as_f64().map_or(Reading::NoData, Reading::from_number)
                }
                serde_json::Value::Null => Reading::NoData,
                serde_json::Value::Bool(b) => Reading::Value(f64::from(u8::from(*b))),
                other => Reading::Error(format!("`{key}` is {}, not a number", kind(other))),
            };
            (key.clone(), reading)
        })
        .collect())
}

/// A JSON value's kind, for messages.
pub fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_probe_reads_as_an_error_everywhere() {
        let sample = Sample::failed("canary", "connection refused");
        assert_eq!(
            sample.reading("memory"),
            Reading::Error("connection refused".into())
        );
        let sample = Sample::ok(
            "canary",
            BTreeMap::from([("memory".into(), Reading::Value(0.5))]),
        );
        assert_eq!(sample.reading("memory"), Reading::Value(0.5));
        assert_eq!(sample.reading("cpu"), Reading::NoData);
    }

    #[test]
    fn json_numbers_become_readings() {
        let value = serde_json::json!({"a": 1.5, "b": null, "c": "x", "d": true});
        let readings = readings_from_json(&value).unwrap();
        assert_eq!(readings["a"], Reading::Value(1.5));
        assert_eq!(readings["b"], Reading::NoData);
        assert!(matches!(readings["c"], Reading::Error(_)));
        assert_eq!(readings["d"], Reading::Value(1.0));
        assert!(readings_from_json(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("héllo wörld\n", 5), "wörld".get(1..).unwrap());
        assert_eq!(tail("short", 100), "short");
    }
}
