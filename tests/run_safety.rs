//! Safety rules of a live run against hostile outside text (`docs/plan.md`, "Secrets" and
//! "Outside text"): servers that echo secrets, redirect to another origin, or never stop
//! sending; programs that print secrets and control characters.

mod common;

use std::path::Path;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use common::server::{TestServer, fixed, serve};
use common::{Output, ion_plan, script, write};

/// The secret in the environment: 32 characters.
const TOKEN: &str = "tok-0123456789abcdefghijklmnopqr";
/// A literal secret header value in the plan.
const API_KEY: &str = "key-ZYXWVUTSRQPONMLKJIHGFEDC";
/// A literal value of a header the plan marks `secret: true`.
const SESSION: &str = "sess-marked-secret-0987654321";

/// Answers 500 with the request's `Authorization` and `X-Api-Key` placed so that both a cut at
/// the body's first 300 and at its last 200 bytes fall inside them.
/// On `/session`, the same with `X-Session`.
fn echo_headers() -> Router {
    Router::new().fallback(any(|uri: axum::http::Uri, headers: HeaderMap| async move {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let body = if uri.path() == "/session" {
            format!("{}sess={}", "p".repeat(285), header("x-session"))
        } else {
            format!(
                "{}auth={} key={}{}",
                "p".repeat(280),
                header("authorization"),
                header("x-api-key"),
                "s".repeat(190)
            )
        };
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    }))
}

/// Every 8-character piece of a secret that `text` holds.
fn leaks<'a>(text: &str, secret: &'a str) -> Vec<&'a str> {
    (0..=secret.len() - 8)
        .map(|i| &secret[i..i + 8])
        .filter(|piece| text.contains(piece))
        .collect()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, API_KEY, SESSION] {
        let found = leaks(text, secret);
        assert!(found.is_empty(), "{what} leaks {found:?}:\n{text}");
    }
}

