//! What people and tools read: validation findings, and the progress of a run.

pub mod decision_log;
pub mod diagnostics;
pub mod escape;
pub mod excerpt;
pub mod html;
pub mod live;
pub mod markdown;
pub mod metric_view;
pub mod progress;
pub mod status;
pub mod summary;
