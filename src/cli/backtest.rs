//! `ion-plan backtest PLAN [JOURNAL...]`: would this plan have decided the recorded runs
//! differently? Reads journals, writes nothing, runs nothing (README, "Backtest").

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use super::CliError;
use crate::backtest::{self, Judged};
use crate::event::evaluation::{literal_unit, show};
use crate::exit_code;
use crate::journal::replay;
use crate::plan::units::{LiteralUnit, format_duration};
use crate::plan::validate::{Checks, validate_file};
use crate::report::escape::terminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// How the samples are matched and when an outcome flips: `ion-plan backtest --help`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ion-plan backtest plans/phase4.yaml                  # every recorded run of the plan\n  ion-plan backtest plans/phase4.yaml plans/.ion-plan/phase4-RUNID.jsonl --format json"
)]
pub struct Args {
    /// The plan, as it is now.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// Journals of past runs. Default: every run of this plan in the state folder.
    #[arg(value_name = "JOURNAL")]
    journals: Vec<PathBuf>,
    /// `json`: one document, `{"runs":[…]}` (README, "Backtest").
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    #[command(flatten)]
    state: super::state::StateArgs,
}

pub fn run(args: &Args) -> Result<u8, CliError> {
    let report = validate_file(&args.plan, Checks { filesystem: false })?;
    let Some(plan) = report.plan.clone().filter(|_| report.is_valid(false)) else {
        return Err(report.into());
    };
    // Every journal is read before any is judged: a bad one fails the command at once.
    let replays = if args.journals.is_empty() {
        let store = args
            .state
            .store(&args.plan, crate::journal::postgres::DEFAULT_LEASE)?;
        let replays = store
            .replays(&mut |warning| eprintln!("warning: {warning}"))
            .map_err(|error| match error {
                crate::journal::store::StoreError::Journal(error) => CliError::Journal(error),
                error => CliError::Store(error),
            })?;
        if replays.is_empty() {
            return Err(CliError::NoRun {
                plan: args.plan.clone(),
                dir: store.dir().to_owned(),
            });
        }
        replays
    } else {
        let mut replays = Vec::with_capacity(args.journals.len());
        for path in &args.journals {
            let replay = replay::read_named(path).map_err(CliError::Journal)?;
            if let Some(warning) = &replay.torn {
                eprintln!("warning: {warning}");
            }
            replays.push(replay);
        }
        replays
    };
    let replays = once_each(replays);
    let runtime = super::runtime()?;
    let mut judged = Vec::with_capacity(replays.len());
    for replay in &replays {
        judged.push(runtime.block_on(backtest::judge(&plan, replay))?);
    }
    let text = match args.format {
        Format::Human => human(&judged),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({ "runs": judged }))
                .expect("backtest results serialize");
            text.push('\n');
            text
        }
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(CliError::Stdout {
                what: "backtest",
                source: e,
            });
        }
        _ => {}
    }
    Ok(if judged.iter().any(|j| j.flipped) {
        exit_code::OUTCOME_FLIPPED
    } else {
        exit_code::SUCCESS
    })
}

/// Each run once: of journals holding the same run (the same file named twice, a copy taken
/// while it ran), the one with the most records — the journal is append-only, so the furthest
/// along — is judged and the others are said, so no run is counted twice.
fn once_each(replays: Vec<replay::Replay>) -> Vec<replay::Replay> {
    let mut kept: Vec<replay::Replay> = Vec::with_capacity(replays.len());
    for replay in replays {
        let Some(seen) = kept
            .iter_mut()
            .find(|k| k.header.run_id == replay.header.run_id)
        else {
            kept.push(replay);
            continue;
        };
        let left = if replay.records.len() > seen.records.len() {
            std::mem::replace(seen, replay)
        } else {
            replay
        };
        eprintln!(
            "warning: `{}` holds run {} too: judged once, on `{}`",
            left.path.display(),
            crate::report::escape::terminal(&left.header.run_id),
            seen.path.display()
        );
    }
    kept
}

/// A value in the unit the condition's threshold is written in.
fn number(value: Option<f64>, unit: LiteralUnit) -> String {
    value.map_or_else(|| "-".to_owned(), |v| show(v, unit))
}

/// What a run's backtest skipped, one line each.
fn print_skipped(out: &mut String, skipped: &[String]) {
    for skipped in skipped {
        let _ = writeln!(out, "  skipped: {}", terminal(skipped));
    }
}

/// What a person reads in a terminal or a CI log: text from a journal (run ids, reasons, probe
/// errors, stage names) escaped as `docs/plan.md`, "Outside text" says.
fn human(judged: &[Judged]) -> String {
    let mut out = String::new();
    for run in judged {
        let _ = writeln!(
            out,
            "run {} ({})",
            terminal(&run.run_id),
            terminal(&run.journal)
        );
        let _ = writeln!(out, "  recorded: {}", terminal(&run.recorded.describe()));
        let _ = writeln!(
            out,
            "  now:      {}{}",
            terminal(&run.now.describe()),
            if run.flipped { "  [FLIPPED]" } else { "" }
        );
        match &run.first_difference {
            Some(d) => {
                let at = d
                    .offset
                    .and_then(|o| std::time::Duration::try_from_secs_f64(o).ok())
                    .map(|o| format!(" (at {})", format_duration(o)))
                    .unwrap_or_default();
                let was = d
                    .condition_then
                    .as_ref()
                    .filter(|c| **c != d.condition)
                    .map(|c| format!(" (was `{}`)", terminal(c)))
                    .unwrap_or_default();
                if d.compare {
                    let none = || "not judged".to_owned();
                    let _ = writeln!(
                        out,
                        "  first difference: stage `{}`, check {}{at}, gate `{}`: recorded {}; now {}",
                        terminal(&d.stage),
                        d.check,
                        terminal(&d.gate),
                        terminal(&d.described_then.clone().unwrap_or_else(none)),
                        terminal(&d.described_now.clone().unwrap_or_else(none)),
                    );
                    print_skipped(&mut out, &run.skipped);
                    continue;
                }
                let unit = literal_unit(&d.condition);
                let _ = writeln!(
                    out,
                    "  first difference: stage `{}`, check {}{at}, gate `{}`, `{}`{was}: value {}, threshold {} then, {} now; recorded {}, now {}",
                    terminal(&d.stage),
                    d.check,
                    terminal(&d.gate),
                    terminal(&d.condition),
                    number(d.values.value, unit),
                    number(d.values.threshold_then, unit),
                    number(d.values.threshold_now, unit),
                    d.recorded,
                    d.now
                );
            }
            None => {
                let _ = writeln!(out, "  no decision differs");
            }
        }
        print_skipped(&mut out, &run.skipped);
    }
    let flipped = judged.iter().filter(|j| j.flipped).count();
    let _ = writeln!(
        out,
        "{} run{} backtested, {flipped} outcome{} flipped",
        judged.len(),
        if judged.len() == 1 { "" } else { "s" },
        if flipped == 1 { "" } else { "s" }
    );
    out
}