fn journal_text(dir: &Path) -> String {
    common::journals(&dir.join(".ion-plan"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn everything(output: &Output) -> String {
    format!("{}{}", output.stdout, output.stderr)
}

/// Probes of both kinds against the echoing server, a step printing the secret, and two
/// webhooks.
fn secrets_plan(echo: &TestServer, hooks: &TestServer) -> String {
    format!(
        "\
version: 1
name: secrets
probes:
  echo:
    http:
      url: {echo}
      headers:
        Authorization: \"Bearer ${{{{ env.ION_TOKEN }}}}\"
        X-Api-Key: {API_KEY}
  prom:
    prometheus:
      url: {base}
      headers:
        Authorization: \"Bearer ${{{{ env.ION_TOKEN }}}}\"
        X-Api-Key: {API_KEY}
      queries: {{ up: up }}
  session:
    http:
      url: {session}
      headers: {{ X-Session: {{ value: {SESSION}, secret: true }} }}
gates:
  go:
    at: end
    require: [echo.status == 200, prom.up == 1, session.status == 200]
    on_fail: rollback
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [./print.sh]
        env: {{ SECRET: \"${{{{ env.ION_TOKEN }}}}\" }}
    checks: {{ at: [0s], probes: [echo, prom, session] }}
    gates: [go]
rollback:
  - run: [./log.sh, rollback]
notify:
  - url: {json_hook}
    format: json
  - url: {slack_hook}
    format: slack
",
        echo = echo.url("/stats"),
        base = echo.url(""),
        session = echo.url("/session"),
        json_hook = hooks.url("/json"),
        slack_hook = hooks.url("/slack"),
    )
}

#[test]
fn secrets_never_leave_through_probe_errors_step_output_reports_status_or_webhooks() {
    let echo = serve(echo_headers());
    let hooks = serve(fixed(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    // Over 400 characters, with the secret across the point where a 400-character tail starts.
    script(
        dir.path(),
        "print.sh",
        "printf '%s' \"$(printf 'A%.0s' $(seq 500))${SECRET}$(printf 'B%.0s' $(seq 384))\"",
    );
    script(dir.path(), "log.sh", "echo \"$*\" >> log.txt");
    let plan = secrets_plan(&echo, &hooks);
    let path = write(dir.path(), "plan.yaml", plan);
    let run = ion_plan()
        .arg("run")
        .arg(&path)
        .env("ION_TOKEN", TOKEN)
        .run();
    assert_eq!(run.code, 3, "{}", everything(&run));
    // The server saw the real secrets, so there was something to leak.
    let hits = echo.hits();
    assert!(hits.iter().any(|h| h.path == "/api/v1/query"), "{hits:?}");
    let stats = hits.iter().find(|h| h.path == "/stats").unwrap();
    assert_eq!(stats.headers["x-api-key"], API_KEY);
    assert_no_secret("run", &everything(&run));
    let json_run = ion_plan()
        .arg("run")
        .arg(&path)
        .args(["--json", "--restart"])
        .env("ION_TOKEN", TOKEN)
        .run();
    assert_eq!(json_run.code, 3, "{}", everything(&json_run));
    assert_no_secret("run --json", &everything(&json_run));
    // The redacted answers are still there to read.
    let journal = journal_text(dir.path());
    assert!(journal.contains("answered 500"), "{journal}");
    assert!(journal.contains("auth=*** key=***"), "{journal}");
    assert!(journal.contains("sess=***"), "{journal}");
    assert!(journal.contains("BBBB"), "{journal}");
    assert_no_secret("the journal", &journal);
    for args in [
        &["report", "--format=md"][..],
        &["report", "--format=json"],
        &["status"],
        &["status", "--json"],
    ] {
        let output = ion_plan().args(args).arg(&path).run();
        assert!(
            output.code == 0 || output.code == 3,
            "{args:?}: {}",
            everything(&output)
        );
        assert_no_secret(&format!("{args:?}"), &everything(&output));
    }
    let bodies = |path: &str| -> String {
        hooks
            .hits()
            .iter()
            .filter(|h| h.path == path)
            .map(|h| h.body.clone())
            .collect()
    };
    let (json, slack) = (bodies("/json"), bodies("/slack"));
    assert!(json.contains("answered 500"), "{json}");
    assert!(slack.contains("rolled back"), "{slack}");
    assert_no_secret("the JSON webhook", &json);
    assert_no_secret("the Slack webhook", &slack);
}

/// Redirects every request to the same path on `to`: `/307/…` with 307, anything else with 302.
fn redirect_to(to: String) -> Router {
    Router::new().fallback(any(move |uri: axum::http::Uri| {
        let to = to.clone();
        async move {
            let status = if uri.path().starts_with("/307") {
                StatusCode::TEMPORARY_REDIRECT
            } else {
                StatusCode::FOUND
            };
            (
                status,
                [(axum::http::header::LOCATION, format!("{to}{uri}"))],
                "moved",
            )
        }
    }))
}

#[test]
fn probes_never_send_plan_headers_to_another_origin_on_a_redirect() {
    let elsewhere = serve(fixed(200, "{}"));
    let first = serve(redirect_to(elsewhere.url("")));
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "\
version: 1
name: redirects
probes:
  web:
    http:
      url: {web}
      headers: {{ X-Api-Key: {API_KEY} }}
      expect_status: 302
  web307:
    http:
      url: {web307}
      method: POST
      headers: {{ X-Api-Key: {API_KEY} }}
      body: probe-body-for-the-first-origin
      expect_status: 307
  prom:
    prometheus:
      url: {base}
      headers: {{ X-Api-Key: {API_KEY} }}
      queries: {{ up: up }}
gates:
  go:
    at: end
    require: [web.status == 302, web307.status == 307]
stages:
  - name: all
    traffic: 100
    bake: 0s
    checks: {{ at: [0s], probes: [web, web307, prom] }}
    gates: [go]
",
        web = first.url("/stats"),
        web307 = first.url("/307/stats"),
        base = first.url(""),
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    let seen = elsewhere.hits();
    assert!(
        seen.iter().all(|h| !h.headers.contains_key("x-api-key")),
        "the key reached another origin: {seen:?}"
    );
    assert!(
        seen.iter().all(|h| !h.body.contains("probe-body")),
        "a probe's body reached another origin: {seen:?}"
    );
    // Each asked the first server, and took its 3xx as the answer.
    let asked: Vec<String> = first.hits().iter().map(|h| h.path.clone()).collect();
    for path in ["/stats", "/307/stats", "/api/v1/query"] {
        assert!(
            asked.iter().any(|p| p == path),
            "{path} not asked: {asked:?}"
        );
    }
    assert_eq!(output.code, 0, "{}", everything(&output));
    assert!(
        output.stdout.contains("answered 302"),
        "the Prometheus probe's answer: {}",
        output.stdout
    );
}

#[test]
fn steps_follow_no_redirect_and_a_3xx_is_not_2xx() {
    let elsewhere = serve(fixed(200, "{}"));
    let first = serve(redirect_to(elsewhere.url("")));
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "\
version: 1
name: redirects
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - http:
          method: PUT
          url: {url}
          headers: {{ X-Api-Key: {API_KEY} }}
          body: weights-body-for-the-first-origin
",
        url = first.url("/307/weights"),
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let output = ion_plan().arg("run").arg(&path).run();
    let seen = elsewhere.hits();
    assert!(
        seen.iter()
            .all(|h| !h.headers.contains_key("x-api-key") && !h.body.contains("weights-body")),
        "the step's key or body reached another origin: {seen:?}"
    );
    assert_eq!(first.hits().len(), 1);
    assert_eq!(first.hits()[0].body, "weights-body-for-the-first-origin");
    assert_eq!(output.code, 3, "{}", everything(&output));
    assert!(
        output.stdout.contains("answered 307, expected 2xx"),
        "{}",
        output.stdout
    );
}

/// Answers 200 with a chunked body that never ends.
fn endless() -> Router {
    Router::new().fallback(any(|| async {
        let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
        axum::body::Body::from_stream(futures_util::stream::repeat_with(move || {
            Ok::<_, std::io::Error>(chunk.clone())
        }))
    }))
}

#[test]
fn an_endless_body_is_cut_at_the_cap_for_prometheus_and_load_probes() {
    let server = serve(endless());
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "\
version: 1
name: endless
probes:
  prom:
    prometheus: {{ url: \"{base}\", queries: {{ up: up }}, timeout: 3s }}
    timeout: 3s
  load:
    load: {{ targets: {{ canary: \"{base}/health\" }}, requests: 2, timeout: 3s }}
    timeout: 3s
stages:
  - name: all
    traffic: 100
    bake: 0s
    checks: {{ at: [0s], probes: [prom, load] }}
",
        base = server.url(""),
    );
    let path = write(dir.path(), "plan.yaml", plan);
    // Timeouts of seconds: without the cap the probes would end by them, with another error.
    let output = ion_plan().arg("run").arg(&path).arg("--json").run();
    assert_eq!(output.code, 0, "{}", everything(&output));
    let sample = |probe: &str| -> serde_json::Value {
        output
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|e| {
                let sample = &e["event"]["sample_taken"]["sample"];
                (sample["probe"] == probe).then(|| sample.clone())
            })
            .unwrap_or_else(|| panic!("no sample of {probe}: {}", output.stdout))
    };
    let prom = sample("prom");
    assert!(prom.to_string().contains("response over 4 MiB"), "{prom}");
    let load = sample("load");
    assert_eq!(load["metrics"]["canary.errors"]["value"], 2.0, "{load}");
    // The kind, as `probe load` reports it.
    let report = ion_plan()
        .args([
            "probe",
            "load",
            "--json",
            "--requests",
            "2",
            "--timeout",
            "3s",
        ])
        .args(["--target", &format!("canary={}", server.url("/health"))])
        .run();
    assert_eq!(report.code, 0, "{}", everything(&report));
    let report = report.json();
    let kinds = &report["targets"]["canary"]["errors_by_kind"];
    assert_eq!(kinds["body_too_large"], 2, "{report}");
}

/// No raw ESC, CR or other control character but newlines, and no line that starts a CI
/// workflow command.
fn assert_printable(what: &str, text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{what} has a raw control character: {text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("::")),
        "{what} starts a workflow command: {text}"
    );
}

/// A Prometheus-like server whose error is hostile text.
const HOSTILE_PROMETHEUS: &str = r#"{"status":"error","errorType":"bad_data","error":"\n::error::pwned\r\u001b[31m <!channel> <http://evil.example|click> <script>alert(1)</script>"}"#;

#[test]
fn outside_text_is_escaped_on_terminals_in_markdown_and_for_slack() {
    let prometheus = serve(fixed(200, HOSTILE_PROMETHEUS));
    let hooks = serve(fixed(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "metrics.sh",
        r#"printf '%s' '{"ok\u001b[2J\u202e": 1, "::error::metric": 2}'"#,
    );
    script(
        dir.path(),
        "hostile.sh",
        r"printf 'first\n::error::step\r\033[31m<script>alert(2)</script>|cell'",
    );
    let plan = format!(
        "\
version: 1
name: outside
probes:
  prom:
    prometheus: {{ url: \"{base}\", queries: {{ up: up }} }}
  cmd:
    command: [./metrics.sh]
gates:
  go:
    at: end
    require: [prom.up == 1]
stages:
  - name: all
    traffic: 100
    bake: 0s
    steps:
      - run: [./hostile.sh]
    checks: {{ at: [0s], probes: [prom, cmd] }}
    gates: [go]
notify:
  - url: {slack}
    format: slack
",
        base = prometheus.url(""),
        slack = hooks.url("/slack"),
    );
    let path = write(dir.path(), "plan.yaml", plan);
    let run = ion_plan().arg("run").arg(&path).run();
    assert_eq!(run.code, 3, "{}", everything(&run));
    // The hostile text is there, shown, not acted on.
    assert!(run.stdout.contains("\\::error::step") || run.stdout.contains("\\n::error::step"));
    assert!(run.stdout.contains("\\x1b[31m"), "{}", run.stdout);
    assert!(
        run.stdout.contains("ok\\x1b[2J\\u{202e}=1"),
        "{}",
        run.stdout
    );
    assert_printable("run's stdout", &run.stdout);
    assert_printable("run's stderr", &run.stderr);
    let status = ion_plan().arg("status").arg(&path).run();
    assert!(status.stdout.contains("pwned"), "{}", everything(&status));
    assert_printable("status", &everything(&status));
    let report = ion_plan().args(["report", "--format=md"]).arg(&path).run();
    assert!(
        report.stdout.contains("&lt;script&gt;"),
        "{}",
        report.stdout
    );
    assert!(!report.stdout.contains("<script>"), "{}", report.stdout);
    assert!(!report.stdout.contains("<!channel>"), "{}", report.stdout);
    assert_printable("the md report", &report.stdout);
    let slack: String = hooks.hits().iter().map(|h| h.body.clone()).collect();
    assert!(slack.contains("&lt;!channel&gt;"), "{slack}");
    assert!(!slack.contains("<!channel>"), "{slack}");
    assert!(!slack.contains("<http"), "{slack}");
}

#[test]
fn a_scenario_abort_reason_is_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "shift.sh", "true");
    let plan = "\
version: 1
name: outside
stages:
  - { name: all, traffic: 100, bake: 1h }
rollback:
  - run: [./shift.sh]
";
    let path = write(dir.path(), "plan.yaml", plan);
    let scenario = write(
        dir.path(),
        "scenario.yaml",
        "version: 1\nabort: { at: 10m, reason: \"x\\n::error::abort\\r\\e[31m\\u202E\", by: \"eve\\e[2J\" }\n",
    );
    let run = ion_plan()
        .arg("run")
        .arg(&path)
        .arg("--scenario")
        .arg(&scenario)
        .run();
    assert_eq!(run.code, 3, "{}", everything(&run));
    assert!(
        run.stdout
            .contains("x\\n::error::abort\\r\\x1b[31m\\u{202e}"),
        "{}",
        run.stdout
    );
    assert_printable("the scenario's output", &everything(&run));
}
