//! `ion-plan probe`: one probe on its own, to try it while writing a plan. `probe load` is the
//! seed's rate-limit probe script with its presets, canary and legacy side by side.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use crate::event::evaluation::show;
use crate::exit_code;
use crate::plan::metrics::MetricUnit;
use crate::plan::units::parse_duration;
use crate::probe::command::CommandProbe;
use crate::probe::http::{HttpProbe, Request};
use crate::probe::load::{LoadProbe, LoadSpec, Target, TargetReport};
use crate::probe::prometheus::PrometheusProbe;
use crate::probe::{Reading, Sample};
use crate::redact::Redactor;
use crate::report::escape::terminal;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan probe load --target canary=http://127.0.0.1:18082/ --target legacy=http://127.0.0.1:18081/\n  ion-plan probe http http://127.0.0.1:18082/stats.json --metric memory=/memory/used_ratio"
)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// N requests to each target, side by side, with latency percentiles.
    Load(LoadArgs),
    /// One request; metrics from the JSON body by JSON Pointer.
    Http(HttpArgs),
    /// Prometheus instant queries.
    Prometheus(PrometheusArgs),
    /// A program that prints a JSON object of numbers.
    Command(CommandArgs),
}

/// The seed's load presets (requests per target, delay between a worker's requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// 10 requests, 500ms apart.
    Light,
    /// 50 requests, 100ms apart.
    Medium,
    /// 200 requests, 10ms apart.
    Heavy,
    /// 500 requests, no pause.
    Stress,
}

