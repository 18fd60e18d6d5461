//! The journal: every event of a run, appended as JSON Lines.
