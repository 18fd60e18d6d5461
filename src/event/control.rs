//! What reaches a run from outside and what leaves it: a person's decisions, the wait they
//! answer, and the sinks every event is handed to (the journal, the live view, notifications).

use crate::event::Record;

/// A person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Approve {
        by: String,
        stage: Option<String>,
        /// The id of an `ion-plan approve` request, recorded so it is taken once.
        request: Option<String>,
    },
    Abort {
        by: String,
        reason: String,
        request: Option<String>,
    },
    /// End the current stage's bake now (`ion-plan promote`).
    Promote {
        by: String,
        reason: String,
        request: Option<String>,
    },
}

/// A stage baking: what a promotion may end. `seq` is the journal sequence number of its
/// `stage_started`, so a promotion meant for one run of a stage ends no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BakeFor<'a> {
    pub stage: &'a str,
    pub seq: u64,
}

/// A wait for a person: a stage's approval, or a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitFor<'a> {
    pub stage: &'a str,
    /// A gate paused the stage (an approval given ahead of time does not resume a pause).
    pub paused: bool,
    /// The journal sequence number of the event that opened the wait (`approval_requested`
    /// or `paused`): an approval given for an earlier wait is not taken by this one.
    pub seq: u64,
}

/// Receives every event; the journal's sink fails the run if it cannot write.
pub trait Sink: Send {
    fn record(&mut self, record: &Record) -> std::io::Result<()>;
    /// Called once at the end, to flush.
    fn finish(&mut self) {}
}
