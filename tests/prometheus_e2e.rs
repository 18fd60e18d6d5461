//! The Prometheus probe against a real Prometheus (Debian package `prometheus`) scraping an
//! exporter in this process on 127.0.0.1. Ignored in a plain `cargo test`; `.ci/run` installs
//! Prometheus and runs it with `--include-ignored`.

mod common;

use axum::Router;
use axum::routing::get;
use common::prometheus::{Prometheus, free_port};
use common::server::serve;
use common::{ion_plan, write};

const METRICS: &str = "\
# TYPE container_memory_utilization gauge
container_memory_utilization{svc=\"ion\",tag=\"canary\"} 0.62
container_memory_utilization{svc=\"ion\",tag=\"legacy\"} 0.41
# TYPE requests_total counter
requests_total{svc=\"ion\",tag=\"canary\",code=\"200\"} 990
requests_total{svc=\"ion\",tag=\"canary\",code=\"500\"} 10
";

#[test]
#[ignore = "needs the prometheus binary; .ci/run installs it and runs this"]
fn queries_through_a_real_prometheus() {
    let exporter = serve(Router::new().route("/metrics", get(|| async { METRICS })));
    let prometheus = Prometheus::start(&[exporter.addr.to_string()]);

    let output = ion_plan()
        .args(["probe", "prometheus", &prometheus.url, "--json"])
        .args(["--query", "memory=max(container_memory_utilization{tag=\"canary\"})"])
        .args(["--query", "error_rate=sum(requests_total{tag=\"canary\",code=~\"5..\"}) / sum(requests_total{tag=\"canary\"})"])
        .args(["--query", "missing=container_memory_utilization{tag=\"nope\"}"])
        .args(["--query", "both=container_memory_utilization"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let sample = output.json();
    assert_eq!(sample["metrics"]["memory"]["value"], 0.62);
    assert_eq!(sample["metrics"]["error_rate"]["value"], 0.01);
    assert_eq!(sample["metrics"]["missing"], "no_data");
    let both = sample["metrics"]["both"]["error"].as_str().unwrap();
    assert!(
        both.contains("2 series") && both.contains("legacy"),
        "{both}"
    );

    // A plan whose gates read Prometheus: passes at 85%, rolls back at 50%.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rollback.sh",
        "#!/bin/sh\necho rolled back > rolled-back\n",
    );
    for (threshold, code) in [("85%", 0), ("50%", 3)] {
        let plan = format!(
            "\
version: 1
name: prom
probes:
  canary:
    prometheus:
      url: {url}
      queries:
        memory: max(container_memory_utilization{{tag=\"canary\"}})
gates:
  go:
    at: end
    require: [canary.memory <= {threshold}]
stages:
  - {{ name: all, traffic: 100, bake: 0s, checks: {{ at: [0s], probes: [canary] }}, gates: [go] }}
rollback:
  - run: [sh, ./rollback.sh]
",
            url = prometheus.url
        );
        let path = write(dir.path(), "plan.yaml", plan);
        let output = ion_plan().arg("run").arg(&path).run();
        assert_eq!(output.code, code, "{}{}", output.stdout, output.stderr);
        assert!(output.stdout.contains("memory=62%"), "{}", output.stdout);
    }
    assert!(dir.path().join("rolled-back").exists());
}

#[test]
#[ignore = "needs the prometheus binary; .ci/run installs it and runs this"]
fn a_prometheus_that_is_down_is_an_error_sample() {
    let port = free_port();
    let output = ion_plan()
        .args([
            "probe",
            "prometheus",
            &format!("http://127.0.0.1:{port}"),
            "--query",
            "up=up",
        ])
        .run();
    assert_eq!(output.code, 1);
    assert!(
        output.stdout.contains("connection failed"),
        "{}",
        output.stdout
    );
}
