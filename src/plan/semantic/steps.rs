//! The commands a plan runs (steps, rollback, preflight, command probes): no secret on a
//! command line, scripts that exist, programs on PATH.

use std::collections::HashMap;
use std::path::Path;

use crate::plan::diagnostic::{Code, Diagnostic, Target};
use crate::plan::interpolate::{self, Reference};
use crate::plan::model::{Argv, ProbeKind, ProbeSpec, Step};
use crate::plan::span::join;

use super::Checker;

impl<'a> Checker<'a> {
    /// Every step with its pointer: defaults, stages, rollback.
    pub(super) fn all_steps(&self) -> Vec<(String, &'a Step)> {
        let plan = self.plan;
        let mut steps = Vec::new();
        if let Some(list) = plan.defaults.as_ref().and_then(|d| d.steps.as_ref()) {
            steps.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| (format!("/defaults/steps/{i}"), s)),
            );
        }
        for (i, stage) in plan.stages.iter().enumerate() {
            if let Some(list) = &stage.steps {
                steps.extend(
                    list.iter()
                        .enumerate()
                        .map(|(j, s)| (format!("/stages/{i}/steps/{j}"), s)),
                );
            }
        }
        steps.extend(
            plan.rollback
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("/rollback/{i}"), s)),
        );
        steps
    }

    /// Every argv with its pointer.
    fn all_argvs(&self) -> Vec<(String, &'a Argv)> {
        let plan = self.plan;
        let mut argvs: Vec<(String, &Argv)> = self
            .all_steps()
            .into_iter()
            .filter_map(|(pointer, step)| {
                step.run.as_ref().map(|run| (format!("{pointer}/run"), run))
            })
            .collect();
        for (i, item) in plan.preflight.iter().enumerate() {
            if let Some(run) = &item.run {
                argvs.push((format!("/preflight/{i}/run"), run));
            }
        }
        for (name, probe) in &plan.probes {
            if let Some(ProbeKind::Command(argv)) = ProbeSpec::kind(probe) {
                argvs.push((format!("{}/command", join("/probes", name)), argv));
            }
        }
        argvs
    }

    /// A secret interpolated into a command line is visible to every local user (`ps`, and
    /// `/proc/PID/cmdline`) for as long as the program runs; an environment variable is not.
    pub(super) fn secrets_in_argv(&mut self) {
        for (pointer, argv) in self.all_argvs() {
            let probe = pointer.ends_with("/command");
            for (k, item) in argv.iter().enumerate() {
                let Ok(placeholders) = interpolate::placeholders(&item.0) else {
                    continue; // Reported by `interpolations`.
                };
                for placeholder in placeholders {
                    let Reference::Env(name) = &placeholder.reference else {
                        continue;
                    };
                    let program = argv.first().map_or("./deploy.sh", |p| p.0.as_str());
                    let owner = if pointer.starts_with("/preflight") {
                        "this preflight check's"
                    } else {
                        "this step's"
                    };
                    let help = if probe {
                        format!(
                            "command probes have no `env:` map; the program inherits the runner's environment, so let it read `{name}` from there instead of its argv"
                        )
                    } else {
                        format!(
                            "pass it through {owner} `env:` map and let the program read it from its environment:\n  run: [{program}, …]   # reads ${name}\n  env: {{ {name}: \"${{{{ env.{name} }}}}\" }}"
                        )
                    };
                    self.push(
                        Diagnostic::warning(
                            Code::SecretInArgv,
                            format!("{pointer}/{k}"),
                            format!(
                                "`${{{{ env.{name} }}}}` is a secret on a command line, where every local user can read it (`ps`)"
                            ),
                        )
                        .with_target(Target::Within {
                            start: placeholder.start,
                            len: placeholder.len,
                        })
                        .with_help(help),
                    );
                }
            }
        }
    }

    /// Relative script paths must exist beside the plan (the seed's missing-script incident);
    /// programs should be on PATH.
    pub(super) fn argvs(&mut self, base: &Path) {
        for (pointer, argv) in self.all_argvs() {
            for (k, item) in argv.iter().enumerate() {
                let arg = item.0.as_str();
                if arg.contains("${{") {
                    continue;
                }
                let relative = arg.starts_with("./") || arg.starts_with("../");
                if relative && !base.join(arg).exists() {
                    self.push(
                        Diagnostic::error(
                            Code::MissingScript,
                            format!("{pointer}/{k}"),
                            format!("`{arg}` does not exist (looked in `{}`)", base.display()),
                        )
                        .with_help("relative paths are relative to the plan's folder; commit the script next to the plan"),
                    );
                } else if k == 0 && !relative && !program_exists(arg) {
                    self.push(
                        Diagnostic::warning(
                            Code::CommandNotFound,
                            format!("{pointer}/0"),
                            format!(
                                "program `{arg}` is not on this machine's PATH (reported once)"
                            ),
                        )
                        .with_help("fine if the machine that runs the plan has it"),
                    );
                }
            }
        }
    }
}

/// Whether a program is on PATH; answers are cached for the process, since one `validate` of
/// many plans asks about the same few programs.
fn program_exists(program: &str) -> bool {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, bool>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(program).copied()) {
        return known;
    }
    let path = Path::new(program);
    let exists = if path.is_absolute() {
        path.exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if let Ok(mut cache) = cache.lock() {
        cache.insert(program.to_owned(), exists);
    }
    exists
}
