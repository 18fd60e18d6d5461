//! The `load` probe: N requests (or a duration) to each target, targets side by side so canary
//! and legacy are measured at the same moment. Latencies go into an HDR histogram (3 significant
//! digits): accurate percentiles, memory flat in the request count.
//!
//! `http://` targets are driven with hyper directly, one HTTP/1.1 connection per worker (the
//! request loop is the probe's hot path); `https://` targets go through reqwest.
//!
//! Pacing is either closed (`delay` between a worker's requests, the seed's
//! `DelayMsBetweenRequests`) or open (`rate` requests/s, each request scheduled ahead; its latency
//! counts from the scheduled send time, correcting coordinated omission as wrk2 does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::plan::model::{LoadProbeSpec, ProbeOverrides};
use crate::probe::{Reading, Sample};

pub use crate::plan::model::DEFAULT_REQUESTS;
/// The default timeout of one request (the seed's `rate_limit_probe` "medium" preset).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest latency the histogram records (longer ones are clamped to it).
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// How much load, and how.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Requests per target; ignored when `duration` is set.
    pub requests: u64,
    pub duration: Option<Duration>,
    /// Closed model: pause between two requests of one worker.
    pub delay: Duration,
    /// Open model: requests per second per target.
    pub rate: Option<f64>,
    pub concurrency: u32,
    pub timeout: Duration,
    pub method: reqwest::Method,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// `None`: any 2xx is a success.
    pub expect_status: Option<u16>,
    /// Requests sent so far, over every target (for a progress bar).
    pub sent: Arc<AtomicU64>,
}

/// A target: a name (`canary`) and its URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    /// The URL as it may be printed.
    pub shown_url: String,
}

/// A load probe, ready to run.
#[derive(Debug, Clone)]
pub struct LoadProbe {
    pub name: String,
    pub targets: Vec<Target>,
    pub spec: LoadSpec,
}

/// What one target gave.
#[derive(Debug, Clone)]
pub struct TargetStats {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of requests that got a response, in microseconds.
    pub latency: Histogram<u64>,
    pub status_codes: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
}

/// The metrics of a target, in seconds and fractions, as `--json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetReport {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub success_rate: Option<f64>,
    pub rps: f64,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub status_codes: BTreeMap<String, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
}

impl TargetStats {
    fn new() -> TargetStats {
        TargetStats {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid bounds"),
            status_codes: BTreeMap::new(),
            errors_by_kind: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &TargetStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.add(&other.latency).expect("same bounds");
        for (code, n) in &other.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for (kind, n) in &other.errors_by_kind {
            *self.errors_by_kind.entry(kind.clone()).or_default() += n;
        }
    }

    pub fn report(&self) -> TargetReport {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let ratio = |n: u64| (self.requests > 0).then(|| n as f64 / self.requests as f64);
        #[expect(
            clippy::cast_precision_loss,
            reason = "latencies in µs are far below 2^52"
        )]
        let seconds = |micros: u64| micros as f64 / 1e6;
        let has = !self.latency.is_empty();
        let quantile = |q: f64| has.then(|| seconds(self.latency.value_at_quantile(q)));
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let rps = if self.elapsed.is_zero() {
            0.0
        } else {
            self.requests as f64 / self.elapsed.as_secs_f64()
        };
        TargetReport {
            requests: self.requests,
            errors: self.errors,
            error_rate: ratio(self.errors),
            success_rate: ratio(self.requests - self.errors),
            rps,
            min: has.then(|| seconds(self.latency.min())),
            avg: has.then(|| self.latency.mean() / 1e6),
            max: has.then(|| seconds(self.latency.max())),
            p50: quantile(0.50),
            p90: quantile(0.90),
            p95: quantile(0.95),
            p99: quantile(0.99),
            status_codes: self
                .status_codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            errors_by_kind: self.errors_by_kind.clone(),
        }
    }
}

