//! The plan's JSON Schema: generated from the model, embedded, and used to validate documents,
//! each error turned into a diagnostic that names the key and suggests a fix.

use std::fmt::Write as _;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::plan::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::plan::model::{CONFIDENCE_PATTERN, NAME_PATTERN, Plan};
use crate::plan::schema_text::{self, field_names};
use crate::plan::span::join;
use crate::plan::units::{DURATION_PATTERN, parse_duration};

/// Where the schema is published; editors read it through the plan's first-line comment.
pub const SCHEMA_ID: &str =
    "https://github.com/ion-plan/ion-plan/raw/main/schemas/plan.schema.json";

/// The plan schema, generated from the model types.
pub fn plan_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<Plan>())
        .expect("a generated schema is JSON");
    tidy(&mut schema);
    for_editors(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), Value::String(SCHEMA_ID.into()));
    }
    schema
}

/// Makes the generated schema strict and plain: an optional key may be absent but not `null`
/// (a plan says what it means), and a set of constants is an `enum`, whose errors name the
/// allowed values.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Array(branches)) = object.get_mut("anyOf") {
                branches.retain(|b| b != &serde_json::json!({ "type": "null" }));
                if branches.len() == 1
                    && let Some(Value::Object(only)) = branches.pop()
                {
                    object.remove("anyOf");
                    for (key, value) in only {
                        object.entry(key).or_insert(value);
                    }
                }
            }
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            let constants: Option<Vec<(Value, Option<String>)>> = object
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|branches| {
                    branches
                        .iter()
                        .map(|b| {
                            let description = b
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_owned);
                            b.get("const").cloned().map(|c| (c, description))
                        })
                        .collect()
                });
            if let Some(constants) = constants {
                object.remove("oneOf");
                let mut description = object
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                for (constant, about) in &constants {
                    if let (Some(name), Some(about)) = (constant.as_str(), about) {
                        let _ = write!(description, "\n- `{name}`: {about}");
                    }
                }
                object.insert("description".into(), Value::String(description));
                // Editors (VS Code, yaml-language-server) show these beside each value offered:
                // the Markdown ones where the client renders Markdown, the plain ones elsewhere.
                let abouts: Vec<Value> = constants
                    .iter()
                    .map(|(_, about)| Value::String(about.clone().unwrap_or_default()))
                    .collect();
                object.insert("enumDescriptions".into(), Value::Array(abouts.clone()));
                object.insert("markdownEnumDescriptions".into(), Value::Array(abouts));
                object.insert("type".into(), Value::String("string".into()));
                object.insert(
                    "enum".into(),
                    Value::Array(constants.into_iter().map(|(c, _)| c).collect()),
                );
            }
            object.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// Puts a `markdownDescription` beside each `description`: editors render `description` as
/// plain text (backticks and lists shown raw) and prefer the Markdown one when it is there.
fn for_editors(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(description)) = object.get("description") {
                let markdown = Value::String(description.clone());
                object.insert("markdownDescription".into(), markdown);
            }
            object
                .iter_mut()
                .filter(|(key, _)| key.as_str() != "markdownDescription")
                .for_each(|(_, v)| for_editors(v));
        }
        Value::Array(items) => items.iter_mut().for_each(for_editors),
        _ => {}
    }
}

/// The schema as `ion-plan schema` prints it and `schemas/plan.schema.json` holds it.
pub fn plan_schema_text() -> String {
    schema_text::to_text(&plan_schema(), "Plan", &plan_orders())
}

