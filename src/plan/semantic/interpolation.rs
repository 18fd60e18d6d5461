//! `${{ … }}` placeholders, in whatever part of the plan they stand.

use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic, Target, did_you_mean};
use crate::plan::interpolate::{self, Reference};
use crate::plan::model::Plan;
use crate::plan::span::join;

/// Checks every `${{ … }}` in the document: it parses, its var exists, and it stands where its
/// value is known.
pub(super) fn interpolations(plan: &Plan, document: &Value, out: &mut Vec<Diagnostic>) {
    let vars: Vec<String> = plan.vars.keys().cloned().collect();
    let mut stack = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                stack.extend(map.iter().map(|(k, v)| (join(&pointer, k), v)));
            }
            Value::Array(items) => {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{pointer}/{i}"), v)),
                );
            }
            Value::String(text) if text.contains("${{") => {
                string_interpolations(&pointer, text, plan, &vars, out);
            }
            _ => {}
        }
    }
}

fn string_interpolations(
    pointer: &str,
    text: &str,
    plan: &Plan,
    vars: &[String],
    out: &mut Vec<Diagnostic>,
) {
    let placeholders = match interpolate::placeholders(text) {
        Ok(placeholders) => placeholders,
        Err(error) => {
            out.push(
                Diagnostic::error(Code::BadInterpolation, pointer, error.message).with_target(
                    Target::Within {
                        start: error.start,
                        len: error.len,
                    },
                ),
            );
            return;
        }
    };
    let section = pointer.split('/').nth(1).unwrap_or_default();
    for placeholder in placeholders {
        let within = Target::Within {
            start: placeholder.start,
            len: placeholder.len,
        };
        let reference = &placeholder.reference;
        let misplaced = match (section, reference) {
            ("vars", _) => Some("`vars` are plain values; they cannot refer to anything"),
            ("name" | "description" | "version" | "schedule", _) => {
                Some("interpolation is not available here")
            }
            ("preflight", Reference::StageName | Reference::StageTraffic) => {
                Some("preflight runs before any stage, so `stage` has no value there")
            }
            _ => None,
        };
        if let Some(why) = misplaced {
            out.push(
                Diagnostic::error(
                    Code::BadInterpolation,
                    pointer,
                    format!("`${{{{ {reference} }}}}` cannot be used here: {why}"),
                )
                .with_target(within),
            );
            continue;
        }
        if let Reference::Var(name) = reference
            && !plan.vars.contains_key(name)
        {
            let mut d = Diagnostic::error(
                Code::UnknownVar,
                pointer,
                format!("`vars.{name}` is not defined in `vars`"),
            )
            .with_target(within)
            .depending_on(join("/vars", name));
            d = d.with_help(
                did_you_mean(name, vars, "vars.")
                    .unwrap_or_else(|| format!("add `{name}: …` under `vars`")),
            );
            out.push(d);
        }
    }
}