impl TargetReport {
    /// The report as readings: `TARGET.requests`, `TARGET.p95`, …
    pub fn readings(&self, target: &str) -> impl Iterator<Item = (String, Reading)> {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let fields = [
            ("requests", Some(self.requests as f64)),
            ("errors", Some(self.errors as f64)),
            ("error_rate", self.error_rate),
            ("success_rate", self.success_rate),
            ("rps", Some(self.rps)),
            ("min", self.min),
            ("avg", self.avg),
            ("max", self.max),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p95", self.p95),
            ("p99", self.p99),
        ];
        let target = target.to_owned();
        fields.into_iter().map(move |(name, value)| {
            (
                format!("{target}.{name}"),
                value.map_or(Reading::NoData, Reading::from_number),
            )
        })
    }
}

impl LoadProbe {
    /// Builds the probe from the plan, with preflight overrides; `fill` interpolates strings and
    /// returns (value, printable).
    pub fn from_plan(
        name: &str,
        model: &LoadProbeSpec,
        overrides: Option<&ProbeOverrides>,
        fill: impl Fn(&str) -> Result<(String, String), String>,
    ) -> Result<LoadProbe, String> {
        let o = overrides.cloned().unwrap_or_default();
        let duration = o
            .duration
            .or(model.duration)
            .map(super::super::plan::units::PlanDuration::as_duration);
        let requests = o.requests.or(model.requests).unwrap_or(DEFAULT_REQUESTS);
        // An override of one pacing replaces the plan's other pacing.
        let (delay, rate) = match (o.delay, o.rate) {
            (Some(d), _) => (d.as_duration(), None),
            (None, Some(r)) => (Duration::ZERO, Some(r)),
            (None, None) => (
                model.delay.map_or(
                    Duration::ZERO,
                    super::super::plan::units::PlanDuration::as_duration,
                ),
                model.rate,
            ),
        };
        let targets = model
            .targets
            .iter()
            .map(|(target, url)| {
                let (url, shown_url) = fill(url)?;
                Ok(Target {
                    name: target.clone(),
                    url,
                    shown_url,
                })
            })
            .collect::<Result<_, String>>()?;
        let headers = model
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), fill(&v.value)?.0)))
            .collect::<Result<_, String>>()?;
        let body = model
            .body
            .as_deref()
            .map(|b| fill(b).map(|f| f.0))
            .transpose()?;
        Ok(LoadProbe {
            name: name.to_owned(),
            targets,
            spec: LoadSpec {
                requests,
                duration,
                delay,
                rate,
                concurrency: o.concurrency.or(model.concurrency).unwrap_or(1).max(1),
                timeout: o.timeout.or(model.timeout).map_or(
                    DEFAULT_TIMEOUT,
                    super::super::plan::units::PlanDuration::as_duration,
                ),
                method: crate::probe::http::method(model.method.unwrap_or_default()),
                headers,
                body,
                expect_status: model.expect_status.map(|s| s.0),
                sent: Arc::default(),
            },
        })
    }

    /// About how long the probe should take, to bound it: the pacing times the requests.
    pub fn expected_duration(&self) -> Duration {
        if let Some(duration) = self.spec.duration {
            return duration + self.spec.timeout;
        }
        let per_worker = self
            .spec
            .requests
            .div_ceil(u64::from(self.spec.concurrency));
        let pacing = match self.spec.rate {
            #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^52")]
            Some(rate) => Duration::from_secs_f64(self.spec.requests as f64 / rate.max(0.001)),
            None => self.spec.delay * u32::try_from(per_worker).unwrap_or(u32::MAX),
        };
        pacing + self.spec.timeout * 2
    }

    /// Runs every target side by side and reports each.
    pub async fn measure(&self) -> Result<Vec<(String, TargetStats)>, String> {
        let spec = Arc::new(self.spec.clone());
        let runs = self.targets.iter().map(|target| {
            let spec = Arc::clone(&spec);
            async move { (target.name.clone(), run_target(target, spec).await) }
        });
        let results: Vec<(String, Result<TargetStats, String>)> = join_all(runs).await;
        results
            .into_iter()
            .map(|(name, stats)| stats.map(|s| (name, s)))
            .collect()
    }

    /// Measures every target; the sample keeps each target's latencies too, so that an
    /// `at: end` gate can pool them over the stage.
    pub async fn sample(&self) -> Sample {
        match self.measure().await {
            Ok(results) => {
                let mut sample = Sample::ok(
                    &self.name,
                    results
                        .iter()
                        .flat_map(|(target, stats)| {
                            stats.report().readings(target).collect::<Vec<_>>()
                        })
                        .collect(),
                );
                sample.histograms = results
                    .iter()
                    .map(|(target, stats)| {
                        (
                            target.clone(),
                            crate::stats::encode_histogram(&stats.latency),
                        )
                    })
                    .collect();
                sample
            }
            Err(error) => Sample::failed(&self.name, error),
        }
    }
}

