//! `ion-plan demo [--bad-canary]`: a whole canary against the bundled demo service on loopback,
//! in under a minute, with nothing else installed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::CliError;
use crate::demo::{self, DemoService, Ports};
use crate::exit_code;
use crate::journal::store::{self, Store};
use crate::plan::load::Source;
use crate::plan::model::{Plan, VarValue};
use crate::plan::validate::{Checks, validate_source};
use crate::report::decision_log;
use crate::request::RunRequest;

/// The demo plan, embedded so the demo runs from any folder; it is `plans/demo.yaml`.
const DEMO_PLAN: &str = include_str!("../../plans/demo.yaml");

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan demo                      # a canary that passes (exit 0)\n  ion-plan demo --bad-canary         # a canary the guard rolls back (exit 3)\n  ion-plan demo --serve --port 28080 # only the service, for the README's tour"
)]
pub struct Args {
    /// A canary that degrades once it takes traffic: the guard rolls it back.
    #[arg(long)]
    bad_canary: bool,
    #[command(flatten)]
    output: super::output::Output,
    /// Where the journal goes. Default: `.ion-plan/` in the current folder.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Only start the demo service and keep it up until Ctrl-C, to run plans and probes
    /// against it by hand (`plans/demo.yaml` as written points at it).
    #[arg(long, conflicts_with_all = ["json", "format", "state_dir"])]
    serve: bool,
    /// With `--serve`: the router's port; legacy gets PORT+1 and the canary PORT+2.
    #[arg(
        long,
        value_name = "PORT",
        requires = "serve",
        default_value_t = 18080,
        value_parser = clap::value_parser!(u16).range(1..=65533)
    )]
    port: u16,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    if args.serve {
        return serve(args);
    }
    let report = validate_source(
        Source::new("plans/demo.yaml", DEMO_PLAN.to_owned()),
        Checks { filesystem: false },
    );
    let Some(plan) = report.plan.clone().filter(|_| report.is_valid(false)) else {
        return Err(report.into());
    };
    super::runtime()?.block_on(canary(args, plan))
}

/// The demo service up, the demo plan run against it, the report written.
async fn canary(args: &Args, mut plan: Plan) -> Result<u8, CliError> {
    let service = demo::start(args.bad_canary, Ports::default())
        .await
        .map_err(|source| CliError::DemoService {
            what: " on 127.0.0.1",
            source,
        })?;
    for (name, addr) in [
        ("router", service.router),
        ("legacy", service.legacy),
        ("canary", service.canary),
    ] {
        plan.vars
            .insert(name.to_owned(), VarValue(DemoService::url(addr)));
    }
    eprintln!(
        "demo service on 127.0.0.1: router {}, legacy {}, canary {}{}",
        service.router,
        service.legacy,
        service.canary,
        if args.bad_canary {
            " (bad canary: it degrades once it takes traffic)"
        } else {
            ""
        }
    );
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".ion-plan"));
    let request = RunRequest {
        json: args.output.json(),
        state_dir: Some(state_dir.clone()),
        restart: true,
        stopped_hint: Some("the demo does not resume: `ion-plan demo` starts anew".to_owned()),
        ..RunRequest::new("plans/demo.yaml")
    };
    let result = super::run::execute(
        &request,
        Arc::new(plan),
        store::digest(DEMO_PLAN, &[]),
        DEMO_PLAN,
    )
    .await;
    service.stop();
    write_report(&request.plan, &state_dir);
    let code = result
        .as_ref()
        .map_or_else(CliError::exit_code, |code| *code);
    let verdict = match code {
        exit_code::SUCCESS => "promoted: the canary took all traffic",
        exit_code::ROLLED_BACK => "rolled back: all traffic is on legacy again",
        _ => "did not finish",
    };
    eprintln!("demo {verdict} (exit {code})");
    result
}

/// A busy port gets the way around it: other ports, and the demo plan pointed at them with
/// `--var` (README, "A tour") rather than edited.
fn with_port_advice(error: std::io::Error, port: u16) -> std::io::Error {
    if error.kind() != std::io::ErrorKind::AddrInUse {
        return error;
    }
    let other = if port < 55000 { port + 10000 } else { 18080 };
    let url = |offset: u16| format!("http://127.0.0.1:{}", other + offset);
    std::io::Error::new(
        error.kind(),
        format!(
            "{error}\n  another port: ion-plan demo --serve --port {other}\n  \
             then: ion-plan run plans/demo.yaml --var router={} --var legacy={} --var canary={}",
            url(0),
            url(1),
            url(2)
        ),
    )
}

/// `demo --serve`: the service alone, on fixed ports, until a signal.
fn serve(args: &Args) -> Result<u8, CliError> {
    super::runtime()?.block_on(async {
        let ports = Ports {
            base: Some(args.port),
        };
        let service = demo::start(args.bad_canary, ports)
            .await
            .map_err(|source| CliError::DemoService {
                what: "",
                source: with_port_advice(source, args.port),
            })?;
        let router = DemoService::url(service.router);
        // One write, and a closed stdout is no reason for a service to die.
        let banner = format!(
            "demo service up{}:\n  router  {router}  (PUT /weights {{\"canary\": N}})\n  legacy  {}\n  canary  {}\n\
             try: ion-plan run plans/demo.yaml   (its vars point here when --port is 18080)\n\
             Ctrl-C stops it.\n",
            if args.bad_canary { " with a bad canary" } else { "" },
            DemoService::url(service.legacy),
            DemoService::url(service.canary),
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
        drop(out);
        // Stopped on purpose: a clean exit.
        let _ = super::signal::until_signal().await;
        service.stop();
        eprintln!("demo service stopped");
        Ok(exit_code::SUCCESS)
    })
}

/// Writes the decision log of the run that just ended beside its journal, and says where.
fn write_report(plan: &Path, state_dir: &Path) {
    let store = Store::for_plan(plan, Some(state_dir));
    let Ok(Some((replay, _))) = store.latest(&mut |warning| eprintln!("warning: {warning}")) else {
        return;
    };
    let log = decision_log::build(&replay);
    let markdown = replay.path.with_extension("report.md");
    let html = replay.path.with_extension("report.html");
    for (path, text) in [
        (&markdown, decision_log::markdown(&log)),
        (&html, crate::report::html::render(&log)),
    ] {
        if let Err(error) = crate::journal::write_private(path, text.as_bytes()) {
            eprintln!(
                "warning: cannot write the report {}: {error}",
                path.display()
            );
            return;
        }
    }
    eprintln!(
        "report: {} (again any time: ion-plan report {} --state-dir {})",
        markdown.display(),
        plan.display(),
        state_dir.display()
    );
    eprintln!(
        "report: {} (charts; again with --format html)",
        html.display()
    );
}
