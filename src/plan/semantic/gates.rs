//! `gates`: each has conditions or comparisons, each condition parses, and a streak
//! (`consecutive`, `within`) can be reached.

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::model::{Condition, Gate, GateAt};
use crate::plan::span::join;

use super::{Checker, conflict};

impl Checker<'_> {
    pub(super) fn gates(&mut self) {
        let plan = self.plan;
        for (name, gate) in &plan.gates {
            let pointer = join("/gates", name);
            // The schema says it first; this holds for a plan that did not come through it.
            if gate.require.is_empty() && gate.compare.is_empty() {
                self.push(
                    Diagnostic::error(
                        Code::Required,
                        &pointer,
                        "a gate needs `require` or `compare` (or both), with at least one entry",
                    )
                    .at_key()
                    .with_help("add `require:` with a condition, or `compare:` with a comparison"),
                );
            }
            let mut parsed = Vec::new();
            for (k, condition) in gate.require.iter().enumerate() {
                let cond_pointer = format!("{pointer}/require/{k}");
                if let Some(expr) = self.condition(&cond_pointer, condition, None) {
                    parsed.push(expr);
                }
                self.streak(&cond_pointer, condition, gate);
            }
            self.parsed.insert(name.as_str(), parsed);
        }
    }

    fn streak(&mut self, pointer: &str, condition: &Condition, gate: &Gate) {
        let Condition::Detailed(spec) = condition else {
            return;
        };
        if spec.consecutive.is_some() && spec.within.is_some() {
            self.push(conflict(
                pointer,
                "within",
                "consecutive",
                "a condition fails after `consecutive` violations in a row or after `within` M of N checks, not both",
            ));
        }
        if let Some(within) = spec.within
            && within.violations > within.checks
        {
            self.push(
                Diagnostic::error(
                    Code::StreakRange,
                    format!("{pointer}/within/violations"),
                    format!(
                        "`within` asks for {} violations in the last {} checks, which can never happen",
                        within.violations, within.checks
                    ),
                )
                .with_help("`violations` must be at most `checks`"),
            );
        }
        if gate.at == GateAt::End && (spec.consecutive.is_some() || spec.within.is_some()) {
            let key = if spec.consecutive.is_some() {
                "consecutive"
            } else {
                "within"
            };
            self.push(
                Diagnostic::error(
                    Code::StreakRange,
                    format!("{pointer}/{key}"),
                    format!(
                        "an `at: end` gate is evaluated once, so `{key}` can never count past one"
                    ),
                )
                .at_key()
                .depending_on(format!(
                    "{}/at",
                    pointer.split("/require/").next().unwrap_or_default()
                ))
                .with_help("move the condition to an `at: every_check` gate, or drop the streak"),
            );
        }
    }
}