/// A client for one worker: its own connection, so workers never wait on a shared pool.
fn worker_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("ion-plan/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        // Like the `http://` path: a 3xx is the target's answer, and headers stay with it.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Runs one target's workers as tasks of their own, so they spread over the runtime's threads.
async fn run_target(target: &Target, spec: Arc<LoadSpec>) -> Result<TargetStats, String> {
    let started = Instant::now();
    let deadline = spec.duration.map(|d| started + d);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(spec.concurrency as usize);
    for _ in 0..spec.concurrency {
        let mut connection = Connection::new(target)?;
        let target = target.clone();
        let spec = Arc::clone(&spec);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            worker(&mut connection, &target, &spec, started, deadline, next).await
        }));
    }
    let mut total = TargetStats::new();
    for worker in workers {
        let stats = worker
            .await
            .map_err(|e| format!("a load worker failed: {e}"))?;
        total.merge(&stats);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// One worker: claims request numbers until the count or the duration is reached.
async fn worker(
    connection: &mut Connection,
    target: &Target,
    spec: &LoadSpec,
    started: Instant,
    deadline: Option<Instant>,
    next: Arc<AtomicU64>,
) -> TargetStats {
    let mut stats = TargetStats::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if deadline.is_none() && n >= spec.requests {
            break;
        }
        // In the open model each request has a send time fixed in advance.
        #[expect(
            clippy::cast_precision_loss,
            reason = "request numbers are far below 2^52"
        )]
        let scheduled = spec
            .rate
            .map(|rate| started + Duration::from_secs_f64(n as f64 / rate));
        if let Some(at) = scheduled {
            tokio::time::sleep_until(at).await;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let sent = Instant::now();
        let from = scheduled.unwrap_or(sent);
        stats.requests += 1;
        spec.sent.fetch_add(1, Ordering::Relaxed);
        match connection.send(target, spec).await {
            Ok(status) => {
                let latency = Instant::now().saturating_duration_since(from);
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .clamp(1, MAX_LATENCY_MICROS);
                stats.latency.record(micros).expect("clamped into bounds");
                *stats.status_codes.entry(status).or_default() += 1;
                let ok = spec
                    .expect_status
                    .map_or((200..300).contains(&status), |s| s == status);
                if !ok {
                    stats.errors += 1;
                    *stats
                        .errors_by_kind
                        .entry(format!("status_{status}"))
                        .or_default() += 1;
                }
            }
            Err(kind) => {
                stats.errors += 1;
                *stats.errors_by_kind.entry(kind.to_owned()).or_default() += 1;
            }
        }
        if spec.rate.is_none() && !spec.delay.is_zero() {
            tokio::time::sleep(spec.delay).await;
        }
    }
    stats
}

/// A worker's way to the target: for `http://`, one HTTP/1.1 connection driven with hyper
/// directly (the request path is the hot loop of the probe); for `https://`, a reqwest client.
enum Connection {
    Plain(PlainConnection),
    Tls(reqwest::Client),
}

struct PlainConnection {
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    authority: String,
    /// Path and query.
    path: String,
    sender:
        Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>>,
}

