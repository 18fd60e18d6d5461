//! The plan: its model, how it is read from YAML, and how it is validated.
//!
//! Flow: [`load`] (bytes → YAML → JSON with spans) → [`schema`] (JSON Schema) → [`semantic`]
//! (meaning), orchestrated by [`validate`]; [`diagnostic`] is what each layer reports.

pub mod diagnostic;
pub mod diff;
pub mod expr;
pub mod interpolate;
pub mod load;
pub mod metrics;
pub mod model;
pub mod scenario;
pub mod schema;
pub mod secret_headers;
pub mod semantic;
pub mod span;
pub mod units;
pub mod validate;
pub mod window;