impl Preset {
    fn values(self) -> (u64, Duration) {
        match self {
            Preset::Light => (10, Duration::from_millis(500)),
            Preset::Medium => (50, Duration::from_millis(100)),
            Preset::Heavy => (200, Duration::from_millis(10)),
            Preset::Stress => (500, Duration::ZERO),
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

fn header(text: &str) -> Result<(String, String), String> {
    text.split_once(':')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not `Name: value`"))
}

#[derive(Debug, Clone, clap::Args)]
struct RequestArgs {
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: reqwest::Method,
    /// A request header, `Name: value` (repeatable). Values are not printed.
    #[arg(long = "header", value_parser = header)]
    headers: Vec<(String, String)>,
    /// The request body.
    #[arg(long)]
    body: Option<String>,
    /// The status a response must have (default: any 2xx).
    #[arg(long)]
    expect_status: Option<u16>,
    #[command(flatten)]
    output: super::output::Output,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan probe load --target canary=http://127.0.0.1:18082/ --target legacy=http://127.0.0.1:18081/\n  ion-plan probe load --target t=http://127.0.0.1:8080/ --rate 200 --duration 30s --format json"
)]
struct LoadArgs {
    /// A target, NAME=URL (repeatable), e.g. `--target canary=https://…`.
    #[arg(long = "target", value_parser = pair, required = true)]
    targets: Vec<(String, String)>,
    /// Requests and delay from the seed's presets; the flags below override them.
    #[arg(long, value_enum, default_value_t = Preset::Medium)]
    preset: Preset,
    /// Requests per target.
    #[arg(long)]
    requests: Option<u64>,
    /// Pause between two requests of one worker (closed model), e.g. `100ms`.
    #[arg(long, value_parser = duration, conflicts_with = "rate")]
    delay: Option<Duration>,
    /// Requests per second per target (open model, coordinated-omission corrected).
    #[arg(long)]
    rate: Option<f64>,
    /// Send for this long instead of a number of requests.
    #[arg(long, value_parser = duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Workers per target.
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Timeout of each request.
    #[arg(long, value_parser = duration, default_value = "5s")]
    timeout: Duration,
    #[command(flatten)]
    request: RequestArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan probe http http://127.0.0.1:9100/stats.json --metric memory=/memory/used_ratio"
)]
struct HttpArgs {
    /// The URL to request, e.g. `http://127.0.0.1:9100/stats.json`.
    url: String,
    /// A metric, NAME=/json/pointer (repeatable).
    #[arg(long = "metric", value_parser = pair)]
    metrics: Vec<(String, String)>,
    /// Timeout of the request.
    #[arg(long, value_parser = duration, default_value = "10s")]
    timeout: Duration,
    #[command(flatten)]
    request: RequestArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan probe prometheus http://127.0.0.1:9090 --query 'up=sum(up)'"
)]
struct PrometheusArgs {
    /// Base URL of Prometheus, e.g. `http://127.0.0.1:9090`.
    url: String,
    /// A query, NAME=PROMQL (repeatable).
    #[arg(long = "query", value_parser = pair, required = true)]
    queries: Vec<(String, String)>,
    /// Timeout of each query.
    #[arg(long, value_parser = duration, default_value = "10s")]
    timeout: Duration,
    #[command(flatten)]
    output: super::output::Output,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan probe command -- ./scripts/check_monitoring_status.ps1 -Json"
)]
struct CommandArgs {
    /// The program and its arguments, after `--`.
    #[arg(required = true, last = true)]
    argv: Vec<String>,
    /// How long the program may run before it is killed (its process group).
    #[arg(long, value_parser = duration, default_value = "30s")]
    timeout: Duration,
    #[command(flatten)]
    output: super::output::Output,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    super::runtime()?.block_on(async {
        match &args.kind {
            Kind::Load(load) => run_load(load).await,
            Kind::Http(http) => {
                let probe = HttpProbe {
                    name: "http".into(),
                    request: Request {
                        method: http.request.method.clone(),
                        url: http.url.clone(),
                        shown_url: http.url.clone(),
                        headers: http.request.headers.clone(),
                        body: http.request.body.clone(),
                        timeout: http.timeout,
                        expect_status: http.request.expect_status,
                        redact: Arc::new(Redactor::for_headers(&http.request.headers)),
                    },
                    metrics: http.metrics.clone(),
                };
                Ok(print_sample(
                    &probe.sample(&client()).await,
                    http.request.output.json(),
                    &[("latency", MetricUnit::Seconds)],
                ))
            }
            Kind::Prometheus(prometheus) => {
                let probe = PrometheusProbe {
                    name: "prometheus".into(),
                    url: prometheus.url.clone(),
                    shown_url: prometheus.url.clone(),
                    headers: Vec::new(),
                    queries: prometheus.queries.clone(),
                    timeout: prometheus.timeout,
                    redact: Arc::default(),
                };
                Ok(print_sample(
                    &probe.sample(&client()).await,
                    prometheus.output.json(),
                    &[],
                ))
            }
            Kind::Command(command) => {
                let probe = CommandProbe {
                    name: "command".into(),
                    argv: command.argv.clone(),
                    shown: command.argv.clone(),
                    dir: PathBuf::from("."),
                    timeout: command.timeout,
                    redact: Arc::default(),
                };
                Ok(print_sample(
                    &probe.sample().await,
                    command.output.json(),
                    &[],
                ))
            }
        }
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("ion-plan/", env!("CARGO_PKG_VERSION")))
        .redirect(crate::probe::http::same_origin_redirects())
        .build()
        .unwrap_or_default()
}

async fn run_load(args: &LoadArgs) -> Result<u8, CliError> {
    let (requests, delay) = args.preset.values();
    let probe = LoadProbe {
        name: "load".into(),
        targets: args
            .targets
            .iter()
            .map(|(name, url)| Target {
                name: name.clone(),
                url: url.clone(),
                shown_url: url.clone(),
            })
            .collect(),
        spec: LoadSpec {
            requests: args.requests.unwrap_or(requests),
            duration: args.duration,
            delay: if args.rate.is_some() {
                Duration::ZERO
            } else {
                args.delay.unwrap_or(delay)
            },
            rate: args.rate,
            concurrency: args.concurrency.max(1),
            timeout: args.timeout,
            method: args.request.method.clone(),
            headers: args.request.headers.clone(),
            body: args.request.body.clone(),
            expect_status: args.request.expect_status,
            sent: Arc::default(),
        },
    };
    let bar = progress_bar(&probe);
    let results = probe.measure().await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    let results = results.map_err(|error| CliError::Load(terminal(&error)))?;
    let reports: Vec<(String, TargetReport)> = results
        .iter()
        .map(|(name, stats)| (name.clone(), stats.report()))
        .collect();
    let mut out = std::io::stdout().lock();
    let text = if args.request.output.json() {
        let targets: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(n, r)| (n.clone(), serde_json::to_value(r).unwrap_or_default()))
            .collect();
        format!("{}\n", serde_json::json!({ "targets": targets }))
    } else {
        load_table(&reports)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(exit_code::SUCCESS)
}

/// On a terminal, a line on stderr that counts requests sent against the total, five times a
/// second (indicatif hides it when stderr is not a terminal).
fn progress_bar(probe: &LoadProbe) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    let target = ProgressDrawTarget::stderr();
    if target.is_hidden() {
        return None;
    }
    let sent = Arc::clone(&probe.spec.sent);
    let targets = probe.targets.len() as u64;
    let total = probe
        .spec
        .duration
        .is_none()
        .then(|| probe.spec.requests * targets)
        .filter(|total| *total > 0);
    let template = if total.is_some() {
        "[{bar:30}] {pos}/{len} requests"
    } else {
        "{pos} requests, {elapsed}"
    };
    let bar = ProgressBar::with_draw_target(total, target).with_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("# "),
    );
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(sent.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    Some((bar, ticker))
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.1}ms", v * 1000.0))
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", v * 100.0))
}

