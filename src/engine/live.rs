//! A live run's seams: real probes, real programs and HTTP calls, and a person at the terminal.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::engine::clock::Clock;
use crate::engine::context::{Resolver, StageRef};
use crate::engine::{
    Announce, BakeFor, CheckContext, Control, ControlSource, Sampler, StepContext, StepResult,
    StepRunner, WaitFor,
};
use crate::journal::inbox::{self, Entry, Inbox};
use crate::plan::model::{HttpStep, Method, Plan, Step};
use crate::probe::command::program_path;
use crate::probe::http::Request;
use crate::probe::{Sample, tail};
use crate::process;
use crate::redact::Redactor;

/// The default timeout of a step's attempt.
pub const STEP_TIMEOUT: Duration = Duration::from_mins(10);

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
    /// With a PostgreSQL store: checked right before each step's effect.
    pub hold: Option<crate::journal::postgres::Hold>,
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
            hold: None,
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
        headers: &std::collections::BTreeMap<String, crate::plan::model::HeaderValue>,
        body: Option<&str>,
        timeout: Duration,
        expect_status: Option<u16>,
        stage: Option<StageRef<'_>>,
    ) -> Result<Request, String> {
        let (url, shown_url) = self.fill(url, stage)?;
        let headers = headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), self.fill(&value.value, stage)?.0)))
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
        // A probe runs programs (`command`) and sends load (`load`, up to thousands of
        // requests): a runner thawed after its lease passed to another sends none of it.
        self.still_held()?;
        let spec = self
            .plan
            .probes
            .get(name)
            .ok_or_else(|| format!("probe `{name}` is not defined"))?;
        let stage = context.stage.map(|s| StageRef {
            name: s,
            traffic: context.traffic,
        });
        let fill = |text: &str| self.fill(text, stage);
        let limit = crate::probe::limit(spec);
        let setup = crate::probe::Setup {
            name,
            fill: &fill,
            dir: &self.dir,
            redact: &self.redact,
            timeout: limit,
            overrides: context.overrides,
        };
        let probe = crate::probe::build(spec, &setup)?;
        Ok(crate::probe::sample(name, probe.as_ref(), limit, &self.client).await)
    }
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

    /// A step's program in a process group of its own; `gated`: behind this binary's gate
    /// (see [`process`]).
    fn step_command(
        &self,
        program: &str,
        args: &[String],
        env: Vec<(&String, String)>,
        gated: bool,
    ) -> tokio::process::Command {
        let mut command = if gated {
            let mut command = tokio::process::Command::new(process::gate_program());
            command
                .arg(process::GATE_ARG)
                .arg("--")
                .arg(program_path(&self.dir, program))
                .stdin(Stdio::piped());
            command
        } else {
            let mut command = tokio::process::Command::new(program_path(&self.dir, program));
            command.stdin(Stdio::null());
            command
        };
        command
            .args(args)
            .envs(env)
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        command
    }

    /// The exit status and the tail of what a program printed, secrets scrubbed.
    fn output_detail(
        &self,
        status: std::process::ExitStatus,
        stdout: &[u8],
        stderr: &[u8],
    ) -> String {
        let output = format!(
            "{}\n{}",
            String::from_utf8_lossy(stdout).trim_end(),
            String::from_utf8_lossy(stderr).trim_end()
        );
        // Redacted before it is cut: a secret's tail must not survive the cut.
        let output = tail(&self.redact.redact(output.trim()), 400).to_owned();
        match (status.code(), output.is_empty()) {
            (Some(code), true) => format!("exit {code}"),
            (Some(code), false) => format!("exit {code}: {output}"),
            (None, _) => format!("{status}: {output}"),
        }
    }

    async fn run_program(
        &self,
        argv: &[String],
        step: &Step,
        context: &StepContext<'_>,
        mut announce: Announce,
    ) -> StepResult {
        let stage = Self::stage_ref(context);
        let Some((program, args)) = argv.split_first() else {
            announce.started(None).await;
            return failed("empty command");
        };
        let mut env = Vec::new();
        for (name, value) in &step.env {
            match self.fill(value, stage) {
                Ok((value, _)) => env.push((name, value)),
                Err(e) => {
                    announce.started(None).await;
                    return failed(e);
                }
            }
        }
        let gated = process::gated();
        let mut command = self.step_command(program, args, env, gated);
        let timeout = step.timeout.map_or(
            STEP_TIMEOUT,
            super::super::plan::units::PlanDuration::as_duration,
        );
        if !gated && !announce.started(None).await {
            return failed("not started: the start could not be journaled");
        }
        if !gated && let Err(e) = self.still_held() {
            return failed(e);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                announce.started(None).await;
                return failed(format!("cannot start `{program}`: {e}"));
            }
        };
        let group = process::Group::new(child.id().unwrap_or(0));
        if gated {
            // The group exists; its leader waits for the go. Journal first, then go.
            if !announce.started(Some(group.id())).await {
                return failed("not started: the start could not be journaled");
            }
            // Its group is ended unstarted when `group` drops.
            if let Err(e) = self.still_held() {
                return failed(e);
            }
            if let Some(mut gate) = child.stdin.take() {
                use tokio::io::AsyncWriteExt as _;
                let _ = gate.write_all(b"g").await;
            }
        }
        // Both streams are read to their ends in the background (a program that prints a lot
        // never blocks on a full pipe); the last 64 KiB of each are kept.
        let output = process::Collector::start(
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
            process::Keep::Tail(64 * 1024),
            process::Keep::Tail(64 * 1024),
        );
        let deadline = tokio::time::Instant::now() + timeout;
        let finished = tokio::time::timeout_at(deadline, child.wait()).await;
        // The leader is done; what it left in its group (a background job) is waited for up to
        // the timeout, then ended with the rest. A process that left the group (`setsid`) is not
        // the step's, even if it holds the step's output open.
        let left_behind = finished.is_ok()
            && !group
                .wait_gone(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        group.end().await;
        let (stdout, stderr) = output.finish(process::LINGER).await;
        if process::shutting_down() {
            // The runner is going down: this attempt is not journaled as finished, so a
            // resume sees it interrupted and asks before running it again.
            std::future::pending::<()>().await;
        }
        let status = match finished {
            Err(_) => {
                return failed(format!(
                    "timed out after {} (killed with its process group)",
                    crate::plan::units::format_duration(timeout),
                ));
            }
            Ok(Err(e)) => return failed(format!("waiting for the program: {e}")),
            Ok(Ok(status)) => status,
        };
        let (stdout, stderr) = (stdout.bytes, stderr.bytes);
        let mut detail = self.output_detail(status, &stdout, &stderr);
        if left_behind {
            let _ = write!(
                detail,
                " (processes it left running were ended at the step's timeout of {})",
                crate::plan::units::format_duration(timeout)
            );
            return failed(detail);
        }
        StepResult {
            ok: status.success(),
            detail,
        }
    }
}

