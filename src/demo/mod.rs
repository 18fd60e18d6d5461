//! The bundled demo: a legacy and a canary backend and a router that splits traffic between them
//! by weight, all on 127.0.0.1, for `ion-plan demo` and the end-to-end tests behind nginx.
//!
//! Each backend serves `/api/*` (the service itself: `ok from legacy`, with an
//! `x-demo-backend` header naming who answered), `/stats.json` (JSON the `http` probe reads),
//! `/metrics` (Prometheus text: request counters by status, a latency histogram, memory and CPU
//! gauges) and `/admin/knobs` (`GET`, or `PUT {"error_rate":0.1,"latency_ms":40}` to change how
//! it behaves; knobs not named keep their value).
//!
//! A bad canary degrades once it takes traffic, like a real regression: the first request that
//! reaches it through a proxy (it carries `X-Forwarded-For`, which the demo router sets and
//! nginx sets with `proxy_set_header`) switches it to its degraded knobs. Probes that call it
//! directly, as a preflight does, see it healthy until then.
//!
//! The router forwards every other request to a backend by weight, set through its admin API
//! (`PUT /weights {"canary": N}`), spreading the canary's share evenly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long `/stats.json` looks back for its error rate.
const STATS_WINDOW: Duration = Duration::from_secs(5);

/// Upper bounds of the latency histogram in `/metrics`, in seconds.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// How a backend behaves. Requests fail evenly spread at `error_rate` (0.125 fails every 8th).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Knobs {
    /// The share of `/api/*` requests that fail with 500, 0..=1.
    pub error_rate: f64,
    /// How long each `/api/*` request takes, in milliseconds.
    pub latency_ms: u64,
    /// The memory gauge it reports, 0..=1.
    pub memory: f64,
    /// The CPU gauge it reports, 0..=1.
    pub cpu: f64,
}

/// A change of some knobs (`PUT /admin/knobs`): the ones not named keep their value.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobsChange {
    pub error_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub memory: Option<f64>,
    pub cpu: Option<f64>,
}

impl KnobsChange {
    fn apply(self, knobs: Knobs) -> Knobs {
        Knobs {
            error_rate: self.error_rate.unwrap_or(knobs.error_rate),
            latency_ms: self.latency_ms.unwrap_or(knobs.latency_ms),
            memory: self.memory.unwrap_or(knobs.memory),
            cpu: self.cpu.unwrap_or(knobs.cpu),
        }
    }
}

impl Knobs {
    /// A healthy backend: no errors, 4 ms, memory 48%, CPU 31%.
    pub const HEALTHY: Knobs = Knobs {
        error_rate: 0.0,
        latency_ms: 4,
        memory: 0.48,
        cpu: 0.31,
    };
    /// The bad canary once it takes traffic: every 8th request fails, 40 ms, memory 91%.
    pub const DEGRADED: Knobs = Knobs {
        error_rate: 0.125,
        latency_ms: 40,
        memory: 0.91,
        cpu: 0.74,
    };

    fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("memory", self.memory),
            ("cpu", self.cpu),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} must be between 0 and 1, got {value}"));
            }
        }
        if self.latency_ms > 60_000 {
            return Err(format!(
                "latency_ms must be at most 60000, got {}",
                self.latency_ms
            ));
        }
        Ok(())
    }
}

/// Whether request `n` (0-based) is one of the `share` (0..=1) of requests picked, spread
/// evenly: the first is picked whenever `share > 0`, then one every `1/share`.
fn picked(n: u64, share: f64) -> bool {
    const MILLION: u64 = 1_000_000;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to 0..=1 first"
    )]
    let parts = (share.clamp(0.0, 1.0) * 1e6).round() as u64;
    parts > 0 && n.wrapping_mul(parts) % MILLION < parts
}

/// One backend's state.
struct Backend {
    name: &'static str,
    knobs: Mutex<Knobs>,
    /// A bad canary's knobs once it takes traffic; taken by the first proxied request.
    regression: Mutex<Option<Knobs>>,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests per bucket of [`BUCKETS`] (not cumulative), the last for those above 1 s.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    recent: Mutex<VecDeque<(Instant, bool)>>,
}