/// The declared field order of every object the plan schema defines (`$defs` names).
pub fn plan_orders() -> Vec<(&'static str, &'static [&'static str])> {
    use crate::plan::model as m;
    vec![
        ("Plan", field_names::<Plan>()),
        ("Schedule", field_names::<m::Schedule>()),
        ("Probe", field_names::<m::ProbeSpec>()),
        ("HttpProbe", field_names::<m::HttpProbeSpec>()),
        ("PrometheusProbe", field_names::<m::PrometheusProbeSpec>()),
        ("LoadProbe", field_names::<m::LoadProbeSpec>()),
        ("ProbeOverrides", field_names::<m::ProbeOverrides>()),
        ("Gate", field_names::<m::Gate>()),
        ("Compare", field_names::<m::Compare>()),
        ("Insufficient", field_names::<m::Insufficient>()),
        ("OnError", field_names::<m::OnError>()),
        ("ConditionSpec", field_names::<m::ConditionSpec>()),
        ("Within", field_names::<m::Within>()),
        ("PreflightItem", field_names::<m::PreflightItem>()),
        ("Step", field_names::<m::Step>()),
        ("HttpStep", field_names::<m::HttpStep>()),
        ("Checks", field_names::<m::Checks>()),
        ("StageDefaults", field_names::<m::StageDefaults>()),
        ("Approval", field_names::<m::Approval>()),
        ("Stage", field_names::<m::Stage>()),
        ("Early", field_names::<m::Early>()),
        ("Notify", field_names::<m::Notify>()),
    ]
}

/// The declared field order of every object the scenario schema defines.
pub fn scenario_orders() -> Vec<(&'static str, &'static [&'static str])> {
    use crate::plan::scenario as s;
    vec![
        ("Scenario", field_names::<s::Scenario>()),
        ("Change", field_names::<s::Change>()),
        ("ApprovalScript", field_names::<s::ApprovalScript>()),
        ("AbortScript", field_names::<s::AbortScript>()),
    ]
}

/// The scenario schema (`ion-plan schema --scenario`).
pub fn scenario_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<crate::plan::scenario::Scenario>())
            .expect("a generated schema is JSON");
    tidy(&mut schema);
    for_editors(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            Value::String(SCHEMA_ID.replace("plan.schema", "scenario.schema")),
        );
    }
    schema
}

/// The scenario schema as `schemas/scenario.schema.json` holds it.
pub fn scenario_schema_text() -> String {
    schema_text::to_text(&scenario_schema(), "Scenario", &scenario_orders())
}

/// A schema and its compiled validator, built once per process.
pub struct PlanSchema {
    pub(crate) schema: Value,
    pub(crate) validator: Validator,
}

