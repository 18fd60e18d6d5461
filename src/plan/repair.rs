//! A repaired copy of a plan the schema rejected, so that the meaning checks still run on the
//! rest of it and `validate` reports every problem in one run (README, "Validating plans").
//!
//! Each schema violation is mended: an unknown key is dropped, a bad value (or a missing required
//! key) becomes a neutral valid value built from the schema. The pointers of the mended nodes are
//! kept, and a meaning finding is reported only when it does not depend on one of them — see
//! [`Repaired::depends_on_repair`] for the rule.

use std::collections::BTreeSet;

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};

use crate::plan::diagnostic::{Diagnostic, closest};
use crate::plan::model::NAME_PATTERN;
use crate::plan::schema::PlanSchema;
use crate::plan::span::join;
use crate::plan::units::DURATION_PATTERN;

/// Rounds of mending before giving up: a neutral value is valid by construction, so a second
/// round only finds what the first one could not see (a key a mended value lacked).
const ROUNDS: usize = 3;

/// A document with its schema violations mended.
#[derive(Debug)]
pub struct Repaired {
    pub value: Value,
    /// JSON Pointers of the mended nodes, sorted, so that a plan with thousands of them is
    /// still judged quickly.
    pub pointers: BTreeSet<String>,
}

impl Repaired {
    /// Mends `document`; `None` when it cannot be made valid (then only the schema findings are
    /// reported, as before there was a repair).
    pub fn new(schema: &PlanSchema, document: &Value) -> Option<Repaired> {
        let mut repaired = Repaired {
            value: document.clone(),
            pointers: BTreeSet::new(),
        };
        for _ in 0..ROUNDS {
            let errors: Vec<ValidationError<'static>> = schema
                .validator
                .iter_errors(&repaired.value)
                .map(ValidationError::to_owned)
                .collect();
            // Left alone on purpose: "exactly one of" (or "at least one of") a set of keys on a
            // node already marked; the typed model reads such a node as having no kind (a gate
            // with no conditions), which the checks allow.
            let open: Vec<_> = errors
                .into_iter()
                .filter(|e| {
                    let at_least_one = matches!(e.kind(), ValidationErrorKind::AnyOf { .. })
                        && !schema.any_of_required(e.schema_path().as_str()).is_empty();
                    !((is_one_of(e) || at_least_one) && repaired.covers(e.instance_path().as_str()))
                })
                .collect();
            if open.is_empty() {
                return Some(repaired);
            }
            let mut edits = Vec::new();
            for error in &open {
                repaired.plan(schema, error, &mut edits)?;
            }
            // Deepest first, so a mended parent is written last and wins.
            edits.sort_by_key(|edit| std::cmp::Reverse(edit.pointer().matches('/').count()));
            for edit in edits {
                edit.apply(&mut repaired.value);
            }
        }
        None
    }

    /// Whether a pointer is at or inside a mended node: it, or one of its ancestors, is one.
    fn covers(&self, pointer: &str) -> bool {
        pointer
            .match_indices('/')
            .map(|(at, _)| &pointer[..at])
            .chain([pointer])
            .any(|ancestor| self.pointers.contains(ancestor))
    }

    /// Whether a mended node lies strictly inside `pointer`: between `POINTER/` and `POINTER0`
    /// (`0` follows `/`) in the sorted set.
    fn holds(&self, pointer: &str) -> bool {
        self.pointers
            .range(format!("{pointer}/")..format!("{pointer}0"))
            .next()
            .is_some()
    }

    /// The rule: a meaning finding depends on a mended node when
    /// - its own pointer is at or inside a mended one (it is about the replaced value itself), or
    /// - a node it says it reads ([`Diagnostic::depends`]: a probe's or gate's definition by name,
    ///   the previous stage's traffic, the stage's bake and checks …) is at, inside or above a
    ///   mended one (above: it reads a whole node of which a part was replaced, as a metric of
    ///   probe `p` reads `/probes/p` when `/probes/p/http/metrics` was mended).
    ///
    /// A misspelt key also marks the key it was probably meant to be (`probess` marks
    /// `/probes`), so a typo in `probes` does not also report every reference to a probe; a name
    /// the schema refuses marks its whole map, as a reference may mean that name, renamed.
    pub fn depends_on_repair(&self, finding: &Diagnostic) -> bool {
        self.covers(&finding.pointer)
            || finding
                .depends
                .iter()
                .any(|d| self.covers(d) || self.holds(d))
    }

