//! The live view of a run on a terminal: each event's line scrolls by, and below them one status
//! line, redrawn every second: stage, traffic, countdown to the next check and to the bake's
//! end, and the last value of each condition against its threshold with its streak.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::timeline;
use crate::event::Record;
use crate::event::Sink;
use crate::event::evaluation::{Outcome, show, show_signed};
use crate::event::state::RunState;
use crate::plan::model::Plan;
use crate::plan::units::format_duration;
use crate::report::metric_view::MetricView;
use crate::report::progress::describe_with;

/// What the status line shows: the run's state, folded from the events as resume and `status`
/// fold them (`event::state`).
#[derive(Debug, Default, Clone)]
pub struct View {
    run: RunState,
}

impl View {
    /// Takes an event into account.
    pub fn apply(&mut self, record: &Record) {
        self.run.apply(record);
    }

    /// What the run waits for, if anything.
    fn waiting(&self) -> Option<String> {
        match (&self.run.stage, &self.run.next_start) {
            (Some(stage), _) if stage.paused.is_some() => Some(format!("{} paused", stage.name)),
            (Some(stage), _) if stage.approval.is_some() && !stage.approved => {
                Some(format!("waiting for approval of {}", stage.name))
            }
            (None, Some((stage, until))) => Some(format!(
                "{stage} starts at {}",
                until.format("%Y-%m-%d %H:%M:%SZ")
            )),
            _ => None,
        }
    }

    /// The status line at `now`.
    pub fn line(&self, plan: &Plan, now: DateTime<Utc>) -> String {
        let mut parts = Vec::new();
        if let Some(progress) = &self.run.stage {
            parts.push(format!("{} {}%", progress.name, progress.traffic));
            let since = (now - progress.started).to_std().unwrap_or_default();
            if let Some(stage) = plan.stages.iter().find(|s| s.name == progress.name) {
                let last_check = progress.checks.last().map(|c| c.offset);
                let next = timeline::next_check(stage, plan.defaults.as_ref(), last_check);
                if let Some(next) = next {
                    parts.push(format!(
                        "next check in {}",
                        countdown(next.saturating_sub(since))
                    ));
                }
                if let Some(left) = stage
                    .bake
                    .as_duration()
                    .checked_sub(since)
                    .filter(|l| !l.is_zero())
                {
                    parts.push(format!("bake ends in {}", countdown(left)));
                }
            }
        }
        if let Some(waiting) = self.waiting() {
            parts.push(waiting);
        }
        // This stage's conditions only: streaks start from zero at each stage.
        let since = self.run.stage.as_ref().map(|s| s.started);
        for (at, evaluation) in self.run.evaluations.values() {
            if since.is_some_and(|started| *at < started) {
                continue;
            }
            let mark = match (&evaluation.outcome, evaluation.fired) {
                (_, true) => "✗",
                (Outcome::Pass, _) => "✓",
                (Outcome::Violation, _) => "!",
                (Outcome::Insufficient, _) => "~",
                (Outcome::Error(_), _) => "?",
            };
            let unit = evaluation.unit();
            let mut value = evaluation
                .value
                .map_or_else(|| "-".to_owned(), |v| show(v, unit));
            if let Some(c) = &evaluation.compare {
                // The shift with its interval: "+4ms [+3.8ms, +4.3ms] higher".
                let signed = |v: f64| show_signed(v, unit);
                if let (Some(estimate), Some(lower), Some(upper)) = (c.estimate, c.lower, c.upper) {
                    value = format!(
                        "{} [{}, {}]",
                        signed(estimate),
                        signed(lower),
                        signed(upper)
                    );
                }
                if let Some(way) = c.shift {
                    value = format!("{value} {way}");
                }
            }
            let streak = if evaluation.streak.needed > 1 {
                format!(" {}/{}", evaluation.streak.count, evaluation.streak.needed)
            } else {
                String::new()
            };
            parts.push(format!("{mark} {} {value}{streak}", evaluation.condition));
        }
        parts.join(" · ")
    }
}

/// Whole seconds, rounded up: 0.4 s left shows as 1s, and 0s only when it is due.
fn countdown(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format_duration(Duration::from_secs(secs))
}

