//! The load probe against real servers on 127.0.0.1 with a known latency distribution and error
//! ratio; connection refused; a server slower than the timeout; rate mode and its
//! coordinated-omission correction. Also `probe command` with a real script.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::server::serve;
use common::{ion_plan, write};
use serde_json::Value;

/// 90% of requests take 10ms and 10% take 100ms; every 5th answers 500.
fn known_distribution() -> Router {
    let counter = Arc::new(AtomicU64::new(0));
    Router::new().route(
        "/",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let delay = if n % 10 == 9 { 100 } else { 10 };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if n % 5 == 4 {
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    )
}

fn load_json(args: &[&str]) -> Value {
    let output = ion_plan()
        .args(["probe", "load", "--json"])
        .args(args)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    output.json()
}

#[test]
fn percentiles_and_error_ratio_match_the_servers_distribution() {
    let server = serve(known_distribution());
    let url = server.url("/");
    let report = load_json(&[
        "--target",
        &format!("canary={url}"),
        "--requests",
        "200",
        "--concurrency",
        "4",
        "--delay",
        "0ms",
    ]);
    let canary = &report["targets"]["canary"];
    assert_eq!(canary["requests"], 200);
    assert_eq!(canary["errors"], 40);
    assert_eq!(canary["error_rate"], 0.2);
    assert_eq!(canary["success_rate"], 0.8);
    assert_eq!(canary["status_codes"]["200"], 160);
    assert_eq!(canary["status_codes"]["500"], 40);
    assert_eq!(canary["errors_by_kind"]["status_500"], 40);
    let p = |name: &str| canary[name].as_f64().unwrap();
    // p50 near 10ms, p95 near 100ms (scheduling adds a little on a busy machine).
    assert!((0.009..0.060).contains(&p("p50")), "p50 {}", p("p50"));
    assert!((0.095..0.200).contains(&p("p95")), "p95 {}", p("p95"));
    assert!(p("min") >= 0.009 && p("max") >= 0.099, "{canary}");
    assert!(p("p50") <= p("p90") && p("p90") <= p("p95") && p("p95") <= p("p99"));
    // The JSON has exactly the documented keys.
    let mut keys: Vec<&String> = canary.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "avg",
            "error_rate",
            "errors",
            "errors_by_kind",
            "max",
            "min",
            "p50",
            "p90",
            "p95",
            "p99",
            "requests",
            "rps",
            "status_codes",
            "success_rate"
        ]
    );
}

#[test]
fn targets_run_side_by_side_and_the_table_compares_them() {
    let canary = serve(known_distribution());
    let legacy = serve(known_distribution());
    let output = ion_plan()
        .args([
            "probe",
            "load",
            "--preset",
            "stress",
            "--requests",
            "40",
            "--concurrency",
            "2",
        ])
        .arg("--target")
        .arg(format!("canary={}", canary.url("/")))
        .arg("--target")
        .arg(format!("legacy={}", legacy.url("/")))
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let header = output.stdout.lines().next().unwrap();
    assert!(
        header.contains("canary") && header.contains("legacy") && header.contains('Δ'),
        "{header}"
    );
    assert!(
        output
            .stdout
            .lines()
            .any(|l| l.starts_with("p95") && l.trim_end().ends_with("ms")),
        "{}",
        output.stdout
    );
    assert_eq!(canary.hits().len(), 40);
    assert_eq!(legacy.hits().len(), 40);
}

#[test]
fn connection_refused_is_counted_not_crashed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = load_json(&[
        "--target",
        &format!("down=http://127.0.0.1:{port}/"),
        "--preset",
        "light",
        "--requests",
        "5",
        "--delay",
        "0ms",
    ]);
    let down = &report["targets"]["down"];
    assert_eq!(down["requests"], 5);
    assert_eq!(down["errors"], 5);
    assert_eq!(down["error_rate"], 1.0);
    assert_eq!(down["errors_by_kind"]["connect"], 5);
    assert!(
        down["p95"].is_null(),
        "no latency without a response: {down}"
    );
}

#[test]
fn a_server_slower_than_the_timeout_counts_timeouts() {
    let server = serve(Router::new().route(
        "/",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        }),
    ));
    let report = load_json(&[
        "--target",
        &format!("slow={}", server.url("/")),
        "--requests",
        "3",
        "--concurrency",
        "3",
        "--timeout",
        "200ms",
    ]);
    let slow = &report["targets"]["slow"];
    assert_eq!(slow["errors_by_kind"]["timeout"], 3, "{slow}");
}

#[test]
fn rate_mode_holds_its_rate_and_corrects_for_coordinated_omission() {
    // The first request stalls 500ms; the rest are instant. With one worker at 20/s, requests
    // scheduled during the stall wait, and that wait is their latency (counted from the
    // scheduled send time), as a user would have felt it.
    let counter = Arc::new(AtomicU64::new(0));
    let server = serve(Router::new().route(
        "/",
        get(move || {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                "ok"
            }
        }),
    ));
    let report = load_json(&[
        "--target",
        &format!("t={}", server.url("/")),
        "--rate",
        "20",
        "--duration",
        "1s",
        "--concurrency",
        "1",
    ]);
    let t = &report["targets"]["t"];
    let requests = t["requests"].as_u64().unwrap();
    assert!(
        (17..=21).contains(&requests),
        "about 20 requests in 1s at 20/s: {requests}"
    );
    let p90 = t["p90"].as_f64().unwrap();
    assert!(p90 >= 0.1, "queued requests carry their wait: p90 {p90}");
}

#[test]
fn the_command_probe_reads_json_and_reports_failures_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "ok.sh",
        "#!/bin/sh\necho '{\"up\": 1, \"lag\": 0.25}'\n",
    );
    let bad = write(
        dir.path(),
        "bad.sh",
        "#!/bin/sh\necho 'prometheus unreachable' >&2\nexit 1\n",
    );
    let output = ion_plan()
        .args(["probe", "command", "--json", "--", "sh"])
        .arg(&ok)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let sample = output.json();
    assert_eq!(sample["metrics"]["up"]["value"], 1.0);
    assert_eq!(sample["metrics"]["lag"]["value"], 0.25);
    let output = ion_plan()
        .args(["probe", "command", "--", "sh"])
        .arg(&bad)
        .run();
    assert_eq!(output.code, 1);
    assert!(
        output.stdout.contains("exit status: 1")
            && output.stdout.contains("prometheus unreachable"),
        "{}",
        output.stdout
    );
}
