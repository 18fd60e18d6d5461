//! `stages`: unique names, increasing traffic, probes and gates that exist, and gates that
//! read what the stage's checks run.

use std::collections::{HashMap, HashSet};

use crate::plan::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::plan::expr::{Expr, MetricRef};
use crate::plan::model::{Condition, GateAt, Stage};
use crate::plan::span::join;
use crate::plan::units::format_duration;

use super::Checker;
use super::timing::check_count;

impl Checker<'_> {
    pub(super) fn stages(&mut self) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        // References made by `defaults` are reported once, at `defaults`.
        if let Some(defaults) = defaults {
            if let Some(checks) = &defaults.checks {
                self.check_probes("/defaults/checks/probes", &checks.probes);
            }
            if let Some(gates) = &defaults.gates {
                self.check_gates("/defaults/gates", gates);
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut previous: Option<f64> = None;
        for (i, stage) in plan.stages.iter().enumerate() {
            let pointer = format!("/stages/{i}");
            if let Some(first) = names.insert(stage.name.as_str(), i) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("{pointer}/name"),
                        format!(
                            "stage `{}` is already defined (stages[{first}])",
                            stage.name
                        ),
                    )
                    .depending_on(format!("/stages/{first}/name"))
                    .with_help(
                        "stage names must be unique: the journal and `approve --stage` use them",
                    ),
                );
            }
            if let Some(before) = previous
                && stage.traffic <= before
            {
                self.push(
                    Diagnostic::error(
                        Code::TrafficOrder,
                        format!("{pointer}/traffic"),
                        format!(
                            "traffic must increase from stage to stage: `{}` has {}%, after {}% in stages[{}]",
                            stage.name,
                            stage.traffic,
                            before,
                            i - 1
                        ),
                    )
                    .depending_on(format!("/stages/{}/traffic", i - 1))
                    .with_help("to hold a share longer, lengthen the earlier stage's `bake`"),
                );
            }
            previous = Some(stage.traffic);
            if let Some(checks) = &stage.checks {
                self.check_probes(&format!("{pointer}/checks/probes"), &checks.probes);
            }
            if let Some(gates) = &stage.gates {
                self.check_gates(&format!("{pointer}/gates"), gates);
            }
            let before = self.out.len();
            self.stage_timing(&pointer, stage);
            // Offsets and counts read the stage's bake and (maybe inherited) checks.
            let checks = checks_pointer(&pointer, stage);
            for d in &mut self.out[before..] {
                d.add_depends([format!("{pointer}/bake"), checks.clone()]);
            }
            self.stage_gates(&pointer, stage);
        }
        if let Some(last) = plan.stages.last()
            && last.traffic < 100.0
        {
            self.push(
                Diagnostic::warning(
                    Code::PartialRollout,
                    format!("/stages/{}/traffic", plan.stages.len() - 1),
                    format!(
                        "the last stage, `{}`, sends only {}% of traffic to the new version",
                        last.name, last.traffic
                    ),
                )
                .with_help("end with a `traffic: 100` stage to complete the rollout"),
            );
        }
    }

    fn check_probes(&mut self, pointer: &str, probes: &[String]) {
        for (j, name) in probes.iter().enumerate() {
            if !self.plan.probes.contains_key(name) {
                self.unknown_probe(&format!("{pointer}/{j}"), name);
            }
        }
    }

    fn check_gates(&mut self, pointer: &str, gates: &[String]) {
        for (j, name) in gates.iter().enumerate() {
            if !self.plan.gates.contains_key(name) {
                let mut d = Diagnostic::error(
                    Code::UnknownGate,
                    format!("{pointer}/{j}"),
                    format!("gate `{name}` is not defined in `gates`"),
                )
                .depending_on(join("/gates", name));
                if let Some(help) = did_you_mean(name, &self.gate_names, "") {
                    d = d.with_help(help);
                }
                self.push(d);
            }
        }
    }

    /// Gates a stage uses must read probes that the stage's checks run, and their streaks should
    /// fit in the checks the stage has.
    fn stage_gates(&mut self, pointer: &str, stage: &Stage) {
        let plan = self.plan;
        let defaults = plan.defaults.as_ref();
        let checks = stage.effective_checks(defaults);
        let run: HashSet<&str> = checks
            .map(|c| c.probes.iter().map(String::as_str).collect())
            .unwrap_or_default();
        // A misspelt probe in the checks is already reported; what it was meant to run is unknown.
        let checks_resolve = run.iter().all(|p| plan.probes.contains_key(*p));
        let count = checks.map_or(0, |c| check_count(stage.bake.as_duration(), c));
        let gates_pointer = if stage.gates.is_some() {
            format!("{pointer}/gates")
        } else {
            "/defaults/gates".to_owned()
        };
        for (j, gate_name) in stage.effective_gates(defaults).iter().enumerate() {
            let Some(gate) = plan.gates.get(gate_name) else {
                continue;
            };
            let mut missing: Vec<String> = self
                .parsed
                .get(gate_name.as_str())
                .into_iter()
                .flatten()
                .flat_map(Expr::metrics)
                .map(MetricRef::probe)
                .chain(gate.compare.iter().flat_map(|c| {
                    [&c.canary, &c.baseline].map(|m| m.split('.').next().unwrap_or_default())
                }))
                .filter(|p| !run.contains(p) && plan.probes.contains_key(*p))
                .map(str::to_owned)
                .collect();
            missing.sort_unstable();
            missing.dedup();
            for probe in missing.into_iter().filter(|_| checks_resolve) {
                self.push(
                    Diagnostic::error(
                        Code::ProbeNotRun,
                        format!("{gates_pointer}/{j}"),
                        format!(
                            "gate `{gate_name}` reads probe `{probe}`, but stage `{}`'s checks do not run it",
                            stage.name
                        ),
                    )
                    .depending_on(join("/gates", gate_name))
                    .depending_on(join("/probes", &probe))
                    .depending_on(format!("{}/probes", checks_pointer(pointer, stage)))
                    .with_help(format!("add `{probe}` to the stage's `checks.probes`")),
                );
            }
            if gate.at != GateAt::EveryCheck {
                continue;
            }
            for (k, condition) in gate.require.iter().enumerate() {
                let Condition::Detailed(spec) = condition else {
                    continue;
                };
                let needed = spec
                    .consecutive
                    .or(spec.within.map(|w| w.violations))
                    .unwrap_or(1) as usize;
                if needed > count && stage.approval.is_none() {
                    self.push(
                        Diagnostic::warning(
                            Code::UnreachableStreak,
                            format!("/gates/{gate_name}/require/{k}"),
                            format!(
                                "this condition needs {needed} violations, but stage `{}` runs only {count} check{} in its bake of {}",
                                stage.name,
                                if count == 1 { "" } else { "s" },
                                format_duration(stage.bake.as_duration())
                            ),
                        )
                        .depending_on(format!("/gates/{gate_name}/at"))
                        .depending_on(format!("{pointer}/bake"))
                        .depending_on(format!("{pointer}/approval"))
                        .depending_on(checks_pointer(pointer, stage))
                        .with_help("check more often in that stage, or lower the streak"),
                    );
                }
            }
        }
    }
}

/// Where a stage's checks come from: its own `checks`, or `defaults.checks`.
fn checks_pointer(stage_pointer: &str, stage: &Stage) -> String {
    if stage.checks.is_some() {
        format!("{stage_pointer}/checks")
    } else {
        "/defaults/checks".to_owned()
    }
}