fn failed(detail: impl Into<String>) -> StepResult {
    StepResult {
        ok: false,
        detail: detail.into(),
    }
}

impl Live {
    /// Whether this runner is still the plan's only one (always, with the state folder).
    fn still_held(&self) -> Result<(), String> {
        self.hold
            .as_ref()
            .map_or(Ok(()), crate::journal::postgres::Hold::check)
    }
}

impl StepRunner for Live {
    fn describe(&self, step: &Step, context: StepContext<'_>) -> String {
        describe_step(&self.resolver, step, context)
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        context: StepContext<'a>,
        mut announce: Announce,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            if let Some(run) = &step.run {
                let argv: Result<Vec<String>, String> = run
                    .iter()
                    .map(|a| self.fill(&a.0, Self::stage_ref(&context)).map(|f| f.0))
                    .collect();
                return match argv {
                    Ok(argv) => self.run_program(&argv, step, &context, announce).await,
                    Err(e) => failed(e),
                };
            }
            if !announce.started(None).await {
                return failed("not started: the start could not be journaled");
            }
            if let Some(http) = &step.http {
                if let Err(e) = self.still_held() {
                    return failed(e);
                }
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
    /// What waits for a person now, if anything (stage, paused, the wait's journal sequence
    /// number): only it takes approvals.
    waiting: Option<(String, bool, u64)>,
    /// The stage baking now and the sequence number of its start: only it takes promotions.
    baking: Option<(String, u64)>,
    /// The plan's path as given, for the hint printed when nobody types at a terminal.
    plan: Option<String>,
    /// The runner's lease on a database store: a wait ends when it is lost.
    hold: Option<crate::journal::postgres::Hold>,
}

/// A request from the inbox as a decision for the engine.
fn control_of(entry: Entry) -> Control {
    match entry.request {
        inbox::Request::Approve { stage, .. } => Control::Approve {
            by: entry.by,
            stage,
            request: Some(entry.id),
        },
        inbox::Request::Abort { reason } => Control::Abort {
            by: entry.by,
            reason,
            request: Some(entry.id),
        },
        inbox::Request::Promote { reason, .. } => Control::Promote {
            by: entry.by,
            reason,
            request: Some(entry.id),
        },
    }
}

/// How often the inbox is read while a run waits.
const INBOX_POLL: Duration = Duration::from_millis(500);

impl TerminalControl {
    /// Decisions from the terminal and, if given, the inbox of the plan at `plan`.
    pub fn with_inbox(inbox: Option<Inbox>, plan: Option<String>) -> TerminalControl {
        TerminalControl {
            inbox,
            plan,
            ..TerminalControl::new()
        }
    }

    pub fn new() -> TerminalControl {
        let (sender, receiver) = mpsc::unbounded_channel();
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            std::thread::spawn(move || {
                let user = crate::engine::who();
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
            waiting: None,
            baking: None,
            plan: None,
            hold: None,
        }
    }

    /// Ends every wait early once `hold` is lost (a database store's lease).
    #[must_use]
    pub fn with_hold(mut self, hold: Option<crate::journal::postgres::Hold>) -> TerminalControl {
        self.hold = hold;
        self
    }
}

impl TerminalControl {
    /// The request the inbox holds for now: an abort, or an approval of what waits.
    fn take_from_inbox(&mut self) -> Option<Control> {
        let waiting = self.waiting.as_ref().map(|(stage, paused, seq)| WaitFor {
            stage,
            paused: *paused,
            seq: *seq,
        });
        self.inbox
            .as_mut()
            .and_then(|i| {
                let baking = self
                    .baking
                    .as_ref()
                    .map(|(stage, seq)| BakeFor { stage, seq: *seq });
                i.take(waiting, baking)
            })
            .map(control_of)
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
                // A runner whose lease was taken over while it waited takes nothing more.
                if self.lost().is_some() {
                    return None;
                }
                if let Some(control) = self.take_from_inbox() {
                    return Some(control);
                }
                let now = clock.now();
                if now >= deadline {
                    return None;
                }
                // Wake for the inbox every half second while there is one.
                let until = if self.inbox.is_some() {
                    deadline.min(crate::engine::clock::after(now, INBOX_POLL))
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
        } else if let Some(plan) = &self.plan {
            // No terminal to type into (a CI log, a pipe): say how to answer from elsewhere.
            eprintln!(
                "stage `{stage}` waits for a person: `ion-plan approve {plan}` (or `ion-plan abort {plan} --reason TEXT`) from another shell"
            );
        }
    }

    fn can_answer(&self) -> bool {
        self.interactive || self.inbox.is_some()
    }

    fn poll(&mut self) -> Option<Control> {
        // An abort in the inbox comes before anything typed.
        if let Some(control) = self.take_from_inbox() {
            return Some(control);
        }
        self.receiver.as_mut().and_then(|r| r.try_recv().ok())
    }

    fn waiting(&mut self, wait: Option<WaitFor<'_>>) {
        self.waiting = wait.map(|w| (w.stage.to_owned(), w.paused, w.seq));
    }

    fn baking(&mut self, bake: Option<BakeFor<'_>>) {
        self.baking = bake.map(|b| (b.stage.to_owned(), b.seq));
    }

    fn lost(&self) -> Option<String> {
        self.hold
            .as_ref()
            .and_then(crate::journal::postgres::Hold::lost)
    }
}