impl Backend {
    fn new(name: &'static str, regression: Option<Knobs>) -> Self {
        Backend {
            name,
            knobs: Mutex::new(Knobs::HEALTHY),
            regression: Mutex::new(regression),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    fn knobs(&self) -> Knobs {
        *self.knobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_knobs(&self, knobs: Knobs) {
        *self.knobs.lock().unwrap_or_else(PoisonError::into_inner) = knobs;
    }

    /// A proxied request arrived: a pending regression ships now.
    fn takes_traffic(&self) {
        let regression = self
            .regression
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(knobs) = regression {
            self.set_knobs(knobs);
        }
    }

    fn record(&self, failed: bool, took: Duration) {
        if failed {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::SeqCst);
        self.latency_sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back((now, failed));
        while recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > STATS_WINDOW)
        {
            recent.pop_front();
        }
    }

    fn recent_error_rate(&self) -> f64 {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.is_empty() {
            return 0.0;
        }
        let failed = recent.iter().filter(|(_, f)| *f).count();
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let rate = failed as f64 / recent.len() as f64;
        rate
    }
}

async fn serve_api(State(backend): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    if headers.contains_key("x-forwarded-for") {
        backend.takes_traffic();
    }
    let n = backend.requests.fetch_add(1, Ordering::SeqCst);
    let knobs = backend.knobs();
    tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
    let failed = picked(n, knobs.error_rate);
    backend.record(failed, started.elapsed());
    let (status, body) = if failed {
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream failure")
    } else {
        (StatusCode::OK, "ok")
    };
    let mut response = (status, format!("{body} from {}\n", backend.name)).into_response();
    response
        .headers_mut()
        .insert("x-demo-backend", HeaderValue::from_static(backend.name));
    response
}

async fn stats(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    let knobs = backend.knobs();
    Json(json!({
        "backend": backend.name,
        "requests": backend.requests.load(Ordering::SeqCst),
        "error_rate": backend.recent_error_rate(),
        "memory": { "used_ratio": knobs.memory },
        "cpu": { "used_ratio": knobs.cpu },
    }))
}

async fn metrics(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    use std::fmt::Write as _;
    let knobs = backend.knobs();
    let name = backend.name;
    let errors = backend.errors.load(Ordering::SeqCst);
    let mut cumulative = 0;
    let mut histogram = String::new();
    for (i, bound) in BUCKETS.iter().map(ToString::to_string).enumerate() {
        cumulative += backend.buckets[i].load(Ordering::SeqCst);
        let _ = writeln!(
            histogram,
            "demo_request_duration_seconds_bucket{{backend=\"{name}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let count = cumulative + backend.buckets[BUCKETS.len()].load(Ordering::SeqCst);
    #[expect(clippy::cast_precision_loss, reason = "a sum of microseconds")]
    let sum = backend.latency_sum_micros.load(Ordering::SeqCst) as f64 / 1e6;
    // Requests in flight are counted in `requests` but not yet in the histogram.
    let ok = count - errors.min(count);
    format!(
        "# TYPE demo_requests_total counter\n\
         demo_requests_total{{backend=\"{name}\",code=\"200\"}} {ok}\n\
         demo_requests_total{{backend=\"{name}\",code=\"500\"}} {errors}\n\
         # TYPE demo_request_duration_seconds histogram\n\
         {histogram}\
         demo_request_duration_seconds_bucket{{backend=\"{name}\",le=\"+Inf\"}} {count}\n\
         demo_request_duration_seconds_sum{{backend=\"{name}\"}} {sum}\n\
         demo_request_duration_seconds_count{{backend=\"{name}\"}} {count}\n\
         # TYPE demo_memory_utilization gauge\n\
         demo_memory_utilization{{backend=\"{name}\"}} {memory}\n\
         # TYPE demo_cpu_utilization gauge\n\
         demo_cpu_utilization{{backend=\"{name}\"}} {cpu}\n",
        memory = knobs.memory,
        cpu = knobs.cpu,
    )
}

async fn get_knobs(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    Json(backend.knobs())
}

async fn put_knobs(
    State(backend): State<Arc<Backend>>,
    Json(change): Json<KnobsChange>,
) -> impl IntoResponse {
    let mut knobs = backend.knobs.lock().unwrap_or_else(PoisonError::into_inner);
    let changed = change.apply(*knobs);
    if let Err(error) = changed.check() {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error })));
    }
    *knobs = changed;
    (StatusCode::OK, Json(json!(changed)))
}

fn backend_router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route("/stats.json", get(stats))
        .route("/metrics", get(metrics))
        .route(
            "/admin/knobs",
            get(get_knobs).put(put_knobs).post(put_knobs),
        )
        .fallback(serve_api)
        .with_state(backend)
}

/// The router's state: where to forward, and the weight.
struct Split {
    /// The canary's share in percent, and how many requests were routed since it was set.
    weight: Mutex<(f64, u64)>,
    legacy: String,
    canary: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Weights {
    canary: f64,
}

async fn set_weights(
    State(split): State<Arc<Split>>,
    Json(weights): Json<Weights>,
) -> impl IntoResponse {
    if !(0.0..=100.0).contains(&weights.canary) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "canary must be between 0 and 100"})),
        );
    }
    *split.weight.lock().unwrap_or_else(PoisonError::into_inner) = (weights.canary, 0);
    (StatusCode::OK, Json(json!({ "canary": weights.canary })))
}

async fn get_weights(State(split): State<Arc<Split>>) -> impl IntoResponse {
    let (canary, _) = *split.weight.lock().unwrap_or_else(PoisonError::into_inner);
    Json(json!({ "canary": canary }))
}

