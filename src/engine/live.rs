//! A live run's seams: real probes, real programs and HTTP calls, and a person at the terminal.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::engine::clock::Clock;
use crate::engine::context::{Resolver, StageRef};
use crate::engine::redact::Redactor;
use crate::engine::{
    CheckContext, Control, ControlSource, Sampler, StepContext, StepResult, StepRunner,
};
use crate::journal::inbox::Inbox;
use crate::plan::model::{HttpStep, Method, Plan, ProbeKind, Step};
use crate::plan::units::PlanDuration;
use crate::probe::command::{CommandProbe, program_path};
use crate::probe::http::{HttpProbe, Request};
use crate::probe::prometheus::PrometheusProbe;
use crate::probe::{Sample, tail};

/// The default timeout of a step's attempt.
pub const STEP_TIMEOUT: Duration = Duration::from_mins(10);
/// The default timeout of a probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_mins(1);
/// The default timeout of one HTTP request of a probe.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by every live seam.
#[derive(Clone)]
pub struct Live {
    pub plan: Arc<Plan>,
    pub resolver: Arc<Resolver>,
    /// The run's secrets, to redact from everything that leaves the runner.
    pub redact: Arc<Redactor>,
    /// The plan's folder: where programs run and `./relative` paths point.
    pub dir: PathBuf,
    /// For probes: follows redirects within one origin only.
    pub client: reqwest::Client,
    /// For steps: follows no redirect (a 3xx is the step's answer), so a step's headers and body
    /// go only where the plan says.
    pub step_client: reqwest::Client,
}

impl Live {
    pub fn new(plan: Arc<Plan>, resolver: Resolver, dir: PathBuf) -> Result<Live, String> {
        let client = |redirects| {
            reqwest::Client::builder()
                .user_agent(concat!("ion-plan/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .redirect(redirects)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        let step_client = client(reqwest::redirect::Policy::none())?;
        let client = client(crate::probe::http::same_origin_redirects())?;
        let redact = Arc::new(Redactor::for_run(&plan, &resolver));
        Ok(Live {
            plan,
            resolver: Arc::new(resolver),
            redact,
            dir,
            client,
            step_client,
        })
    }

    fn fill(&self, text: &str, stage: Option<StageRef<'_>>) -> Result<(String, String), String> {
        self.resolver
            .fill(text, stage)
            .map(|filled| (filled.value, filled.redacted))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one request, shared by probes and steps"
    )]
    fn request(
        &self,
        method: Option<Method>,
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        body: Option<&str>,
        timeout: Duration,
        expect_status: Option<u16>,
        stage: Option<StageRef<'_>>,
    ) -> Result<Request, String> {
        let (url, shown_url) = self.fill(url, stage)?;
        let headers = headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), self.fill(value, stage)?.0)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = body.map(|b| self.fill(b, stage).map(|f| f.0)).transpose()?;
        Ok(Request {
            method: crate::probe::http::method(method.unwrap_or_default()),
            url,
            shown_url,
            headers,
            body,
            timeout,
            expect_status,
            redact: Arc::clone(&self.redact),
        })
    }

    async fn take_sample(&self, name: &str, context: CheckContext<'_>) -> Result<Sample, String> {
        let probe = self
            .plan
            .probes
            .get(name)
            .ok_or_else(|| format!("probe `{name}` is not defined"))?;
        let stage = context.stage.map(|s| StageRef {
            name: s,
            traffic: context.traffic,
        });
        let overall = probe
            .timeout
            .map_or(PROBE_TIMEOUT, PlanDuration::as_duration);
        let sample = match probe.kind() {
            Some(ProbeKind::Command(argv)) => {
                let filled = argv
                    .iter()
                    .map(|a| self.fill(&a.0, stage))
                    .collect::<Result<Vec<_>, _>>()?;
                let probe = CommandProbe {
                    name: name.to_owned(),
                    argv: filled.iter().map(|f| f.0.clone()).collect(),
                    shown: filled.into_iter().map(|f| f.1).collect(),
                    dir: self.dir.clone(),
                    timeout: overall,
                    redact: Arc::clone(&self.redact),
                };
                probe.sample().await
            }
            Some(ProbeKind::Http(http)) => {
                let timeout = http
                    .timeout
                    .map_or(REQUEST_TIMEOUT, PlanDuration::as_duration)
                    .min(overall);
                let probe = HttpProbe {
                    name: name.to_owned(),
                    request: self.request(
                        http.method,
                        &http.url,
                        &http.headers,
                        http.body.as_deref(),
                        timeout,
                        http.expect_status.map(|s| s.0),
                        stage,
                    )?,
                    metrics: http
                        .metrics
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                };
                with_deadline(name, overall, probe.sample(&self.client)).await
            }
            Some(ProbeKind::Prometheus(prometheus)) => {
                let (url, shown_url) = self.fill(&prometheus.url, stage)?;
                let probe = PrometheusProbe {
                    name: name.to_owned(),
                    url,
                    shown_url,
                    headers: prometheus
                        .headers
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.fill(v, stage)?.0)))
                        .collect::<Result<_, String>>()?,
                    queries: prometheus
                        .queries
                        .iter()
                        .map(|(k, q)| Ok((k.clone(), self.fill(q, stage)?.0)))
                        .collect::<Result<_, String>>()?,
                    timeout: prometheus
                        .timeout
                        .map_or(REQUEST_TIMEOUT, PlanDuration::as_duration)
                        .min(overall),
                    redact: Arc::clone(&self.redact),
                };
                with_deadline(name, overall, probe.sample(&self.client)).await
            }
            Some(ProbeKind::Load(load)) => {
                let probe = crate::probe::load::LoadProbe::from_plan(
                    name,
                    load,
                    context.overrides,
                    |text| self.fill(text, stage),
                )?;
                with_deadline(
                    name,
                    overall.max(probe.expected_duration() * 2),
                    probe.sample(),
                )
                .await
            }
            None => return Err(format!("probe `{name}` sets no kind")),
        };
        Ok(sample)
    }
}

