//! What a backtest plugs into the engine: samples from a journal, people's answers as they were
//! given, and a sink that keeps the re-judged run's records in memory (README, "Backtest").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::backtest::recorded::StageKey;
use crate::engine::clock::Clock;
use crate::engine::{CheckContext, Control, ControlSource, Sampler, Sink};
use crate::event::Record;
use crate::probe::Sample;

/// Where the recorded samples ran out: the stage (or preflight) and the check, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RanOut {
    pub stage: StageKey,
    pub probe: String,
    pub check: usize,
}

/// What the sampler and the control share: whether the samples ran out.
pub type Exhausted = Arc<Mutex<Option<RanOut>>>;

/// Answers the n-th check of a stage with the sample its probe gave at the n-th check of the
/// same stage in the recorded run: by position, not by time, so every recorded sample is judged
/// once and a live run's jitter in check times does not matter.
pub struct JournalSampler {
    samples: HashMap<(StageKey, String), Vec<Sample>>,
    /// Checks answered so far, by stage and probe.
    taken: Mutex<HashMap<(StageKey, String), usize>>,
    exhausted: Exhausted,
}

impl JournalSampler {
    pub fn new(samples: HashMap<(StageKey, String), Vec<Sample>>, exhausted: Exhausted) -> Self {
        JournalSampler {
            samples,
            taken: Mutex::new(HashMap::new()),
            exhausted,
        }
    }
}

impl Sampler for JournalSampler {
    fn sample<'a>(&'a self, probe: &'a str, context: CheckContext<'a>) -> BoxFuture<'a, Sample> {
        let key = (context.stage.map(str::to_owned), probe.to_owned());
        let index = {
            let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
            let count = taken.entry(key.clone()).or_default();
            *count += 1;
            *count - 1
        };
        let ran_out = || {
            let mut exhausted = self
                .exhausted
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            exhausted.get_or_insert(RanOut {
                stage: key.0.clone(),
                probe: key.1.clone(),
                check: index + 1,
            });
            Sample::ok(probe, std::collections::BTreeMap::new())
        };
        let sample = match self.samples.get(&key) {
            Some(samples) => samples.get(index).cloned().unwrap_or_else(ran_out),
            // A probe the recorded run never sampled in a stage it sampled others in: no data
            // (README, "Backtest").
            None if self.samples.keys().any(|(stage, _)| *stage == key.0) => {
                Sample::ok(probe, std::collections::BTreeMap::new())
            }
            None => ran_out(),
        };
        Box::pin(std::future::ready(sample))
    }
}

/// People as they answered in the recorded run: a wait for a person in a stage is answered
/// after as long as the recorded run's wait in that stage was, in order; a wait the recorded
/// run never had answered is not answered. Aborts are not replayed: a backtest judges the plan,
/// not people. When the recorded samples run out, it aborts the run at once.
pub struct JournalControl {
    answers: HashMap<String, VecDeque<Duration>>,
    pending: Vec<(DateTime<Utc>, String)>,
    exhausted: Exhausted,
}

impl JournalControl {
    pub fn new(answers: HashMap<String, VecDeque<Duration>>, exhausted: Exhausted) -> Self {
        JournalControl {
            answers,
            pending: Vec::new(),
            exhausted,
        }
    }

    fn stop(&self) -> Option<Control> {
        let exhausted = self
            .exhausted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        exhausted.as_ref().map(|_| Control::Abort {
            by: "backtest".to_owned(),
            reason: "no recorded samples left".to_owned(),
            request: None,
        })
    }
}

impl ControlSource for JournalControl {
    fn wait<'a>(
        &'a mut self,
        clock: &'a dyn Clock,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, Option<Control>> {
        Box::pin(async move {
            if let Some(stop) = self.stop() {
                return Some(stop);
            }
            self.pending.sort_by_key(|(at, _)| *at);
            if self.pending.first().is_some_and(|(at, _)| *at <= deadline) {
                let (at, stage) = self.pending.remove(0);
                clock.sleep_until(at).await;
                return Some(Control::Approve {
                    by: "backtest".to_owned(),
                    stage: Some(stage),
                    request: None,
                });
            }
            clock.sleep_until(deadline).await;
            None
        })
    }

    fn person_needed(&mut self, stage: &str, at: DateTime<Utc>) {
        if let Some(after) = self.answers.get_mut(stage).and_then(VecDeque::pop_front) {
            self.pending
                .push((crate::engine::clock::after(at, after), stage.to_owned()));
        }
    }

    fn can_answer(&self) -> bool {
        true
    }

    fn may_answer(&self) -> bool {
        !self.pending.is_empty() || self.stop().is_some()
    }

    fn poll(&mut self) -> Option<Control> {
        self.stop()
    }
}

/// Keeps the records of the re-judged run in memory: a backtest writes no journal.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Record>>>);

impl Sink for Collect {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.clone());
        Ok(())
    }
}
