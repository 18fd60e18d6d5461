//! Probes and gates that nothing runs: likely a forgotten reference.

use std::collections::HashSet;

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::span::join;

use super::Checker;

impl Checker<'_> {
    pub(super) fn unused(&mut self) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        let mut used_probes: HashSet<&str> = plan
            .preflight
            .iter()
            .filter_map(|p| p.probe.as_deref())
            .collect();
        let mut used_gates = HashSet::new();
        for stage in &plan.stages {
            if let Some(checks) = stage.effective_checks(defaults) {
                used_probes.extend(checks.probes.iter().map(String::as_str));
            }
            used_gates.extend(stage.effective_gates(defaults).iter().map(String::as_str));
        }
        for name in plan.probes.keys() {
            if !used_probes.contains(name.as_str()) {
                self.push(
                    Diagnostic::warning(
                        Code::Unused,
                        join("/probes", name),
                        format!("probe `{name}` is never run by a check or preflight"),
                    )
                    .at_key()
                    .depending_on("/stages")
                    .depending_on("/defaults")
                    .depending_on("/preflight"),
                );
            }
        }
        for name in plan.gates.keys() {
            if !used_gates.contains(name.as_str()) {
                self.push(
                    Diagnostic::warning(
                        Code::Unused,
                        join("/gates", name),
                        format!("gate `{name}` is not used by any stage"),
                    )
                    .at_key()
                    .depending_on("/stages")
                    .depending_on("/defaults")
                    .with_help("list it in a stage's `gates` or in `defaults.gates`"),
                );
            }
        }
    }
}