async fn with_deadline(
    name: &str,
    limit: Duration,
    sample: impl std::future::Future<Output = Sample>,
) -> Sample {
    tokio::time::timeout(limit, sample)
        .await
        .unwrap_or_else(|_| {
            Sample::failed(
                name,
                format!(
                    "probe timed out after {}",
                    crate::plan::units::format_duration(limit)
                ),
            )
        })
}

impl Sampler for Live {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        Box::pin(async move {
            match self.take_sample(probe, context).await {
                Ok(sample) => sample,
                Err(error) => Sample::failed(probe, error),
            }
        })
    }
}

impl Live {
    fn stage_ref<'a>(context: &StepContext<'a>) -> Option<StageRef<'a>> {
        context.stage.map(|name| StageRef {
            name,
            traffic: context.traffic,
        })
    }

    fn http_request(
        &self,
        http: &HttpStep,
        step: &Step,
        context: &StepContext<'_>,
    ) -> Result<Request, String> {
        self.request(
            http.method,
            &http.url,
            &http.headers,
            http.body.as_deref(),
            step.timeout.map_or(
                STEP_TIMEOUT,
                super::super::plan::units::PlanDuration::as_duration,
            ),
            http.expect_status.map(|s| s.0),
            Self::stage_ref(context),
        )
    }

    async fn run_program(
        &self,
        argv: &[String],
        step: &Step,
        context: &StepContext<'_>,
    ) -> StepResult {
        let stage = Self::stage_ref(context);
        let Some((program, args)) = argv.split_first() else {
            return failed("empty command");
        };
        let mut command = tokio::process::Command::new(program_path(&self.dir, program));
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in &step.env {
            match self.fill(value, stage) {
                Ok((value, _)) => {
                    command.env(name, value);
                }
                Err(e) => return failed(e),
            }
        }
        let timeout = step.timeout.map_or(
            STEP_TIMEOUT,
            super::super::plan::units::PlanDuration::as_duration,
        );
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return failed(format!("cannot start `{program}`: {e}")),
        };
        let mut out = child.stdout.take().expect("piped").take(1 << 20);
        let mut err = child.stderr.take().expect("piped").take(1 << 20);
        let run = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let (_, _, status) = tokio::join!(
                out.read_to_end(&mut stdout),
                err.read_to_end(&mut stderr),
                child.wait()
            );
            (status, stdout, stderr)
        };
        match tokio::time::timeout(timeout, run).await {
            Err(_) => failed(format!(
                "timed out after {} (killed)",
                crate::plan::units::format_duration(timeout)
            )),
            Ok((Err(e), _, _)) => failed(format!("waiting for the program: {e}")),
            Ok((Ok(status), stdout, stderr)) => {
                let output = format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&stdout).trim_end(),
                    String::from_utf8_lossy(&stderr).trim_end()
                );
                let output = tail(&self.redact.redact(output.trim()), 400).to_owned();
                let detail = match (status.code(), output.is_empty()) {
                    (Some(code), true) => format!("exit {code}"),
                    (Some(code), false) => format!("exit {code}: {output}"),
                    (None, _) => format!("{status}: {output}"),
                };
                StepResult {
                    ok: status.success(),
                    detail,
                }
            }
        }
    }
}

fn failed(detail: impl Into<String>) -> StepResult {
    StepResult {
        ok: false,
        detail: detail.into(),
    }
}

impl StepRunner for Live {
    fn describe(&self, step: &Step, context: StepContext<'_>) -> String {
        describe_step(&self.resolver, step, context)
    }