/// Whether stdout gets the live view: a terminal that takes colour and redraws (not piped, no
/// `NO_COLOR`, `TERM` not `dumb`); elsewhere progress is plain lines, good in CI logs.
pub fn wanted() -> bool {
    let stdout = std::io::stdout();
    anstream::AutoStream::choice(&stdout) != anstream::ColorChoice::Never
        && stdout.is_terminal()
        // indicatif draws nothing where it judges the terminal unfit; the event lines would
        // vanish with the status line.
        && !ProgressDrawTarget::stdout().is_hidden()
}

/// A sink that prints event lines above a status line that a ticker redraws every second.
pub struct LiveView {
    view: Arc<Mutex<View>>,
    plan: Arc<Plan>,
    metrics: MetricView,
    /// Event lines go through it so that they land above the status line, not across it.
    lines: MultiProgress,
    status: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl LiveView {
    /// Starts the ticker (call inside the runtime).
    pub fn start(plan: Arc<Plan>) -> LiveView {
        let view = Arc::new(Mutex::new(View::default()));
        let lines = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        // One line as wide as the terminal: indicatif cuts what does not fit.
        let status = lines.add(
            ProgressBar::no_length()
                .with_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template")),
        );
        let ticker = {
            let view = Arc::clone(&view);
            let plan = Arc::clone(&plan);
            let status = status.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let line = view
                        .lock()
                        .map(|v| v.line(&plan, Utc::now()))
                        .unwrap_or_default();
                    status.set_message(line);
                }
            })
        };
        LiveView {
            view,
            metrics: MetricView::of(&plan),
            plan,
            lines,
            status,
            ticker: Some(ticker),
        }
    }
}

impl Sink for LiveView {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        // Outside text in the event (probe errors, output) is escaped for the terminal.
        let record = &crate::report::escape::terminal_record(record);
        let status = match self.view.lock() {
            Ok(mut view) => {
                view.apply(record);
                view.line(&self.plan, record.at)
            }
            Err(_) => String::new(),
        };
        self.status.set_message(status);
        let result = self.lines.println(format!(
            "{} {}",
            record.at.format("%H:%M:%S"),
            describe_with(&record.event, &self.metrics)
        ));
        // Progress is for people; a closed pipe must not stop the rollout.
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    fn finish(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        self.status.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Evaluation, Event};

    #[test]
    fn the_status_line_counts_down_and_shows_streaks() {
        let plan: Plan = serde_saphyr::from_str(
            "version: 1\nname: t\nprobes:\n  c:\n    command: [x]\ngates:\n  g:\n    at: every_check\n    require: [{check: c.e <= 1%, consecutive: 3}]\nstages:\n  - {name: s, traffic: 5, bake: 10m, checks: {every: 2m, probes: [c]}, gates: [g]}\n",
        )
        .unwrap();
        let start = DateTime::parse_from_rfc3339("2025-10-22T14:00:00Z")
            .unwrap()
            .to_utc();
        let mut view = View::default();
        let record = |seq, at, event| Record { seq, at, event };
        view.apply(&record(
            1,
            start,
            Event::StageStarted {
                stage: "s".into(),
                index: 0,
                traffic: 5.0,
            },
        ));
        view.apply(&record(
            2,
            start + chrono::Duration::minutes(2),
            Event::CheckStarted {
                stage: "s".into(),
                number: 1,
                offset: 120.0,
                probes: vec!["c".into()],
            },
        ));
        let line = view.line(&plan, start + chrono::Duration::seconds(150));
        assert!(line.starts_with("s 5%"), "{line}");
        assert!(line.contains("next check in 1m30s"), "{line}");
        assert!(line.contains("bake ends in 7m30s"), "{line}");
        let evaluation: Evaluation = serde_json::from_value(serde_json::json!({
            "gate": "g", "condition": "c.e <= 1%", "outcome": "violation", "value": 0.02,
            "threshold": 0.01, "streak": {"count": 2, "needed": 3}, "fired": false
        }))
        .unwrap();
        view.apply(&record(
            3,
            start,
            Event::Evaluated {
                stage: Some("s".into()),
                check: 1,
                evaluation,
            },
        ));
        // The value in the threshold's unit, and the streak.
        let line = view.line(&plan, start + chrono::Duration::seconds(150));
        assert!(line.contains("! c.e <= 1% 2% 2/3"), "{line}");
        // Countdowns round up: 0.4 s before a check is "1s", never "0s".
        let line = view.line(
            &plan,
            start + chrono::Duration::seconds(239) + chrono::Duration::milliseconds(600),
        );
        assert!(line.contains("next check in 1s"), "{line}");
    }
}
