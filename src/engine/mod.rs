//! The engine: runs a plan stage by stage — steps, timed checks, gates, approvals, rollback.

pub mod clock;
pub mod gates;
