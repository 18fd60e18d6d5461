//! The `http` probe: one request; metrics read from the JSON body by JSON Pointer, plus
//! `status` and `latency`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::probe::{Reading, Sample, kind};
use crate::redact::Redactor;

/// The client's method for a plan's method.
pub fn method(method: crate::plan::model::Method) -> reqwest::Method {
    use crate::plan::model::Method;
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// An HTTP request, interpolated, as probes and steps make it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    /// The URL as it may be printed.
    pub shown_url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
    /// `None`: any 2xx.
    pub expect_status: Option<u16>,
    /// Secrets to take out of an answer's body before it is cut and shown.
    pub redact: Arc<Redactor>,
}

/// What a request gave: status, latency and body, or why it failed.
pub struct Response {
    pub status: u16,
    pub latency: Duration,
    pub body: bytes_body::Body,
}

/// Bodies are bounded: a probe reads a few kilobytes of JSON.
pub mod bytes_body {
    pub type Body = Vec<u8>;
    pub const MAX: usize = 4 * 1024 * 1024;
}

impl Request {
    /// Sends the request; a wrong status is an error naming the status and the body's start.
    pub async fn send(&self, client: &reqwest::Client) -> Result<Response, String> {
        let mut request = client
            .request(self.method.clone(), &self.url)
            .timeout(self.timeout);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.body {
            // A JSON body without a declared type is sent as JSON, which APIs expect.
            let typed = self
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            if !typed {
                let kind = if serde_json::from_str::<serde_json::Value>(body).is_ok() {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                };
                request = request.header(reqwest::header::CONTENT_TYPE, kind);
            }
            request = request.body(body.clone());
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| describe(&e, &self.shown_url))?;
        let status = response.status().as_u16();
        let body = read_limited(response)
            .await
            .map_err(|e| describe(&e, &self.shown_url))?;
        let latency = started.elapsed();
        let expected = self
            .expect_status
            .map_or((200..300).contains(&status), |s| s == status);
        if !expected {
            let want = self
                .expect_status
                .map_or_else(|| "2xx".to_owned(), |s| s.to_string());
            return Err(format!(
                "{} answered {status}, expected {want}: {}",
                self.shown_url,
                cut(&self.redact.redact(&String::from_utf8_lossy(&body)), 300)
            ));
        }
        Ok(Response {
            status,
            latency,
            body,
        })
    }
}

/// The first `limit` bytes of a text, on a character boundary.
fn cut(text: &str, limit: usize) -> &str {
    let text = text.trim();
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    read_capped(response).await.map(|(body, _)| body)
}

/// Reads at most [`bytes_body::MAX`] bytes of a body, and whether there was more (the rest is
/// not read: the connection is dropped).
pub async fn read_capped(
    mut response: reqwest::Response,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = bytes_body::MAX.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            return Ok((body, true));
        }
    }
    Ok((body, false))
}

/// The redirect policy of probes and notifications: follow a redirect only within the same
/// origin (scheme, host and port), at most 10; a redirect elsewhere is not followed and its 3xx
/// is the answer, so plan headers (secrets) and bodies never reach another origin.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= 10 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// A request error as one readable line, with the secret-free URL.
pub fn describe(error: &reqwest::Error, shown_url: &str) -> String {
    let what = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        format!("{shown_url}: {what}")
    } else {
        format!("{shown_url}: {what}: {cause}")
    }
}

/// An HTTP probe: the request and the pointers to read.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub name: String,
    pub request: Request,
    /// Metric name → JSON Pointer.
    pub metrics: Vec<(String, String)>,
}

impl HttpProbe {
    /// The probe a plan's `http` describes; its request is bounded by its own `timeout` and
    /// the whole probe's.
    pub fn build(
        spec: &crate::plan::model::HttpProbeSpec,
        setup: &super::Setup<'_>,
    ) -> Result<HttpProbe, String> {
        let timeout = spec
            .timeout
            .map_or(
                super::REQUEST_TIMEOUT,
                crate::plan::units::PlanDuration::as_duration,
            )
            .min(setup.timeout);
        let (url, shown_url) = (setup.fill)(&spec.url)?;
        let headers = spec
            .headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), (setup.fill)(&value.value)?.0)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = spec
            .body
            .as_deref()
            .map(|b| (setup.fill)(b).map(|f| f.0))
            .transpose()?;
        Ok(HttpProbe {
            name: setup.name.to_owned(),
            request: Request {
                method: method(spec.method.unwrap_or_default()),
                url,
                shown_url,
                headers,
                body,
                timeout,
                expect_status: spec.expect_status.map(|s| s.0),
                redact: std::sync::Arc::clone(setup.redact),
            },
            metrics: spec
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
        })
    }

    pub async fn sample(&self, client: &reqwest::Client) -> Sample {
        let response = match self.request.send(client).await {
            Ok(response) => response,
            Err(error) => return Sample::failed(&self.name, error),
        };
        let mut readings = BTreeMap::from([
            (
                "status".to_owned(),
                Reading::Value(f64::from(response.status)),
            ),
            (
                "latency".to_owned(),
                Reading::Value(response.latency.as_secs_f64()),
            ),
        ]);
        if self.metrics.is_empty() {
            return Sample::ok(&self.name, readings);
        }
        let body: serde_json::Value = match serde_json::from_slice(&response.body) {
            Ok(body) => body,
            Err(error) => {
                return Sample::failed(
                    &self.name,
                    format!("{}: the body is not JSON: {error}", self.request.shown_url),
                );
            }
        };
        for (metric, pointer) in &self.metrics {
            let reading = match body.pointer(pointer) {
                None | Some(serde_json::Value::Null) => Reading::NoData,
                Some(serde_json::Value::Number(n)) => {
                    n.as_f64().map_or(Reading::NoData, Reading::from_number)
                }
                Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().map_or_else(
                    |_| Reading::Error(format!("`{pointer}` is the string {s:?}, not a number")),
                    Reading::from_number,
                ),
                Some(other) => {
                    Reading::Error(format!("`{pointer}` is {}, not a number", kind(other)))
                }
            };
            readings.insert(metric.clone(), reading);
        }
        Sample::ok(&self.name, readings)
    }
}

impl super::Probe for HttpProbe {
    fn sample<'a>(
        &'a self,
        client: &'a reqwest::Client,
    ) -> futures_util::future::BoxFuture<'a, Sample> {
        Box::pin(HttpProbe::sample(self, client))
    }

    fn deadline(&self, limit: std::time::Duration) -> Option<std::time::Duration> {
        Some(limit)
    }
}