impl Connection {
    fn new(target: &Target) -> Result<Connection, String> {
        let url = url::Url::parse(&target.url).map_err(|e| format!("{}: {e}", target.shown_url))?;
        if url.scheme() != "http" {
            return worker_client().map(Connection::Tls);
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{}: no host", target.shown_url))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Connection::Plain(PlainConnection {
            address: format!(
                "{}:{port}",
                host.trim_start_matches('[').trim_end_matches(']')
            ),
            authority,
            path,
            sender: None,
        }))
    }

    async fn send(&mut self, target: &Target, spec: &LoadSpec) -> Result<u16, &'static str> {
        match self {
            Connection::Tls(client) => send(client, target, spec).await,
            Connection::Plain(plain) => {
                let result = tokio::time::timeout(spec.timeout, plain.send(spec)).await;
                match result {
                    Ok(Ok(status)) => Ok(status),
                    Ok(Err(kind)) => {
                        plain.sender = None;
                        Err(kind)
                    }
                    Err(_) => {
                        // The connection may still carry the late answer: start afresh.
                        plain.sender = None;
                        Err("timeout")
                    }
                }
            }
        }
    }
}

impl PlainConnection {
    async fn send(&mut self, spec: &LoadSpec) -> Result<u16, &'static str> {
        use http_body_util::BodyExt;
        if self
            .sender
            .as_ref()
            .is_none_or(hyper::client::conn::http1::SendRequest::is_closed)
        {
            let stream = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(|_| "connect")?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|_| "connect")?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("connect")?;
        sender.ready().await.map_err(|_| "request")?;
        let mut request = hyper::Request::builder()
            .method(spec.method.as_str())
            .uri(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("ion-plan/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &spec.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let body = spec
            .body
            .clone()
            .map(hyper::body::Bytes::from)
            .unwrap_or_default();
        let request = request
            .body(http_body_util::Full::new(body))
            .map_err(|_| "request")?;
        let response = sender.send_request(request).await.map_err(|_| "request")?;
        let status = response.status().as_u16();
        // Read the body so the connection can be reused, and so latency includes it; a body past
        // the cap drops the connection (the caller forgets the sender on an error).
        let mut body = response.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.map_err(|_| "body")?.data_ref() {
                read += data.len();
                if read > MAX_BODY {
                    return Err(BODY_TOO_LARGE);
                }
            }
        }
        Ok(status)
    }
}

/// The most of a response body a request reads: a health check answers a few bytes, and an
/// endless body must not hold a worker (nor its memory) for ever.
pub const MAX_BODY: usize = crate::probe::http::bytes_body::MAX;
/// The error kind of a request whose body went past [`MAX_BODY`].
pub const BODY_TOO_LARGE: &str = "body_too_large";

/// One request; the error is its kind (`timeout`, `connect`, `body`, `body_too_large`,
/// `request`).
async fn send(
    client: &reqwest::Client,
    target: &Target,
    spec: &LoadSpec,
) -> Result<u16, &'static str> {
    let mut request = client
        .request(spec.method.clone(), &target.url)
        .timeout(spec.timeout);
    for (name, value) in &spec.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &spec.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|e| kind(&e))?;
    let status = response.status().as_u16();
    // Read the body so the connection can be reused, and so latency includes it; a body past the
    // cap is dropped with its connection.
    let mut response = response;
    let mut read = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| if e.is_timeout() { "timeout" } else { "body" })?
    {
        read += chunk.len();
        if read > MAX_BODY {
            return Err(BODY_TOO_LARGE);
        }
    }
    Ok(status)
}

fn kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    }
}

impl super::Probe for LoadProbe {
    fn sample<'a>(
        &'a self,
        _client: &'a reqwest::Client,
    ) -> futures_util::future::BoxFuture<'a, Sample> {
        // Each worker has a client of its own (`worker_client`).
        Box::pin(LoadProbe::sample(self))
    }

    /// The probe's `timeout`, or twice the time its pacing takes if that is longer.
    fn deadline(&self, limit: Duration) -> Option<Duration> {
        Some(limit.max(self.expected_duration() * 2))
    }
}