    /// The edits that mend one violation.
    fn plan(
        &mut self,
        schema: &PlanSchema,
        error: &ValidationError<'_>,
        edits: &mut Vec<Edit>,
    ) -> Option<()> {
        let pointer = error.instance_path().as_str().to_owned();
        let schema_path = error.schema_path().as_str();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = schema.known_properties(schema_path);
                for name in unexpected {
                    self.pointers.insert(join(&pointer, name));
                    if let Some(meant) = closest(name, &known) {
                        self.pointers.insert(join(&pointer, meant));
                    }
                    edits.push(Edit::Remove(join(&pointer, name)));
                }
            }
            ValidationErrorKind::PropertyNames { error } => {
                // The entry is dropped, and with it every name of the map is in doubt: a
                // reference to a name that does not exist may mean the dropped one, renamed.
                let name = error.instance().as_str()?.to_owned();
                self.pointers.insert(pointer.clone());
                edits.push(Edit::Remove(join(&pointer, &name)));
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str()?;
                if schema_path.ends_with("/dependentRequired") {
                    let present = error.instance().as_object()?;
                    for by in schema.dependents(schema_path, name) {
                        if present.contains_key(&by) {
                            self.pointers.insert(join(&pointer, &by));
                            edits.push(Edit::Remove(join(&pointer, &by)));
                        }
                    }
                } else {
                    let object = schema.schema_at(schema_path)?;
                    let property = object.get("properties")?.get(name)?;
                    let neutral = neutral(schema, property, 0)?;
                    self.pointers.insert(join(&pointer, name));
                    edits.push(Edit::Insert(pointer, name.to_owned(), neutral));
                }
            }
            ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. }
                if !schema.one_of_required(schema_path).is_empty() =>
            {
                self.pointers.insert(pointer);
            }
            // A gate with neither `require` nor `compare`: nothing neutral to add, so the node
            // is marked and left alone, like "exactly one of".
            ValidationErrorKind::AnyOf { .. }
                if !schema.any_of_required(schema_path).is_empty() =>
            {
                self.pointers.insert(pointer);
            }
            _ => {
                let node = schema.schema_at(schema_path)?;
                let neutral = neutral(schema, node, 0)?;
                self.pointers.insert(pointer.clone());
                edits.push(Edit::Replace(pointer, neutral));
            }
        }
        Some(())
    }
}

fn is_one_of(error: &ValidationError<'_>) -> bool {
    matches!(
        error.kind(),
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::OneOfMultipleValid { .. }
    )
}

enum Edit {
    Remove(String),
    Replace(String, Value),
    Insert(String, String, Value),
}

impl Edit {
    fn pointer(&self) -> &str {
        match self {
            Edit::Remove(p) | Edit::Replace(p, _) | Edit::Insert(p, _, _) => p,
        }
    }