    fn run<'a>(&'a self, step: &'a Step, context: StepContext<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if let Some(run) = &step.run {
                let argv: Result<Vec<String>, String> = run
                    .iter()
                    .map(|a| self.fill(&a.0, Self::stage_ref(&context)).map(|f| f.0))
                    .collect();
                return match argv {
                    Ok(argv) => self.run_program(&argv, step, &context).await,
                    Err(e) => failed(e),
                };
            }
            if let Some(http) = &step.http {
                return match self.http_request(http, step, &context) {
                    Ok(request) => match request.send(&self.step_client).await {
                        Ok(response) => StepResult {
                            ok: true,
                            detail: format!("HTTP {}", response.status),
                        },
                        Err(e) => failed(self.redact.redact(&e)),
                    },
                    Err(e) => failed(e),
                };
            }
            failed("the step has neither `run` nor `http`")
        })
    }
}

/// A step as it may be printed: the argv joined (each element quoted when it has spaces), or the
/// method and URL; secrets as `***`.
pub fn describe_step(resolver: &Resolver, step: &Step, context: StepContext<'_>) -> String {
    let stage = context.stage.map(|name| StageRef {
        name,
        traffic: context.traffic,
    });
    let show = |text: &str| {
        resolver
            .fill(text, stage)
            .map_or_else(|_| text.to_owned(), |f| f.redacted)
    };
    if let Some(run) = &step.run {
        return run
            .iter()
            .map(|a| {
                let shown = show(&a.0);
                if shown.is_empty() || shown.contains(char::is_whitespace) {
                    format!("{shown:?}")
                } else {
                    shown
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Some(http) = &step.http {
        let method = format!("{:?}", http.method.unwrap_or_default()).to_uppercase();
        return format!("{method} {}", show(&http.url));
    }
    String::from("(empty step)")
}

/// Decisions for a live run: from the terminal (when stdin is a TTY, a line `approve` or `y`
/// approves and `abort REASON` aborts) and from the plan's inbox (`ion-plan approve`,
/// `ion-plan abort` in another shell), checked twice a second.
pub struct TerminalControl {
    /// `None` once nothing can send any more (no terminal, or stdin closed).
    receiver: Option<mpsc::UnboundedReceiver<Control>>,
    interactive: bool,
    inbox: Option<Inbox>,
}

/// How often the inbox is read while a run waits.
const INBOX_POLL: Duration = Duration::from_millis(500);

impl TerminalControl {
    /// Decisions from the terminal and, if given, the inbox.
    pub fn with_inbox(inbox: Option<Inbox>) -> TerminalControl {
        TerminalControl {
            inbox,
            ..TerminalControl::new()
        }
    }

    pub fn new() -> TerminalControl {
        let (sender, receiver) = mpsc::unbounded_channel();
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            std::thread::spawn(move || {
                let user = std::env::var("USER").unwrap_or_else(|_| "terminal".to_owned());
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    let line = line.trim();
                    let control = match line.split_once(' ').map_or((line, ""), |(a, b)| (a, b)) {
                        ("approve" | "y" | "yes", _) => Control::Approve {
                            by: user.clone(),
                            stage: None,
                            request: None,
                        },
                        ("abort", reason) => Control::Abort {
                            by: user.clone(),
                            reason: if reason.is_empty() {
                                "aborted at the terminal".to_owned()
                            } else {
                                reason.to_owned()
                            },
                            request: None,
                        },
                        _ => {
                            eprintln!("type `approve` or `abort REASON`");
                            continue;
                        }
                    };
                    if sender.send(control).is_err() {
                        break;
                    }
                }
            });
        }
        TerminalControl {
            receiver: interactive.then_some(receiver),
            interactive,
            inbox: None,
        }
    }
}

impl Default for TerminalControl {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlSource for TerminalControl {
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>> {
        Box::pin(async move {
            loop {
                if let Some(entry) = self.inbox.as_mut().and_then(Inbox::take) {
                    return Some(entry.control());
                }
                let now = clock.now();
                if now >= deadline {
                    return None;
                }
                // Wake for the inbox every half second while there is one.
                let until = if self.inbox.is_some() {
                    deadline.min(now + chrono::Duration::from_std(INBOX_POLL).unwrap_or_default())
                } else {
                    deadline
                };
                if let Some(receiver) = &mut self.receiver {
                    tokio::select! {
                        control = receiver.recv() => match control {
                            Some(control) => return Some(control),
                            // stdin closed: nobody types any more.
                            None => self.receiver = None,
                        },
                        () = clock.sleep_until(until) => {}
                    }
                } else {
                    clock.sleep_until(until).await;
                }
            }
        })
    }

    fn person_needed(&mut self, stage: &str, _at: DateTime<Utc>) {
        if self.interactive {
            eprintln!(
                "stage `{stage}` waits for you: type `approve`, or `abort REASON` (or use `ion-plan approve` elsewhere)"
            );
        }
    }

    fn can_answer(&self) -> bool {
        self.interactive || self.inbox.is_some()
    }

    fn poll(&mut self) -> Option<Control> {
        if let Some(control) = self.receiver.as_mut().and_then(|r| r.try_recv().ok()) {
            return Some(control);
        }
        self.inbox
            .as_mut()
            .and_then(Inbox::take)
            .map(|e| e.control())
    }
}
