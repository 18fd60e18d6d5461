//! Validation in three layers — YAML, JSON Schema, meaning — reporting every problem at once.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic, Located, Severity};
use crate::plan::load::{self, Loaded, ReadError, Source};
use crate::plan::model::Plan;
use crate::plan::repair::Repaired;
use crate::plan::schema::PlanSchema;
use crate::plan::semantic;

/// What validation may look at beyond the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// Look for scripts beside the plan and programs on PATH. Only reads the filesystem.
    pub filesystem: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Self { filesystem: true }
    }
}

/// The outcome of validating one file.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: Source,
    /// Sorted by position.
    pub diagnostics: Vec<Located>,
    /// The typed plan, when it got that far (no YAML or schema error).
    pub plan: Option<Plan>,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.diagnostic.severity == severity)
            .count()
    }

    /// Valid: no errors, and under `strict` no warnings either.
    pub fn is_valid(&self, strict: bool) -> bool {
        self.count(Severity::Error) == 0 && (!strict || self.count(Severity::Warning) == 0)
    }
}

/// Reads and validates a plan file.
pub fn validate_file(path: &Path, checks: Checks) -> Result<Report, ReadError> {
    validate_file_with(path, checks, &[])
}

/// Validates a plan with `vars` overridden (`--var NAME=VALUE`): each name must be one of the
/// plan's `vars`, and the plan is checked with the new values, as a run would use them.
pub fn validate_file_with(
    path: &Path,
    checks: Checks,
    vars: &[(String, String)],
) -> Result<Report, ReadError> {
    Ok(match load::read(path)? {
        Loaded::Text(source) => validate_source_with(source, checks, vars),
        Loaded::Invalid(source, diagnostic) => finish(source, vec![diagnostic], None),
    })
}

/// Validates plan text; `source.path` decides where relative script paths are looked for.
pub fn validate_source(source: Source, checks: Checks) -> Report {
    validate_source_with(source, checks, &[])
}

/// Replaces the values of the plan's `vars` named in `overrides`; a name the plan does not
/// have is an `unknown-var` finding at `vars` (a typo must not pass silently).
fn override_vars(value: &mut Value, overrides: &[(String, String)]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (name, new) in overrides {
        match value.get_mut("vars").and_then(Value::as_object_mut) {
            Some(vars) if vars.contains_key(name) => {
                vars.insert(name.clone(), Value::String(new.clone()));
            }
            vars => {
                let known: Vec<String> = vars
                    .map(|v| v.keys().cloned().collect())
                    .unwrap_or_default();
                diagnostics.push(Diagnostic::error(
                    Code::UnknownVar,
                    if known.is_empty() { "" } else { "/vars" },
                    format!(
                        "`--var {name}=…`: the plan has no var `{name}`{}",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (its vars: {})", known.join(", "))
                        }
                    ),
                ));
            }
        }
    }
    diagnostics
}

pub fn validate_source_with(source: Source, checks: Checks, vars: &[(String, String)]) -> Report {
    crate::plan::diagnostic::reset_suggestion_budget();
    let mut document = match load::parse(&source) {
        Ok(document) => document,
        Err(diagnostic) => return finish(source, vec![diagnostic], None),
    };
    let overridden = override_vars(&mut document.value, vars);
    let schema = PlanSchema::get();
    let mut diagnostics = schema.check(&document.value);
    let base = plan_dir(&source.path);
    let filesystem = checks.filesystem.then_some(base.as_path());
    let mut plan = None;
    if diagnostics.is_empty() {
        match typed(document.value.clone()) {
            Ok(typed) => {
                diagnostics.extend(semantic::check(&typed, &document.value, filesystem));
                plan = Some(typed);
            }
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    } else if let Some(repaired) = Repaired::new(schema, &document.value)
        && let Ok(typed) = typed(repaired.value.clone())
    {
        // The meaning of what the schema did not reject; the plan itself stays `None`: a
        // repaired plan is never run.
        diagnostics.extend(
            semantic::check(&typed, &repaired.value, filesystem)
                .into_iter()
                .filter(|d| !repaired.depends_on_repair(d)),
        );
    }
    if !overridden.is_empty() {
        // A `--var` the plan does not have: the meaning is checked, but nothing runs.
        plan = None;
        diagnostics.extend(overridden);
    }
    let located = diagnostics
        .into_iter()
        .map(|d| d.locate(&source.text, &document.map, &source.lines))
        .collect();
    finish_located(source, located, plan)
}

/// Reads and validates a scenario file, and checks it against the plan it drives.
pub fn validate_scenario(
    path: &Path,
    plan: &Plan,
) -> Result<(Report, Option<crate::plan::scenario::Scenario>), ReadError> {
    crate::plan::diagnostic::reset_suggestion_budget();
    let source = match load::read(path)? {
        Loaded::Text(source) => source,
        Loaded::Invalid(source, diagnostic) => {
            return Ok((finish(source, vec![diagnostic], None), None));
        }
    };
    let document = match load::parse(&source) {
        Ok(document) => document,
        Err(diagnostic) => return Ok((finish(source, vec![diagnostic], None), None)),
    };
    let schema = PlanSchema::scenario();
    let mut diagnostics = schema.check(&document.value);
    let mut scenario = None;
    if diagnostics.is_empty() {
        match serde_path_to_error::deserialize(document.value.clone()) {
            Ok(typed) => {
                diagnostics.extend(crate::plan::scenario::check_against(&typed, plan));
                scenario = Some(typed);
            }
            Err(error) => diagnostics.push(Diagnostic::error(Code::Schema, "", error.to_string())),
        }
    } else if let Some(repaired) = Repaired::new(schema, &document.value)
        && let Ok(typed) = serde_json::from_value(repaired.value.clone())
    {
        // As for a plan: the rest of the scenario is still checked, never run.
        diagnostics.extend(
            crate::plan::scenario::check_against(&typed, plan)
                .into_iter()
                .filter(|d| !repaired.depends_on_repair(d)),
        );
    }
    let located = diagnostics
        .into_iter()
        .map(|d| d.locate(&source.text, &document.map, &source.lines))
        .collect();
    Ok((finish_located(source, located, None), scenario))
}

/// The schema admits only what the model accepts, so this fails only if the two drift apart.
fn typed(value: Value) -> Result<Plan, Diagnostic> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let pointer = error.path().iter().fold(String::new(), |pointer, segment| {
            format!("{pointer}/{segment}")
        });
        Diagnostic::error(Code::Schema, pointer, error.inner().to_string())
    })
}

/// The folder relative paths in a plan are resolved against.
pub fn plan_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn finish(source: Source, diagnostics: Vec<Diagnostic>, plan: Option<Plan>) -> Report {
    let map = crate::plan::span::SourceMap::default();
    let located = diagnostics
        .into_iter()
        .map(|d| d.locate(&source.text, &map, &source.lines))
        .collect();
    finish_located(source, located, plan)
}

fn finish_located(source: Source, mut diagnostics: Vec<Located>, plan: Option<Plan>) -> Report {
    diagnostics.sort_by(|a, b| {
        (a.line, a.column, a.diagnostic.severity).cmp(&(b.line, b.column, b.diagnostic.severity))
    });
    // A program missing from PATH is said once, where it first appears.
    let mut said = std::collections::HashSet::new();
    diagnostics.retain(|d| {
        d.diagnostic.code != Code::CommandNotFound || said.insert(d.diagnostic.message.clone())
    });
    Report {
        source,
        diagnostics,
        plan,
    }
}
