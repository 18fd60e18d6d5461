//! What people and tools read: validation findings, and the progress of a run.

pub mod diagnostics;
pub mod progress;