impl PlanSchema {
    /// The plan schema.
    pub fn get() -> &'static PlanSchema {
        static SCHEMA: OnceLock<PlanSchema> = OnceLock::new();
        SCHEMA.get_or_init(|| PlanSchema::compile(plan_schema()))
    }

    /// The scenario schema.
    pub fn scenario() -> &'static PlanSchema {
        static SCHEMA: OnceLock<PlanSchema> = OnceLock::new();
        SCHEMA.get_or_init(|| PlanSchema::compile(scenario_schema()))
    }

    fn compile(schema: Value) -> PlanSchema {
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        PlanSchema { schema, validator }
    }

    /// Every schema violation of a document, as diagnostics.
    pub fn check(&self, document: &Value) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(document) {
            self.convert(&error, document, &mut out);
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|d| seen.insert((d.pointer.clone(), d.code, d.message.clone())));
        out
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per error kind: a table reads best in one place"
    )]
    fn convert(&self, error: &ValidationError<'_>, document: &Value, out: &mut Vec<Diagnostic>) {
        let pointer = error.instance_path().as_str().to_owned();
        let schema_path = error.schema_path().as_str();
        let instance = error.instance().as_ref();
        let context = context_name(schema_path);
        let key = last_token(&pointer);
        let diagnostic = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = self.known_properties(schema_path);
                for name in unexpected {
                    let mut d = Diagnostic::error(
                        Code::UnknownKey,
                        join(&pointer, name),
                        format!("unknown key `{name}` in {context}"),
                    )
                    .at_key();
                    d.help = Some(match did_you_mean(name, &known, "") {
                        Some(help) => help,
                        None if known.is_empty() => "remove it".to_owned(),
                        None => format!("expected one of: {}", known.join(", ")),
                    });
                    out.push(d);
                }
                return;
            }
            ValidationErrorKind::Type { kind } if instance.is_null() => Diagnostic::error(
                Code::Type,
                &pointer,
                format!("`{key}` is empty; it must be {}", type_names(kind)),
            )
            .at_key()
            .with_help(format!("give `{key}` a value, or remove the key")),
            ValidationErrorKind::Type { kind } => {
                let expected = if schema_path.contains("/$defs/Duration/") {
                    "a duration such as `10m`".to_owned()
                } else {
                    type_names(kind)
                };
                let mut d = Diagnostic::error(
                    Code::Type,
                    &pointer,
                    format!(
                        "`{key}` must be {expected}, not {}",
                        describe_value(instance)
                    ),
                );
                if schema_path.contains("/$defs/Duration/") {
                    d = d.with_help(format!(
                        "a duration needs a unit, e.g. `{key}: {}s`",
                        scalar_text(instance)
                    ));
                } else if let (Value::String(s), true) = (instance, expected.contains("number")) {
                    if let Some(number) = s.strip_suffix('%') {
                        d = d.with_help(format!("write the number without `%`: `{key}: {number}`"));
                    }
                } else if expected.contains("string")
                    && !instance.is_object()
                    && !instance.is_array()
                {
                    d = d.with_help(format!("quote it: `{key}: \"{}\"`", scalar_text(instance)));
                }
                d
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                // `dependentRequired`: a key that only makes sense beside another.
                let needed_by = schema_path.ends_with("/dependentRequired").then(|| {
                    let present = instance.as_object();
                    self.dependents(schema_path, name)
                        .into_iter()
                        .find(|by| present.is_some_and(|o| o.contains_key(by)))
                        .unwrap_or_default()
                });
                match needed_by {
                    Some(by) => Diagnostic::error(
                        Code::Required,
                        format!("{pointer}/{by}"),
                        format!("`{by}` in {context} needs `{name}` beside it"),
                    )
                    .with_help(format!(
                        "`{by}` applies to `{name}` only: add `{name}` or remove `{by}`"
                    )),
                    None => Diagnostic::error(
                        Code::Required,
                        &pointer,
                        format!("{context} is missing the required key `{name}`"),
                    ),
                }
                .at_key()
            }
            ValidationErrorKind::Enum { options } => {
                let names: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(scalar_text).collect())
                    .unwrap_or_default();
                let mut d = Diagnostic::error(
                    Code::BadValue,
                    &pointer,
                    format!(
                        "`{key}` cannot be {}: expected one of {}",
                        describe_value(instance),
                        names.join(", ")
                    ),
                );
                if let Some(help) = instance.as_str().and_then(|s| did_you_mean(s, &names, "")) {
                    d = d.with_help(help);
                }
                d
            }
            ValidationErrorKind::Pattern { pattern } => pattern_error(&pointer, instance, pattern),
            ValidationErrorKind::PropertyNames { error } => {
                let name = error.instance().as_str().unwrap_or_default().to_owned();
                Diagnostic::error(
                    Code::BadName,
                    join(&pointer, &name),
                    format!("`{name}` cannot be used as a name in `{key}`"),
                )
                .at_key()
                .with_help(
                    "names start with a letter or `_` and hold only letters, digits, `_` and `-`, \
                     so that gate conditions can refer to them",
                )
            }
            ValidationErrorKind::AnyOf { .. } if !self.any_of_required(schema_path).is_empty() => {
                let keys = self.any_of_required(schema_path);
                let list = keys
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                Diagnostic::error(
                    Code::Required,
                    &pointer,
                    format!("{context} needs {list} (or both), with at least one entry"),
                )
                .at_key()
                .with_help(format!(
                    "add `{}:` with a condition, or `{}:` with a comparison",
                    keys[0],
                    keys.get(1).map_or("", String::as_str)
                ))
            }
            ValidationErrorKind::OneOfNotValid { context: branches }
            | ValidationErrorKind::OneOfMultipleValid { context: branches }
            // Type alternatives (a header's value: a string or a mapping) read like `oneOf`'s.
            | ValidationErrorKind::AnyOf { context: branches } => {
                if let Some(d) =
                    self.one_of(error, &pointer, instance, &context, document, out, branches)
                {
                    d
                } else {
                    return;
                }
            }
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!(
                    "`{key}` is {}, below the minimum {limit}",
                    scalar_text(instance)
                ),
            ),
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!(
                    "`{key}` is {}, above the maximum {limit}",
                    scalar_text(instance)
                ),
            ),
            ValidationErrorKind::MinItems { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!("`{key}` needs at least {limit} item{}", plural(*limit)),
            ),
            ValidationErrorKind::MaxItems { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!("`{key}` allows at most {limit} item{}", plural(*limit)),
            ),
            ValidationErrorKind::MinProperties { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!(
                    "`{key}` needs at least {limit} entr{}",
                    if *limit == 1 { "y" } else { "ies" }
                ),
            ),
            ValidationErrorKind::MinLength { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!(
                    "`{key}` must be at least {limit} character{} long",
                    plural(*limit)
                ),
            ),
            ValidationErrorKind::MaxLength { limit } => Diagnostic::error(
                Code::Range,
                &pointer,
                format!(
                    "`{key}` must be at most {limit} character{} long",
                    plural(*limit)
                ),
            ),
            _ => Diagnostic::error(Code::Schema, &pointer, error.to_string()),
        };
        out.push(diagnostic);
    }

    /// `oneOf` over `required` alternatives means "exactly one of these keys"; over types (a
    /// condition's string-or-map), the branch of the value's own type explains the problem.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces are all distinct"
    )]
    fn one_of(
        &self,
        error: &ValidationError<'_>,
        pointer: &str,
        instance: &Value,
        context: &str,
        document: &Value,
        out: &mut Vec<Diagnostic>,
        branches: &[Vec<ValidationError<'static>>],
    ) -> Option<Diagnostic> {
        let alternatives = self.one_of_required(error.schema_path().as_str());
        if !alternatives.is_empty() {
            let present: Vec<&String> = alternatives
                .iter()
                .filter(|k| instance.get(k.as_str()).is_some())
                .collect();
            let list = alternatives
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Some(if present.len() > 1 {
                let both = present
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                Diagnostic::error(
                    Code::OneOf,
                    pointer,
                    format!("{context} sets {both}; it takes exactly one of {list}"),
                )
                .with_help("split it into separate entries, one kind each")
            } else {
                Diagnostic::error(
                    Code::OneOf,
                    pointer,
                    format!("{context} needs exactly one of {list}"),
                )
            });
        }
        // Type alternatives: explain with the branch that fits the value's type, if any.
        let fitting = branches.iter().find(|errors| {
            !errors.iter().any(|e| {
                e.instance_path().as_str() == pointer
                    && matches!(e.kind(), ValidationErrorKind::Type { .. })
            })
        });
        match fitting {
            Some(errors) if !errors.is_empty() => {
                for e in errors {
                    self.convert(e, document, out);
                }
                None
            }
            _ => Some(Diagnostic::error(
                Code::Type,
                pointer,
                format!(
                    "`{}` cannot be {}: {}",
                    last_token(pointer),
                    describe_value(instance),
                    self.alternatives(error.schema_path().as_str())
                        .or_else(|| self.description(error.schema_path().as_str()))
                        .unwrap_or_else(|| "it matches none of the allowed forms".into())
                ),
            )),
        }
    }

    /// Every form a `oneOf` over types allows, in words: "a condition is a string like
    /// `load.canary.error_rate <= 1%` or a mapping with `check:`". None when a branch has no
    /// plain wording (the description is used instead).
    fn alternatives(&self, keyword_path: &str) -> Option<String> {
        let owner = self.schema_at(keyword_path)?;
        let branches = self.schema.pointer(keyword_path)?.as_array()?;
        let example = owner
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .and_then(Value::as_str);
        let words = branches
            .iter()
            .map(|branch| self.branch_words(branch, example))
            .collect::<Option<Vec<String>>>()?;
        let (last, rest) = words.split_last()?;
        let list = if rest.is_empty() {
            last.clone()
        } else {
            format!("{} or {last}", rest.join(", "))
        };
        let name = context_name(keyword_path);
        Some(if name == "the plan" {
            format!("expected {list}")
        } else {
            format!("{} is {list}", name.trim_matches('`'))
        })
        .map(|sentence| with_article(&sentence))
    }

    fn branch_words(&self, branch: &Value, example: Option<&str>) -> Option<String> {
        let branch = match branch.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.schema.pointer(reference.strip_prefix('#')?)?,
            None => branch,
        };
        match branch.get("type").and_then(Value::as_str)? {
            "string" => Some(match example {
                Some(example) => format!("a string like `{example}`"),
                None => "a string".to_owned(),
            }),
            kind @ ("number" | "integer") => {
                let range = match (branch.get("minimum"), branch.get("maximum")) {
                    (Some(min), Some(max)) => format!(" from {min} to {max}"),
                    _ => String::new(),
                };
                Some(format!(
                    "a{} {kind}{range}",
                    if kind == "integer" { "n" } else { "" }
                ))
            }
            "object" => {
                let required: Vec<String> = branch
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(|k| format!("`{k}:`"))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(if required.is_empty() {
                    "a mapping".to_owned()
                } else {
                    format!("a mapping with {}", required.join(" and "))
                })
            }
            _ => None,
        }
    }

    /// The schema object a keyword location points into (its parent).
    pub(crate) fn schema_at(&self, keyword_path: &str) -> Option<&Value> {
        let parent = keyword_path.rsplit_once('/').map_or("", |(p, _)| p);
        self.schema.pointer(parent)
    }

    pub(crate) fn known_properties(&self, keyword_path: &str) -> Vec<String> {
        self.schema_at(keyword_path)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The keys of a `dependentRequired` keyword that need `name`.
    pub(crate) fn dependents(&self, keyword_path: &str, name: &str) -> Vec<String> {
        self.schema
            .pointer(keyword_path)
            .and_then(Value::as_object)
            .map(|deps| {
                deps.iter()
                    .filter(|(_, needs)| {
                        needs
                            .as_array()
                            .is_some_and(|n| n.iter().any(|n| n == name))
                    })
                    .map(|(by, _)| by.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `anyOf` over branches that each require one key (maybe non-empty): "at least one of
    /// these keys", as a gate's `require` and `compare`. Empty for any other `anyOf`.
    pub(crate) fn any_of_required(&self, keyword_path: &str) -> Vec<String> {
        let Some(branches) = self.schema.pointer(keyword_path).and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for branch in branches {
            match branch.get("required").and_then(Value::as_array) {
                Some(required) if required.len() == 1 => {
                    names.extend(required[0].as_str().map(str::to_owned));
                }
                _ => return Vec::new(),
            }
        }
        names
    }

    pub(crate) fn one_of_required(&self, keyword_path: &str) -> Vec<String> {
        let Some(branches) = self.schema.pointer(keyword_path).and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for branch in branches {
            let Some(object) = branch.as_object() else {
                return Vec::new();
            };
            match object.get("required").and_then(Value::as_array) {
                Some(required) if object.len() == 1 && required.len() == 1 => {
                    names.extend(required[0].as_str().map(str::to_owned));
                }
                _ => return Vec::new(),
            }
        }
        names
    }

    fn description(&self, keyword_path: &str) -> Option<String> {
        self.schema_at(keyword_path)?
            .get("description")?
            .as_str()
            .map(|d| {
                let mut d = d.trim_end_matches('.').to_owned();
                if let Some(first) = d.get(..1) {
                    let lower = first.to_lowercase();
                    d.replace_range(..1, &lower);
                }
                format!("expected {d}")
            })
    }
}

fn pattern_error(pointer: &str, instance: &Value, pattern: &str) -> Diagnostic {
    let text = instance.as_str().unwrap_or_default();
    let key = last_token(pointer);
    if pattern == DURATION_PATTERN {
        let message = parse_duration(text)
            .err()
            .map_or_else(|| format!("`{text}` is not a duration"), |e| e.to_string());
        return Diagnostic::error(Code::BadDuration, pointer, format!("`{key}`: {message}"))
            .with_help("durations look like `500ms`, `30s`, `5m`, `24h`, `14d` or `1h30m`");
    }
    if pattern.starts_with("^(/") {
        return Diagnostic::error(
            Code::Schema,
            pointer,
            format!("`{text}` is not a JSON Pointer"),
        )
        .with_help(format!(
            "a JSON Pointer starts with `/` and separates keys with `/`, e.g. `/{}`",
            text.replace('.', "/")
        ));
    }
    if pattern == CONFIDENCE_PATTERN {
        return Diagnostic::error(
            Code::Range,
            pointer,
            format!("`{key}` must be a percentage from 50% to 99.99%, not `{text}`"),
        )
        .with_help("e.g. `confidence: 95%`");
    }
    if pattern == NAME_PATTERN {
        return Diagnostic::error(
            Code::BadName,
            pointer,
            format!("`{text}` cannot be used as a name"),
        );
    }
    Diagnostic::error(
        Code::Schema,
        pointer,
        format!("`{key}` value `{text}` does not match the pattern `{pattern}`"),
    )
}

/// "stage", "http probe", … from the `$defs` entry a keyword location is in.
fn context_name(schema_path: &str) -> String {
    let mut name = None;
    let mut segments = schema_path.split('/');
    while let Some(segment) = segments.next() {
        if segment == "$defs" {
            name = segments.next();
        }
    }
    let Some(name) = name else {
        return "the plan".to_owned();
    };
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    match words.as_str() {
        "step" | "stage" | "gate" | "probe" | "schedule" | "approval" | "checks" => {
            format!("a {words}")
        }
        "condition spec" | "condition" => "a condition".to_owned(),
        "preflight item" => "a preflight check".to_owned(),
        _ => format!("`{words}`"),
    }
}

/// "condition is …" → "a condition is …"; sentences that already start with an article stay.
fn with_article(sentence: &str) -> String {
    if sentence.starts_with("a ") || sentence.starts_with("an ") || sentence.starts_with("expected")
    {
        sentence.to_owned()
    } else {
        format!("a {sentence}")
    }
}

fn last_token(pointer: &str) -> String {
    let token = pointer.rsplit('/').next().unwrap_or_default();
    if token.is_empty() {
        "plan".to_owned()
    } else if token.bytes().all(|b| b.is_ascii_digit()) {
        let parent = pointer.rsplit('/').nth(1).unwrap_or_default();
        format!("{parent}[{token}]")
    } else {
        token.replace("~1", "/").replace("~0", "~")
    }
}

fn type_names(kind: &TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "integer" => "an integer".to_owned(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| name(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_come_from_defs() {
        assert_eq!(context_name("/$defs/Stage/additionalProperties"), "a stage");
        assert_eq!(context_name("/$defs/HttpProbe/required"), "`http probe`");
        assert_eq!(context_name("/required"), "the plan");
    }
}