    /// Applies the edit; one whose node a mended parent already replaced does nothing.
    fn apply(self, document: &mut Value) {
        match self {
            Edit::Remove(pointer) => {
                let Some((parent, key)) = pointer.rsplit_once('/') else {
                    return;
                };
                if let Some(Value::Object(map)) = document.pointer_mut(parent) {
                    map.remove(&unescape(key));
                }
            }
            Edit::Replace(pointer, value) => {
                if let Some(node) = document.pointer_mut(&pointer) {
                    *node = value;
                }
            }
            Edit::Insert(pointer, key, value) => {
                if let Some(Value::Object(map)) = document.pointer_mut(&pointer) {
                    map.entry(key).or_insert(value);
                }
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Deepest `$ref` chain followed when building a neutral value (the schema's nesting is far
/// shallower; a cycle would end here).
const MAX_DEPTH: usize = 16;

/// The plainest value a schema node accepts: its first allowed constant, `"x"` for a name, `1s`
/// for a duration, the minimum of a number, and the required keys of a mapping.
fn neutral(schema: &PlanSchema, node: &Value, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let target = schema.schema.pointer(reference.strip_prefix('#')?)?;
        return neutral(schema, target, depth + 1);
    }
    if let Some(constant) = node.get("const") {
        return Some(constant.clone());
    }
    if let Some(first) = node
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return Some(first.clone());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = node
            .get(key)
            .and_then(Value::as_array)
            .and_then(|b| b.first())
            && node.get("type").is_none()
            && first.get("required").is_none()
        {
            return neutral(schema, first, depth + 1);
        }
    }
    let kind = match node.get("type") {
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str),
        Some(kind) => kind.as_str(),
        None => None,
    };
    let number = |default: f64| {
        let low = node
            .get("minimum")
            .or_else(|| node.get("exclusiveMinimum"))
            .and_then(Value::as_f64);
        low.unwrap_or(default)
    };
    Some(match kind? {
        "string" => Value::String(match node.get("pattern").and_then(Value::as_str) {
            Some(DURATION_PATTERN) => "1s".to_owned(),
            Some(pattern) if pattern.starts_with("^(/") => String::new(),
            Some(NAME_PATTERN | _) | None => "x".to_owned(),
        }),
        "integer" => Value::from(node.get("minimum").and_then(Value::as_u64).unwrap_or(0)),
        "number" => serde_json::Number::from_f64(number(0.0)).map(Value::Number)?,
        "boolean" => Value::Bool(false),
        "array" => {
            let count = node.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = match count {
                0 => Value::Null,
                _ => neutral(schema, node.get("items")?, depth + 1)?,
            };
            Value::Array(vec![item; usize::try_from(count).ok()?])
        }
        "object" => {
            let mut map = Map::new();
            let required = node.get("required").and_then(Value::as_array);
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                let property = node.get("properties")?.get(name)?;
                map.insert(name.to_owned(), neutral(schema, property, depth + 1)?);
            }
            if node
                .get("minProperties")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
            {
                let values = node.get("additionalProperties")?;
                map.insert("x".to_owned(), neutral(schema, values, depth + 1)?);
            }
            Value::Object(map)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diagnostic::Code;

    fn repaired(pointers: &[&str]) -> Repaired {
        Repaired {
            value: Value::Null,
            pointers: pointers.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn a_finding_depends_on_a_repair_at_or_inside_its_node_or_below_what_it_reads() {
        let r = repaired(&["/stages/0/bake", "/probes/app/http/metrics"]);
        let at = |pointer: &str| Diagnostic::error(Code::Range, pointer, "x");
        assert!(r.depends_on_repair(&at("/stages/0/bake")));
        // A finding about the stage as a whole is not about its bake…
        assert!(!r.depends_on_repair(&at("/stages/0")));
        // …unless it says it reads it, or reads something the repair is part of.
        assert!(r.depends_on_repair(&at("/stages/0/checks/at/0").depending_on("/stages/0/bake")));
        assert!(r.depends_on_repair(&at("/gates/g/require/0").depending_on("/probes/app")));
        assert!(!r.depends_on_repair(&at("/gates/g/require/0").depending_on("/probes/load")));
        // `/stages/0/bake` does not contain `/stages/0/bakery`.
        assert!(!r.depends_on_repair(&at("/stages/0/bakery")));
    }

    #[test]
    fn every_kind_of_schema_error_is_mended_into_a_plan_the_model_reads() {
        let document = serde_json::json!({
            "version": 2,
            "probess": {},
            "probes": {
                "bad name": { "http": { "url": "http://x" } },
                "p": { "http": { "ur": "http://x", "expect_status": 99 } },
                "q": {},
            },
            "gates": { "g": { "at": "evry", "require": [{ "check": "p.x < 1", "within": {} }] } },
            "preflight": [{ "name": "a", "env": { "A": "b" } }],
            "stages": [
                { "name": "s", "traffic": "5%", "bake": "5mins", "checks": { "at": [3], "probes": [] } },
                { "name": "t", "traffic": 101 },
            ],
        });
        let schema = PlanSchema::get();
        let mended = Repaired::new(schema, &document).expect("mended");
        let plan: Result<crate::plan::model::Plan, _> =
            serde_json::from_value(mended.value.clone());
        assert!(plan.is_ok(), "{plan:?}\n{:#}", mended.value);
        for pointer in [
            "/version",
            "/probes",
            "/stages/0/bake",
            "/stages/1/bake",
            "/gates/g/at",
        ] {
            assert!(
                mended.pointers.iter().any(|p| p == pointer),
                "{pointer} not among {:?}",
                mended.pointers
            );
        }
    }
}
