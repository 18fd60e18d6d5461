//! The plan: its model, how it is read from YAML, and how it is validated.
//!
//! Flow: [`load`] (bytes → YAML → JSON with spans) → [`schema`] (JSON Schema) → [`semantic`]
//! (meaning), orchestrated by [`validate`]; [`diagnostic`] is what each layer reports, and
//! [`repair`] lets the meaning checks run past schema errors.

pub mod compare;
pub mod diagnostic;
pub mod diff;
pub mod evidence;
pub mod expr;
pub mod interpolate;
pub mod load;
pub mod metrics;
pub mod model;
pub mod repair;
pub mod scenario;
pub mod schema;
pub mod schema_text;
pub mod secret_headers;
pub mod semantic;
pub mod span;
pub mod units;
pub mod validate;
pub mod window;
