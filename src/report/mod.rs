//! What people and tools read: validation findings (and, as the engine grows, progress, status
//! and the decision log).

pub mod diagnostics;
