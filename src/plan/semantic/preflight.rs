//! `preflight`: unique names, a probe that exists, `with` only on load probes, conditions
//! that read only the probe the check runs.

use std::collections::HashMap;

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::model::ProbeKind;
use crate::plan::span::join;

use super::{Checker, conflict};

impl Checker<'_> {
    pub(super) fn preflight(&mut self) {
        let plan = self.plan;
        let mut seen = HashMap::new();
        for (i, item) in plan.preflight.iter().enumerate() {
            let pointer = format!("/preflight/{i}");
            if let Some(first) = seen.insert(item.name.as_str(), i) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("{pointer}/name"),
                        format!(
                            "preflight check `{}` is already defined (preflight[{first}])",
                            item.name
                        ),
                    )
                    .depending_on(format!("/preflight/{first}/name"))
                    .with_help("give each preflight check its own name: reports refer to it"),
                );
            }
            let Some(probe_name) = &item.probe else {
                for key in ["with", "require"] {
                    let set = if key == "with" {
                        item.with.is_some()
                    } else {
                        !item.require.is_empty()
                    };
                    if set {
                        self.push(
                            Diagnostic::error(
                                Code::Conflict,
                                format!("{pointer}/{key}"),
                                format!("`{key}` applies to a `probe`, and this check has none"),
                            )
                            .at_key(),
                        );
                    }
                }
                continue;
            };
            let Some(probe) = plan.probes.get(probe_name) else {
                self.unknown_probe(&format!("{pointer}/probe"), probe_name);
                continue;
            };
            if let Some(with) = &item.with {
                match probe.kind() {
                    Some(ProbeKind::Load(_)) => {
                        if with.delay.is_some() && with.rate.is_some() {
                            self.push(conflict(&format!("{pointer}/with"), "rate", "delay", "pace by `delay` or by `rate`, not both"));
                        }
                    }
                    _ => self.push(
                        Diagnostic::error(
                            Code::Conflict,
                            format!("{pointer}/with"),
                            format!("`with` overrides load settings, but probe `{probe_name}` is not a load probe"),
                        )
                        .at_key()
                        .depending_on(join("/probes", probe_name)),
                    ),
                }
            }
            for (k, condition) in item.require.iter().enumerate() {
                self.condition(
                    &format!("{pointer}/require/{k}"),
                    condition,
                    Some(probe_name),
                );
            }
        }
    }
}
