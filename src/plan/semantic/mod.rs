//! Checks of meaning, on a plan the schema accepted: references resolve, metrics exist in the
//! right units, traffic increases, offsets fit the bake, scripts exist.
//!
//! One file per section of the plan; [`check`] runs them in a fixed order, which is the order
//! of the findings.

mod compare;
mod conditions;
mod gates;
mod interpolation;
mod preflight;
mod probes;
mod schedule;
mod stages;
mod steps;
mod timing;
mod unused;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::expr::Expr;
use crate::plan::metrics::Catalog;
use crate::plan::model::Plan;

pub use timing::{MAX_CHECKS, check_count};

/// Every semantic problem of a plan. `base` is the plan's folder when the filesystem may be
/// consulted (scripts beside the plan, programs on PATH).
pub fn check(plan: &Plan, document: &Value, base: Option<&Path>) -> Vec<Diagnostic> {
    let mut checker = Checker {
        plan,
        out: Vec::new(),
        probe_names: plan.probes.keys().cloned().collect(),
        gate_names: plan.gates.keys().cloned().collect(),
        catalogs: plan
            .probes
            .iter()
            .map(|(name, probe)| (name.as_str(), Catalog::of(probe)))
            .collect(),
        parsed: HashMap::new(),
    };
    checker.schedule();
    checker.probes();
    checker.gates();
    checker.compares();
    checker.preflight();
    checker.stages();
    checker.unused();
    checker.secrets_in_argv();
    crate::plan::evidence::check(plan, &mut checker.out);
    interpolation::interpolations(plan, document, &mut checker.out);
    crate::plan::secret_headers::check(document, &mut checker.out);
    if let Some(base) = base {
        checker.argvs(base);
    }
    checker.out
}

/// The plan under check and the findings so far, shared by the sections' checks.
struct Checker<'a> {
    plan: &'a Plan,
    out: Vec<Diagnostic>,
    probe_names: Vec<String>,
    gate_names: Vec<String>,
    catalogs: HashMap<&'a str, Catalog>,
    /// Parsed conditions of each gate (only those that parse).
    parsed: HashMap<&'a str, Vec<Expr>>,
}

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }
}

/// Two keys set where only one may be.
fn conflict(pointer: &str, key: &str, other: &str, message: &str) -> Diagnostic {
    Diagnostic::error(
        Code::Conflict,
        format!("{pointer}/{key}"),
        message.to_owned(),
    )
    .at_key()
    .with_help(format!("remove `{key}` or `{other}`"))
}
