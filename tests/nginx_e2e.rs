//! End to end on real components: nginx (Debian) splits traffic between the two demo backends,
//! Prometheus (Debian) scrapes both, users' traffic goes through nginx, and `ion-plan run` moves
//! the weights with `plans/scripts/nginx-weights.sh` (rewrite the upstream file, `nginx -t`,
//! `nginx -s reload`; argv, no shell in the plan). A good canary is promoted and then takes every
//! request; a bad one is rolled back by the guard on exactly its third violation in a row, and
//! then every request reaches legacy.
//!
//! Ignored in a plain `cargo test`; `.ci/run` installs nginx and Prometheus and runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{Prometheus, free_port};
use common::{KillOnDrop, ion_plan, root, write};
use ion_plan::demo::{Backends, Ports, Traffic};
use serde_json::Value;

/// How many violations in a row the guard's memory condition needs; asserted from the journal.
const GUARD_STREAK: u64 = 3;

/// nginx in the foreground, from a temp dir (pid file, logs, temp paths), killed on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The flags that point every `nginx` command at this instance (the script's `NGINX_FLAGS`).
    fn flags(dir: &Path) -> Vec<String> {
        vec![
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            dir.join("nginx.conf").display().to_string(),
            "-e".into(),
            dir.join("error.log").display().to_string(),
        ]
    }

    fn upstream(&self) -> PathBuf {
        self.dir.join("upstream.conf")
    }

    /// Starts nginx proxying to the `checkout` upstream in `upstream.conf`, legacy only.
    fn start(dir: &Path, legacy: &str, canary: &str) -> Nginx {
        let port = free_port();
        for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("temp").join(temp)).unwrap();
        }
        let temp = dir.join("temp");
        let temp = temp.display();
        // As root (CI) the workers would switch to an unprivileged user that cannot read the temp
        // dir; elsewhere nginx ignores `user`.
        let user = if is_root() { "user root root;\n" } else { "" };
        write(
            dir,
            "nginx.conf",
            format!(
                "{user}worker_processes 1;
pid {pid};
error_log {log} warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {upstream};
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://checkout;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
",
                pid = dir.join("nginx.pid").display(),
                log = dir.join("error.log").display(),
                upstream = dir.join("upstream.conf").display(),
            ),
        );
        write(
            dir,
            "upstream.conf",
            format!(
                "upstream checkout {{\n    server {legacy} weight=1000;\n    server {canary} weight=1 down;\n}}\n"
            ),
        );
        let child = Command::new("nginx")
            .args(Self::flags(dir))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the `nginx` binary (Debian package `nginx`)");
        let nginx = Nginx {
            child,
            dir: dir.to_owned(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The plan: `plans/nginx-canary.yaml` in miniature (seconds-long bakes), with Prometheus.
fn plan(nginx: &Nginx, backends: &Backends, prometheus: &Prometheus) -> String {
    let script = root().join("plans/scripts/nginx-weights.sh");
    let flags = Nginx::flags(&nginx.dir).join(" ");
    format!(
        r#"version: 1
name: nginx-e2e
vars:
  conf: {conf}
  legacy: {legacy}
  canary: {canary}
  prometheus: {prometheus}
  flags: "{flags}"
  pid: {pid}
probes:
  direct:
    load:
      targets:
        canary: http://${{{{ vars.canary }}}}/api/health
        legacy: http://${{{{ vars.legacy }}}}/api/health
      requests: 40
      concurrency: 4
      timeout: 2s
  prom:
    prometheus:
      url: ${{{{ vars.prometheus }}}}
      queries:
        memory: max(demo_memory_utilization{{backend="canary"}})
        error_rate: >-
          sum(rate(demo_requests_total{{backend="canary",code="500"}}[5s]))
          / sum(rate(demo_requests_total{{backend="canary"}}[5s]))
        p95: >-
          histogram_quantile(0.95,
          sum by (le) (rate(demo_request_duration_seconds_bucket{{backend="canary"}}[5s])))
gates:
  guard:
    at: every_check
    require:
      - check: prom.memory <= 85%
        consecutive: {GUARD_STREAK}
      - check: direct.canary.error_rate <= 5%
        consecutive: {GUARD_STREAK}
      - check: direct.canary.p95 <= direct.legacy.p95 * 5
        consecutive: {GUARD_STREAK}
    on_fail: rollback
  go:
    at: end
    require:
      - direct.canary.p95 <= 150ms
      - check: prom.error_rate <= 1%
        no_data: pass
      - check: prom.p95 <= 200ms
        no_data: pass
    on_fail: rollback
preflight:
  - name: nginx config is valid
    run: [{script}, --check]
    env: &nginx                         # as in plans/nginx-canary.yaml: one env for every call
      LEGACY_UPSTREAM: ${{{{ vars.legacy }}}}
      CANARY_UPSTREAM: ${{{{ vars.canary }}}}
      NGINX_FLAGS: ${{{{ vars.flags }}}}
      NGINX_PID: ${{{{ vars.pid }}}}
  - name: both backends answer
    probe: direct
    with: {{ requests: 10 }}
    require: [direct.canary.error_rate == 0%, direct.legacy.error_rate == 0%]
defaults:
  steps:
    - name: set upstream weights
      run: [{script}, "${{{{ stage.traffic }}}}", "${{{{ vars.conf }}}}"]
      env: *nginx
      timeout: 10s
      retries: 1
      idempotent: true
  checks: {{ every: 1s, probes: [direct, prom] }}
  gates: [guard, go]
stages:
  - {{ name: canary-5, traffic: 5, bake: 10s }}
  - {{ name: canary-10, traffic: 10, bake: 3s }}
  - {{ name: canary-25, traffic: 25, bake: 3s }}
  - {{ name: canary-50, traffic: 50, bake: 3s }}
  - {{ name: full, traffic: 100, bake: 3s }}
rollback:
  - name: all traffic to legacy
    run: [{script}, "0", "${{{{ vars.conf }}}}"]
    env: *nginx
    timeout: 10s
    retries: 2
"#,
        conf = nginx.upstream().display(),
        legacy = backends.legacy,
        canary = backends.canary,
        prometheus = prometheus.url,
        script = script.display(),
        pid = nginx.dir.join("nginx.pid").display(),
    )
}

/// Everything one run needs, stopped on drop in reverse order.
struct Rig {
    dir: tempfile::TempDir,
    // Dropped first: users stop before the services they call.
    traffic: Option<Traffic>,
    prometheus: Option<Prometheus>,
    nginx: Nginx,
    backends: Option<Backends>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(traffic) = self.traffic.take() {
            traffic.stop();
        }
        if let Some(backends) = self.backends.take() {
            backends.stop();
        }
    }
}

impl Rig {
    /// The backends behind nginx, with users' traffic, and Prometheus scraping them if asked.
    fn start(bad_canary: bool, with_prometheus: bool) -> Rig {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let backends = runtime
            .block_on(Backends::start(bad_canary, Ports::default()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nginx = Nginx::start(
            dir.path(),
            &backends.legacy.to_string(),
            &backends.canary.to_string(),
        );
        let prometheus = with_prometheus.then(|| {
            Prometheus::start(&[backends.legacy.to_string(), backends.canary.to_string()])
        });
        let traffic = {
            let _entered = runtime.enter();
            Traffic::start(format!("{}/api/checkout", nginx.url()))
        };
        Rig {
            dir,
            traffic: Some(traffic),
            prometheus,
            nginx,
            backends: Some(backends),
            runtime,
        }
    }

    /// Runs the plan with the real binary; returns the exit code, the output and the journal.
    fn run(&self) -> (i32, String, Vec<Value>) {
        let backends = self.backends.as_ref().unwrap();
        let path = write(
            self.dir.path(),
            "plan.yaml",
            plan(&self.nginx, backends, self.prometheus.as_ref().unwrap()),
        );
        let output = ion_plan().arg("run").arg(&path).run();
        let log = format!("{}{}", output.stdout, output.stderr);
        let journal = common::journals(&self.dir.path().join(".ion-plan")).remove(0);
        let events = std::fs::read_to_string(journal)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (output.code, log, events)
    }

    /// `plans/scripts/nginx-weights.sh PERCENT` for this nginx and these backends.
    fn weights_script(&self, percent: &str) -> Command {
        let backends = self.backends.as_ref().unwrap();
        let mut command = Command::new(root().join("plans/scripts/nginx-weights.sh"));
        command
            .arg(percent)
            .arg(self.nginx.upstream())
            .env("LEGACY_UPSTREAM", backends.legacy.to_string())
            .env("CANARY_UPSTREAM", backends.canary.to_string())
            .env("NGINX_FLAGS", Nginx::flags(self.dir.path()).join(" "));
        command
    }

    /// Which backend answered each of `n` requests sent through nginx, each on a new connection.
    fn who_answers(&self, n: usize) -> Vec<String> {
        let url = format!("{}/api/checkout", self.nginx.url());
        self.runtime.block_on(async {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut answers = Vec::with_capacity(n);
            for _ in 0..n {
                let response = client.get(&url).send().await.unwrap();
                answers.push(
                    response
                        .headers()
                        .get("x-demo-backend")
                        .map_or("none", |v| v.to_str().unwrap())
                        .to_owned(),
                );
            }
            answers
        })
    }
}

/// The `event` objects of one kind, in order.
fn events<'a>(journal: &'a [Value], kind: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter_map(|record| record["event"].get(kind))
        .collect()
}

#[test]
#[ignore = "needs nginx and prometheus; .ci/run installs them and runs this"]
fn a_good_canary_behind_nginx_is_promoted_and_takes_all_traffic() {
    let rig = Rig::start(false, true);
    let (code, log, journal) = rig.run();
    assert_eq!(code, 0, "{log}");
    let traffic: Vec<f64> = events(&journal, "stage_started")
        .iter()
        .map(|s| s["traffic"].as_f64().unwrap())
        .collect();
    assert_eq!(traffic, [5.0, 10.0, 25.0, 50.0, 100.0], "{log}");
    // Every stage's step rewrote the weights and reloaded nginx.
    let steps: Vec<&Value> = events(&journal, "step_finished")
        .into_iter()
        .filter(|s| s["phase"] == "stage")
        .collect();
    assert_eq!(steps.len(), 5, "{log}");
    assert!(steps.iter().all(|s| s["ok"] == true), "{log}");
    assert!(
        steps[0]["detail"]
            .as_str()
            .unwrap()
            .contains("canary at 5%"),
        "{log}"
    );
    // The script waited until nginx ran workers with the new weights.
    assert!(
        steps
            .iter()
            .all(|s| s["detail"].as_str().unwrap().ends_with("; nginx reloaded")),
        "{log}"
    );
    // Prometheus answered: its samples carry the canary's memory.
    let memory = events(&journal, "sample_taken")
        .iter()
        .find_map(|s| s["sample"]["metrics"]["memory"]["value"].as_f64());
    assert_eq!(memory, Some(0.48), "{log}");
    // ...and the latency histogram and request counters, through PromQL: a p95 in the demo's
    // buckets (4 ms of work: 5 or 10 ms) and no errors.
    let values = |name: &str| -> Vec<f64> {
        events(&journal, "sample_taken")
            .iter()
            .filter_map(|s| s["sample"]["metrics"][name]["value"].as_f64())
            .collect()
    };
    let p95 = values("p95");
    assert!(!p95.is_empty(), "{log}");
    assert!(p95.iter().all(|v| *v > 0.0 && *v <= 0.025), "{p95:?}");
    let error_rate = values("error_rate");
    assert!(!error_rate.is_empty(), "{log}");
    assert!(error_rate.iter().all(|v| *v == 0.0), "{error_rate:?}");
    assert!(events(&journal, "gate_failed").is_empty(), "{log}");
    assert!(
        std::fs::read_to_string(rig.nginx.upstream())
            .unwrap()
            .contains("weight=1000;\n"),
        "canary at 100%"
    );
    let answers = rig.who_answers(100);
    assert!(answers.iter().all(|a| a == "canary"), "{answers:?}");
}

#[test]
#[ignore = "needs nginx and prometheus; .ci/run installs them and runs this"]
fn a_bad_canary_behind_nginx_is_rolled_back_after_exactly_n_violations() {
    let rig = Rig::start(true, true);
    let (code, log, journal) = rig.run();
    assert_eq!(code, 3, "{log}");

    // The guard fired once, at one check, on the N-th violation in a row of each condition
    // that fired: N violations counted 1..N in one stage, with a pass (or the stage's start)
    // before them.
    let guard: Vec<&Value> = events(&journal, "evaluated")
        .into_iter()
        .filter(|e| e["evaluation"]["gate"] == "guard")
        .collect();
    let fired: Vec<&Value> = guard
        .iter()
        .copied()
        .filter(|e| e["evaluation"]["fired"] == true)
        .collect();
    assert!(!fired.is_empty(), "{log}");
    let streak = usize::try_from(GUARD_STREAK).unwrap();
    for firing in &fired {
        assert_eq!(
            (&firing["stage"], &firing["check"]),
            (&fired[0]["stage"], &fired[0]["check"]),
            "one check fired: {log}"
        );
        let condition = &firing["evaluation"]["condition"];
        let history: Vec<&Value> = guard
            .iter()
            .copied()
            .filter(|e| &e["evaluation"]["condition"] == condition)
            .collect();
        let at = history.iter().position(|e| e == firing).unwrap();
        assert_eq!(at + 1, history.len(), "nothing after the firing: {log}");
        assert!(at + 1 >= streak, "{log}");
        for (k, e) in history[at + 1 - streak..=at].iter().enumerate() {
            assert_eq!(e["stage"], firing["stage"], "{log}");
            assert_eq!(e["evaluation"]["outcome"], "violation", "{log}");
            assert_eq!(e["evaluation"]["streak"]["count"], k as u64 + 1, "{log}");
            assert_eq!(e["evaluation"]["fired"], k + 1 == streak, "{log}");
        }
        if at >= streak {
            let before = &history[at - streak];
            assert!(
                before["stage"] != firing["stage"] || before["evaluation"]["outcome"] == "pass",
                "{before}"
            );
        }
    }
    // What the guard saw is the regression: the canary's memory from Prometheus, its error
    // rate measured directly.
    let memory = guard
        .iter()
        .filter(|e| e["evaluation"]["condition"] == "prom.memory <= 85%")
        .filter_map(|e| e["evaluation"]["value"].as_f64())
        .fold(0.0, f64::max);
    assert!((memory - 0.91).abs() < 1e-9, "{log}");
    let failed = events(&journal, "gate_failed");
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["gate"], "guard");
    assert_eq!(failed[0]["action"], "rollback");

    // The rollback step rewrote the weights (canary down) and reloaded nginx.
    let rollback: Vec<&Value> = events(&journal, "step_finished")
        .into_iter()
        .filter(|s| s["phase"] == "rollback")
        .collect();
    assert_eq!(rollback.len(), 1, "{log}");
    assert_eq!(rollback[0]["ok"], true, "{log}");
    assert!(
        rollback[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("canary at 0% (weights legacy=1000 canary=1); nginx reloaded"),
        "{log}"
    );
    assert_eq!(events(&journal, "rolled_back").len(), 1, "{log}");
    let upstream = std::fs::read_to_string(rig.nginx.upstream()).unwrap();
    assert!(upstream.contains("weight=1 down;"), "{upstream}");

    // Users are back on legacy: every request through nginx reaches it.
    let answers = rig.who_answers(200);
    assert!(answers.iter().all(|a| a == "legacy"), "{answers:?}");
}

#[test]
#[ignore = "needs nginx; .ci/run installs it and runs this"]
fn a_weights_file_nginx_rejects_is_put_back_and_nginx_keeps_serving() {
    let rig = Rig::start(false, false);
    let (dir, nginx) = (rig.dir.path(), &rig.nginx);
    let before = std::fs::read_to_string(nginx.upstream()).unwrap();
    let output = rig
        .weights_script("25")
        .env("CANARY_UPSTREAM", "127.0.0.1:99999")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("previous file is back"), "{stderr}");
    assert_eq!(std::fs::read_to_string(nginx.upstream()).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("upstream.conf."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let answers = rig.who_answers(20);
    assert!(answers.iter().all(|a| a == "legacy"), "{answers:?}");
}

/// `nginx -s reload` only sends a signal. The script waits until the master runs new workers,
/// and fails the step when none comes: here the pid file names a process whose children never
/// change, as a master that could not apply the new configuration.
#[test]
#[ignore = "needs nginx; .ci/run installs it and runs this"]
fn a_reload_that_never_takes_fails_the_step() {
    let rig = Rig::start(false, false);
    let mut stuck = KillOnDrop(
        Command::new("sh")
            .args(["-c", "sleep 20 & wait"])
            .spawn()
            .unwrap(),
    );
    // Let it start its child.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Command::new("pgrep")
        .args(["-P", &stuck.0.id().to_string()])
        .output()
        .is_ok_and(|o| o.stdout.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "the stand-in master has no child"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid_file = write(rig.dir.path(), "stuck.pid", stuck.0.id().to_string());
    let started = Instant::now();
    let output = rig
        .weights_script("25")
        .env("NGINX_PID", &pid_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not start workers"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(5));
    let _ = stuck.0.kill();
}
