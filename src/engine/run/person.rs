//! Waiting for a person — an approval or a paused stage — while the stage's guards keep
//! checking; aborts come first.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::engine::run::{Engine, EngineError, Go, Halt, at};
use crate::engine::timeline;
use crate::engine::{Control, WaitFor};
use crate::event::{Event, Outcome};
use crate::plan::model::{Action, Stage};

/// A wait for a person: what ends it, and what to say while it lasts.
pub(super) struct PersonWait {
    pub(super) deadline: Option<DateTime<Utc>>,
    pub(super) on_timeout: Action,
    pub(super) why: String,
    /// The journal sequence number of the event that opened it.
    pub(super) seq: u64,
}

impl PersonWait {
    pub(super) fn pause(stage: &Stage, reason: &str, seq: u64) -> PersonWait {
        PersonWait {
            deadline: None,
            on_timeout: Action::Pause,
            why: format!("stage `{}` is paused: {reason}", stage.name),
            seq,
        }
    }

    /// A pause (not an approval): it waits as long as it takes, and a pre-approval does not
    /// end it.
    pub(super) fn paused(&self) -> bool {
        self.on_timeout == Action::Pause && self.deadline.is_none()
    }
}

impl<'p> Engine<'p> {
    /// Waits for a person's answer while the stage's `every_check` gates keep running. At the
    /// wait's deadline (if any) takes `on_timeout`; a pause waits as long as it takes.
    pub(super) async fn wait_for_person(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        wait: PersonWait,
    ) -> Go {
        self.parts.control.waiting(Some(WaitFor {
            stage: &stage.name,
            paused: wait.paused(),
            seq: wait.seq,
        }));
        let went = self.wait_for_answer(stage, started, wait).await;
        self.parts.control.waiting(None);
        went
    }

    pub(super) async fn wait_for_answer(
        &mut self,
        stage: &'p Stage,
        started: DateTime<Utc>,
        mut wait: PersonWait,
    ) -> Go {
        let paused = wait.paused();
        let cadence = timeline::cadence(stage, self.plan.defaults.as_ref());
        let mut next_check = cadence.map(|c| at(self.now(), c));
        // On simulated time with no answer to come (a scenario's `never`), the guards keep
        // checking for the stage's bake (at least an hour) and then the run stops waiting.
        let quiet_until = (!self.parts.control.may_answer()).then(|| {
            at(
                self.now(),
                stage
                    .bake
                    .as_duration()
                    .max(std::time::Duration::from_hours(1)),
            )
        });
        loop {
            match self.answer(&wait, next_check).await? {
                Some(Control::Abort {
                    by,
                    reason,
                    request,
                }) => return Err(self.aborted(&by, &reason, request)),
                Some(Control::Approve {
                    by,
                    stage: named,
                    request,
                }) if named.as_ref().is_none_or(|n| n == &stage.name) => {
                    let stage = stage.name.clone();
                    self.emit(if paused {
                        Event::Resumed { stage, by, request }
                    } else {
                        Event::Approved { stage, by, request }
                    })?;
                    return Ok(());
                }
                Some(Control::Approve { .. } | Control::Promote { .. }) => continue,
                None => {}
            }
            let now = self.now();
            if wait.deadline.is_some_and(|d| now >= d) {
                self.emit(Event::ApprovalTimedOut {
                    stage: stage.name.clone(),
                    action: wait.on_timeout,
                })?;
                match wait.on_timeout {
                    Action::Rollback => {
                        return Err(Halt::Rollback {
                            reason: format!("approval of stage `{}` timed out", stage.name),
                            outcome: Outcome::RolledBack,
                        });
                    }
                    Action::Warn => return Ok(()),
                    Action::Pause => wait.deadline = None,
                }
            }
            if next_check.is_some_and(|c| now >= c) {
                next_check = cadence.map(|c| at(now, c));
                Box::pin(self.check(stage, started)).await?;
            }
            if wait.deadline.is_none()
                && self.parts.clock.is_simulated()
                && (next_check.is_none() || quiet_until.is_some_and(|q| now >= q))
            {
                // Simulated time with nothing left to happen, or no answer to come and the
                // guards given their time: nobody will ever answer.
                return Err(Halt::Suspend {
                    outcome: Outcome::Waiting,
                    reason: format!("{}, and nobody answers", wait.why),
                    next: None,
                });
            }
        }
    }

    /// The next answer, if one comes before the next check or the deadline. Where nobody can
    /// answer in this run (`--once`, no terminal), takes one already waiting or suspends.
    pub(super) async fn answer(
        &mut self,
        wait: &PersonWait,
        next_check: Option<DateTime<Utc>>,
    ) -> Go<Option<Control>> {
        if self.options.once || !self.parts.control.can_answer() {
            return match self.parts.control.poll() {
                Some(control) => Ok(Some(control)),
                None if wait.deadline.is_some_and(|d| self.now() >= d) => Ok(None),
                None => Err(Halt::Suspend {
                    outcome: Outcome::Waiting,
                    reason: format!(
                        "{}: `ion-plan approve` or `ion-plan abort`, then `ion-plan run` again",
                        wait.why
                    ),
                    next: wait.deadline,
                }),
            };
        }
        let until = match (next_check, wait.deadline) {
            (Some(c), Some(d)) => c.min(d),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => DateTime::<Utc>::MAX_UTC,
        };
        let clock = Arc::clone(&self.parts.clock);
        let answer = self.parts.control.wait(clock.as_ref(), until).await;
        if let Some(lost) = self.parts.control.lost() {
            return Err(Halt::Fatal(EngineError::Conflict(lost)));
        }
        Ok(answer)
    }
}