/// Targets side by side; with two, a Δ column (first minus second: canary minus legacy).
fn load_table(reports: &[(String, TargetReport)]) -> String {
    type Row = (
        &'static str,
        fn(&TargetReport) -> String,
        Option<fn(&TargetReport, &TargetReport) -> String>,
    );
    let rows: Vec<Row> = vec![
        ("requests", |r| r.requests.to_string(), None),
        ("errors", |r| r.errors.to_string(), None),
        (
            "error rate",
            |r| pct(r.error_rate),
            Some(|a, b| match (a.error_rate, b.error_rate) {
                (Some(x), Some(y)) => format!("{:+.2}pp", (x - y) * 100.0),
                _ => "-".to_owned(),
            }),
        ),
        ("success rate", |r| pct(r.success_rate), None),
        ("rps", |r| format!("{:.1}", r.rps), None),
        ("min", |r| ms(r.min), None),
        ("avg", |r| ms(r.avg), None),
        ("max", |r| ms(r.max), None),
        ("p50", |r| ms(r.p50), None),
        ("p90", |r| ms(r.p90), None),
        (
            "p95",
            |r| ms(r.p95),
            Some(|a, b| match (a.p95, b.p95) {
                (Some(x), Some(y)) => format!("{:+.1}ms", (x - y) * 1000.0),
                _ => "-".to_owned(),
            }),
        ),
        ("p99", |r| ms(r.p99), None),
    ];
    let compare = reports.len() == 2;
    let mut out = format!("{:<14}", "");
    for (name, _) in reports {
        let _ = write!(out, "{name:>14}");
    }
    if compare {
        let _ = write!(out, "{:>14}", "Δ");
    }
    out.push('\n');
    for (label, value, delta) in rows {
        let _ = write!(out, "{label:<14}");
        for (_, report) in reports {
            let _ = write!(out, "{:>14}", value(report));
        }
        if compare {
            let d = delta.map_or_else(String::new, |d| d(&reports[0].1, &reports[1].1));
            let _ = write!(out, "{d:>14}");
        }
        out.push('\n');
    }
    for (name, report) in reports {
        if !report.errors_by_kind.is_empty() {
            let kinds: Vec<String> = report
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(out, "{name} errors: {}", kinds.join(", "));
        }
    }
    out
}

/// A sample as a table or JSON; exit 1 when the probe failed. A failed probe is a sample, said
/// on stdout like any other: an answer, not an error of the command. Values of `units` show in
/// their unit (`latency  6.5ms`); JSON keeps base units.
fn print_sample(sample: &Sample, json: bool, units: &[(&str, MetricUnit)]) -> u8 {
    let text = if json {
        format!("{}\n", serde_json::to_string(sample).unwrap_or_default())
    } else if let Some(error) = &sample.error {
        format!("error: {}\n", terminal(error))
    } else {
        sample
            .metrics
            .iter()
            .fold(String::new(), |mut out, (name, reading)| {
                let value = match reading {
                    Reading::Value(v) => match units.iter().find(|(n, _)| n == name) {
                        Some((_, unit)) => show(*v, unit.shown_as()),
                        None => v.to_string(),
                    },
                    Reading::NoData => "no data".to_owned(),
                    Reading::Error(e) => format!("error: {}", terminal(e)),
                };
                let _ = writeln!(out, "{:<20} {value}", terminal(name));
                out
            })
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if sample.error.is_some() {
        exit_code::RUNTIME_ERROR
    } else {
        exit_code::SUCCESS
    }
}
