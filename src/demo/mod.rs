//! The bundled demo: a legacy and a canary backend and a router that splits traffic between them
//! by weight, all on 127.0.0.1, for `ion-plan demo`.
//!
//! Each backend serves `/api/health`, `/stats.json` (JSON the `http` probe reads) and `/metrics`
//! (Prometheus text). The router forwards every other request to a backend by weight, set
//! through its admin API: `PUT /weights {"canary": N}`. A bad canary degrades only once it
//! takes traffic (weight above zero), like a real regression: every 8th request fails and it
//! slows down.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

/// How long `/stats.json` looks back for its error rate.
const STATS_WINDOW: Duration = Duration::from_secs(5);

/// One backend's state.
struct Backend {
    name: &'static str,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Only the canary can be bad.
    bad: bool,
    /// The canary's share of routed traffic, set by the router's admin API.
    weight: Arc<AtomicU64>,
    recent: Mutex<VecDeque<(Instant, bool)>>,
}

impl Backend {
    fn degraded(&self) -> bool {
        self.bad && self.weight.load(Ordering::SeqCst) > 0
    }

    fn record(&self, failed: bool) {
        let now = Instant::now();
        let mut recent = self.recent.lock().expect("stats lock");
        recent.push_back((now, failed));
        while recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > STATS_WINDOW)
        {
            recent.pop_front();
        }
    }

    fn recent_error_rate(&self) -> f64 {
        let recent = self.recent.lock().expect("stats lock");
        if recent.is_empty() {
            return 0.0;
        }
        let failed = recent.iter().filter(|(_, f)| *f).count();
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let rate = failed as f64 / recent.len() as f64;
        rate
    }
}

async fn health(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    let n = backend.requests.fetch_add(1, Ordering::SeqCst);
    let degraded = backend.degraded();
    tokio::time::sleep(Duration::from_millis(if degraded { 40 } else { 4 })).await;
    let failed = degraded && n % 8 == 7;
    backend.record(failed);
    if failed {
        backend.errors.fetch_add(1, Ordering::SeqCst);
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream failure\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn stats(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    let degraded = backend.degraded();
    Json(json!({
        "backend": backend.name,
        "requests": backend.requests.load(Ordering::SeqCst),
        "error_rate": backend.recent_error_rate(),
        "memory": { "used_ratio": if degraded { 0.91 } else { 0.48 } },
        "cpu": { "used_ratio": if degraded { 0.74 } else { 0.31 } },
    }))
}

async fn metrics(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    let requests = backend.requests.load(Ordering::SeqCst);
    let errors = backend.errors.load(Ordering::SeqCst);
    let name = backend.name;
    let memory = if backend.degraded() { 0.91 } else { 0.48 };
    format!(
        "# TYPE demo_requests_total counter\n\
         demo_requests_total{{backend=\"{name}\",code=\"200\"}} {}\n\
         demo_requests_total{{backend=\"{name}\",code=\"500\"}} {errors}\n\
         # TYPE demo_memory_utilization gauge\n\
         demo_memory_utilization{{backend=\"{name}\"}} {memory}\n",
        requests - errors
    )
}

fn backend_router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/stats.json", get(stats))
        .route("/metrics", get(metrics))
        .with_state(backend)
}

/// The router's state: where to forward, and the weight.
struct Split {
    weight: Arc<AtomicU64>,
    legacy: String,
    canary: String,
    counter: AtomicU64,
    client: reqwest::Client,
}

#[derive(Deserialize)]
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
            Json(json!({"error": "canary must be 0..100"})),
        );
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked 0..=100"
    )]
    let weight = weights.canary.round() as u64;
    split.weight.store(weight, Ordering::SeqCst);
    (StatusCode::OK, Json(json!({ "canary": weight })))
}

async fn get_weights(State(split): State<Arc<Split>>) -> impl IntoResponse {
    Json(json!({ "canary": split.weight.load(Ordering::SeqCst) }))
}

/// Forwards a request to legacy or canary: of every 100 requests, `weight` go to the canary.
async fn forward(State(split): State<Arc<Split>>, uri: Uri) -> impl IntoResponse {
    let k = split.counter.fetch_add(1, Ordering::SeqCst) % 100;
    let base = if k < split.weight.load(Ordering::SeqCst) {
        &split.canary
    } else {
        &split.legacy
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match split.client.get(format!("{base}{path}")).send().await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

/// The running demo service.
pub struct DemoService {
    pub router: SocketAddr,
    pub legacy: SocketAddr,
    pub canary: SocketAddr,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DemoService {
    pub fn url(addr: SocketAddr) -> String {
        format!("http://{addr}")
    }

    /// Stops the servers and the background traffic.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn listen(router: Router) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}

/// Starts both backends, the router and light background traffic (about 20 requests/s through
/// the router, on loopback, until stopped).
pub async fn start(bad_canary: bool) -> std::io::Result<DemoService> {
    let weight = Arc::new(AtomicU64::new(0));
    let backend = |name, bad| {
        Arc::new(Backend {
            name,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bad,
            weight: Arc::clone(&weight),
            recent: Mutex::new(VecDeque::new()),
        })
    };
    let (legacy, legacy_task) = listen(backend_router(backend("legacy", false))).await?;
    let (canary, canary_task) = listen(backend_router(backend("canary", bad_canary))).await?;
    let split = Arc::new(Split {
        weight: Arc::clone(&weight),
        legacy: DemoService::url(legacy),
        canary: DemoService::url(canary),
        counter: AtomicU64::new(0),
        client: reqwest::Client::new(),
    });
    let router_app = Router::new()
        .route(
            "/weights",
            get(get_weights).put(set_weights).post(set_weights),
        )
        .fallback(forward)
        .with_state(split);
    let (router, router_task) = listen(router_app).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        let url = format!("{}/api/health", DemoService::url(router));
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
    Ok(DemoService {
        router,
        legacy,
        canary,
        stop,
        tasks: vec![legacy_task, canary_task, router_task, traffic],
    })
}
