//! The `prometheus` probe: `PromQL` instant queries through the HTTP API (`/api/v1/query`).
//! An empty vector or NaN is no data; several series is an error that names them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::probe::http::{bytes_body, describe, read_capped};
use crate::probe::{Reading, Sample, tail};
use crate::redact::Redactor;

#[derive(Debug, Clone)]
pub struct PrometheusProbe {
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    pub shown_url: String,
    pub headers: Vec<(String, String)>,
    /// Metric name → query.
    pub queries: Vec<(String, String)>,
    pub timeout: Duration,
    /// Secrets to take out of answers before they are cut and shown.
    pub redact: Arc<Redactor>,
}

impl PrometheusProbe {
    /// The probe a plan's `prometheus` describes; each query is bounded by the probe's
    /// `timeout` and the whole probe's.
    pub fn build(
        spec: &crate::plan::model::PrometheusProbeSpec,
        setup: &super::Setup<'_>,
    ) -> Result<PrometheusProbe, String> {
        let (url, shown_url) = (setup.fill)(&spec.url)?;
        Ok(PrometheusProbe {
            name: setup.name.to_owned(),
            url,
            shown_url,
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), (setup.fill)(&v.value)?.0)))
                .collect::<Result<_, String>>()?,
            queries: spec
                .queries
                .iter()
                .map(|(k, q)| Ok((k.clone(), (setup.fill)(q)?.0)))
                .collect::<Result<_, String>>()?,
            timeout: spec
                .timeout
                .map_or(
                    super::REQUEST_TIMEOUT,
                    crate::plan::units::PlanDuration::as_duration,
                )
                .min(setup.timeout),
            redact: Arc::clone(setup.redact),
        })
    }

    pub async fn sample(&self, client: &reqwest::Client) -> Sample {
        let readings = join_all(self.queries.iter().map(|(metric, query)| async move {
            (metric.clone(), self.query(client, query).await)
        }))
        .await;
        // When every query failed the same way (Prometheus is down), the probe failed.
        if let Some(Reading::Error(first)) = readings.first().map(|(_, r)| r)
            && readings
                .iter()
                .all(|(_, r)| r == &Reading::Error(first.clone()))
        {
            return Sample::failed(&self.name, first.clone());
        }
        Sample::ok(&self.name, readings.into_iter().collect::<BTreeMap<_, _>>())
    }

    async fn query(&self, client: &reqwest::Client, query: &str) -> Reading {
        let endpoint = format!("{}/api/v1/query", self.url.trim_end_matches('/'));
        let shown = format!("{}/api/v1/query", self.shown_url.trim_end_matches('/'));
        let mut url = match url::Url::parse(&endpoint) {
            Ok(url) => url,
            Err(error) => return Reading::Error(format!("{shown}: {error}")),
        };
        url.query_pairs_mut().append_pair("query", query);
        let mut request = client.get(url).timeout(self.timeout);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Reading::Error(describe(&error, &shown)),
        };
        let status = response.status();
        let body = match read_capped(response).await {
            Ok((_, true)) => {
                return Reading::Error(format!(
                    "{shown}: response over {} MiB",
                    bytes_body::MAX >> 20
                ));
            }
            Ok((body, false)) => String::from_utf8_lossy(&body).into_owned(),
            Err(error) => return Reading::Error(describe(&error, &shown)),
        };
        match serde_json::from_str::<Value>(&body) {
            Ok(value) => match parse_response(&value) {
                Reading::Error(error) => Reading::Error(self.redact.redact(&error)),
                reading => reading,
            },
            Err(_) => Reading::Error(format!(
                "{shown} answered {status}: {}",
                tail(&self.redact.redact(&body), 200)
            )),
        }
    }
}

/// Reads an instant-query response: a vector of at most one series, or a scalar.
pub fn parse_response(value: &Value) -> Reading {
    if value["status"] != "success" {
        let error = value["error"].as_str().unwrap_or("query failed");
        return Reading::Error(format!("prometheus: {error}"));
    }
    let data = &value["data"];
    let sample_value = |v: &Value| -> Reading {
        match v.get(1).and_then(Value::as_str).map(str::parse::<f64>) {
            Some(Ok(number)) => Reading::from_number(number),
            _ => Reading::Error(format!("unexpected sample value {v}")),
        }
    };
    match data["resultType"].as_str() {
        Some("scalar") => sample_value(&data["result"]),
        Some("vector") => {
            let series = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            match series {
                [] => Reading::NoData,
                [one] => sample_value(&one["value"]),
                many => Reading::Error(format!(
                    "the query returned {} series, expected one: {}",
                    many.len(),
                    many.iter()
                        .take(5)
                        .map(|s| s["metric"].to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        other => Reading::Error(format!(
            "unsupported result type {}; use an instant vector or a scalar",
            other.unwrap_or("none")
        )),
    }
}

impl super::Probe for PrometheusProbe {
    fn sample<'a>(
        &'a self,
        client: &'a reqwest::Client,
    ) -> futures_util::future::BoxFuture<'a, Sample> {
        Box::pin(PrometheusProbe::sample(self, client))
    }

    fn deadline(&self, limit: Duration) -> Option<Duration> {
        Some(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_scalars_nan_and_several_series() {
        let one = json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.0,"0.25"]}]}});
        assert_eq!(parse_response(&one), Reading::Value(0.25));
        let empty = json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert_eq!(parse_response(&empty), Reading::NoData);
        let nan = json!({"status":"success","data":{"resultType":"scalar","result":[1.0,"NaN"]}});
        assert_eq!(parse_response(&nan), Reading::NoData);
        let two = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1.0,"1"]},{"metric":{"pod":"b"},"value":[1.0,"2"]}]}});
        match parse_response(&two) {
            Reading::Error(e) => {
                assert!(e.contains("2 series") && e.contains("\"pod\":\"b\""), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let bad = json!({"status":"error","errorType":"bad_data","error":"parse error at char 5"});
        assert_eq!(
            parse_response(&bad),
            Reading::Error("prometheus: parse error at char 5".into())
        );
    }
}