/// Forwards a request to legacy or canary, the canary's share spread evenly (the first request
/// after a change of weight goes to the canary when its share is above zero).
async fn forward(State(split): State<Arc<Split>>, uri: Uri) -> Response {
    let to_canary = {
        let mut weight = split.weight.lock().unwrap_or_else(PoisonError::into_inner);
        let n = weight.1;
        weight.1 += 1;
        picked(n, weight.0 / 100.0)
    };
    let base = if to_canary {
        &split.canary
    } else {
        &split.legacy
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let sent = split
        .client
        .get(format!("{base}{path}"))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let backend = response.headers().get("x-demo-backend").cloned();
            let mut forwarded = (status, response.text().await.unwrap_or_default()).into_response();
            if let Some(backend) = backend {
                forwarded.headers_mut().insert("x-demo-backend", backend);
            }
            forwarded
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    }
}

/// Where the demo listens: ports chosen by the system, or `base` for the router, `base + 1`
/// for legacy and `base + 2` for the canary (the URLs `plans/demo.yaml` has by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub base: Option<u16>,
}

impl Ports {
    fn addr(self, offset: u16) -> SocketAddr {
        let port = self.base.map_or(0, |base| base.saturating_add(offset));
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

async fn listen(
    addr: SocketAddr,
    router: Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}

/// The two backends, without a router: put a proxy of your own (nginx) in front of them.
pub struct Backends {
    pub legacy: SocketAddr,
    pub canary: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Backends {
    /// Starts legacy and canary; with `bad_canary`, the canary degrades to
    /// [`Knobs::DEGRADED`] once it takes proxied traffic.
    pub async fn start(bad_canary: bool, ports: Ports) -> std::io::Result<Backends> {
        let regression = bad_canary.then_some(Knobs::DEGRADED);
        let (legacy, legacy_task) = listen(
            ports.addr(1),
            backend_router(Arc::new(Backend::new("legacy", None))),
        )
        .await?;
        let (canary, canary_task) = listen(
            ports.addr(2),
            backend_router(Arc::new(Backend::new("canary", regression))),
        )
        .await?;
        Ok(Backends {
            legacy,
            canary,
            tasks: vec![legacy_task, canary_task],
        })
    }

    /// Stops both servers.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Light background traffic (about 20 requests/s to `url`, on loopback) until stopped: the
/// users of the service.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    pub fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::SeqCst) {
                    let _ = client
                        .get(&url)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Traffic { stop, task }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// The running demo service: both backends, the router, and traffic through the router.
pub struct DemoService {
    pub router: SocketAddr,
    pub legacy: SocketAddr,
    pub canary: SocketAddr,
    backends: Backends,
    router_task: tokio::task::JoinHandle<()>,
    traffic: Traffic,
}

impl DemoService {
    pub fn url(addr: SocketAddr) -> String {
        format!("http://{addr}")
    }

    /// Stops the servers and the background traffic.
    pub fn stop(self) {
        self.traffic.stop();
        self.router_task.abort();
        self.backends.stop();
    }
}

/// Starts both backends, the router (canary at 0%) and light background traffic through it.
pub async fn start(bad_canary: bool, ports: Ports) -> std::io::Result<DemoService> {
    let backends = Backends::start(bad_canary, ports).await?;
    let split = Arc::new(Split {
        weight: Mutex::new((0.0, 0)),
        legacy: DemoService::url(backends.legacy),
        canary: DemoService::url(backends.canary),
        client: reqwest::Client::new(),
    });
    let router_app = Router::new()
        .route(
            "/weights",
            get(get_weights).put(set_weights).post(set_weights),
        )
        .fallback(forward)
        .with_state(split);
    let (router, router_task) = listen(ports.addr(0), router_app).await?;
    let traffic = Traffic::start(format!("{}/api/checkout", DemoService::url(router)));
    Ok(DemoService {
        router,
        legacy: backends.legacy,
        canary: backends.canary,
        backends,
        router_task,
        traffic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_spreads_a_share_evenly_and_starts_with_a_pick() {
        let picks = |share: f64, n: u64| (0..n).filter(|&i| picked(i, share)).count();
        assert_eq!(picks(0.05, 100), 5);
        assert_eq!(picks(0.125, 80), 10);
        assert_eq!(picks(0.0, 1000), 0);
        assert_eq!(picks(1.0, 37), 37);
        assert!(picked(0, 0.05));
        // Evenly: one pick in each run of 20 at 5%.
        let at: Vec<u64> = (0..60).filter(|&i| picked(i, 0.05)).collect();
        assert_eq!(at, [0, 20, 40]);
    }

    #[test]
    fn knobs_are_checked_and_a_change_keeps_what_it_does_not_name() {
        let mut knobs = Knobs::HEALTHY;
        assert!(knobs.check().is_ok());
        let change = KnobsChange {
            error_rate: Some(0.1),
            ..KnobsChange::default()
        };
        let changed = change.apply(knobs);
        assert_eq!(
            changed,
            Knobs {
                error_rate: 0.1,
                ..Knobs::HEALTHY
            }
        );
        knobs.error_rate = 1.5;
        assert!(knobs.check().unwrap_err().contains("error_rate"));
    }
}
