//! The committed schemas as an editor (yaml-language-server, VS Code) reads them: every bundled
//! plan and scenario validates against them, every property says what it is in plain text and
//! Markdown, each enum value has its own description, documented defaults are `default`s, keys
//! come in the order a person writes them, and a value that fits no form of a `oneOf` is told
//! every form (README, "Editor support"; `docs/plan.md`).

mod common;

use std::path::Path;

use common::{ion_plan, root};
use serde_json::Value;

fn committed(name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(root().join("schemas").join(name)).unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
}

/// What check-jsonschema does in `.ci/run`, with the crate the binary uses: the committed file,
/// not the one in memory, is what editors download.
#[test]
fn every_bundled_plan_and_scenario_validates_against_the_committed_schema() {
    for (schema, dir, least) in [
        ("plan.schema.json", "plans", 4),
        ("scenario.schema.json", "plans/scenarios", 3),
    ] {
        let validator = jsonschema::validator_for(&committed(schema).1).unwrap();
        let files = yaml_files(&root().join(dir));
        assert!(files.len() >= least, "{dir}: {files:?}");
        for path in files {
            let document: Value =
                serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&document)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        }
    }
}

/// Every schema object under a `properties` map, with its path.
fn properties<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let here = format!("{path}/{key}");
                if key == "properties"
                    && let Some(map) = child.as_object()
                {
                    out.extend(map.iter().map(|(name, s)| (format!("{here}/{name}"), s)));
                }
                properties(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                properties(item, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The branches of a gate's `anyOf` only add `minItems` to keys described in its `properties`.
fn constraint_only(path: &str, schema: &Value) -> bool {
    path.contains("/anyOf/")
        && schema.as_object().is_some_and(|o| {
            o.keys()
                .all(|k| ["minItems", "minProperties", "type"].contains(&k.as_str()))
        })
}

#[test]
fn every_property_has_a_description_in_text_and_markdown() {
    for name in ["plan.schema.json", "scenario.schema.json"] {
        let (_, schema) = committed(name);
        let mut found = Vec::new();
        properties(&schema, "", &mut found);
        assert!(found.len() > 40 || name.starts_with("scenario"), "{name}");
        for (path, property) in found {
            if constraint_only(&path, property) {
                continue;
            }
            let text = property["description"].as_str().unwrap_or_default();
            assert!(!text.is_empty(), "{name}{path} has no description");
            assert_eq!(
                property["markdownDescription"].as_str(),
                Some(text),
                "{name}{path}"
            );
        }
    }
}

/// Every `enum`, with its path.
fn enums<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(object) => {
            if object.contains_key("enum") {
                out.push((path.to_owned(), value));
            }
            for (key, child) in object {
                enums(child, &format!("{path}/{key}"), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| enums(v, path, out)),
        _ => {}
    }
}

#[test]
fn each_enum_value_has_its_own_description() {
    let (_, schema) = committed("plan.schema.json");
    let mut found = Vec::new();
    enums(&schema, "", &mut found);
    let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "/$defs/Action",
        "/$defs/Direction",
        "/$defs/GateAt",
        "/$defs/NoData",
        "/$defs/Method",
        "/$defs/EventKind",
        "/$defs/NotifyFormat",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    for (path, definition) in found {
        let values = definition["enum"].as_array().unwrap();
        for key in ["enumDescriptions", "markdownEnumDescriptions"] {
            let about = definition[key]
                .as_array()
                .unwrap_or_else(|| panic!("{path} has no {key}"));
            assert_eq!(about.len(), values.len(), "{path} {key}");
            for (value, text) in values.iter().zip(about) {
                assert!(
                    text.as_str().is_some_and(|t| t.len() > 3),
                    "{path}: {value} has no description"
                );
            }
        }
        // The overview lists every value too, for editors that show only `description`.
        let overview = definition["description"].as_str().unwrap();
        for value in values {
            let line = format!("- `{}`: ", value.as_str().unwrap());
            assert!(overview.contains(&line), "{path}: {overview}");
        }
    }
    // `on_fail` and `on_timeout` take the actions; each is described where it is offered.
    let action = &schema["$defs"]["Action"];
    assert_eq!(
        action["enum"],
        serde_json::json!(["rollback", "pause", "warn"])
    );
    assert_eq!(
        action["markdownEnumDescriptions"][1],
        "Wait for `ion-plan approve` or `ion-plan abort`; guards keep running."
    );
    for (def, key) in [("Gate", "on_fail"), ("Approval", "on_timeout")] {
        assert_eq!(
            schema["$defs"][def]["properties"][key]["$ref"],
            "#/$defs/Action"
        );
    }
}

/// A schema that checks one value against a property's own schema (its `$ref`s resolve).
fn property_validator(schema: &Value, property: &Value) -> jsonschema::Validator {
    let mut alone = property.clone();
    alone["$defs"] = schema["$defs"].clone();
    jsonschema::validator_for(&alone).unwrap()
}

#[test]
fn documented_defaults_and_examples_are_in_the_schema_and_valid() {
    let (_, schema) = committed("plan.schema.json");
    let defs = &schema["$defs"];
    // What the model's `unwrap_or`s fill in (`src/engine/`), as the schema states it.
    for (def, key, default) in [
        ("ConditionSpec", "consecutive", serde_json::json!(1)),
        ("ConditionSpec", "no_data", "error".into()),
        ("Gate", "on_fail", "rollback".into()),
        ("Approval", "on_timeout", "rollback".into()),
        ("OnError", "consecutive", 3.into()),
        ("Insufficient", "extend", "0s".into()),
        ("Insufficient", "then", "pause".into()),
        ("Compare", "direction", "increase".into()),
        ("Compare", "confidence", "98%".into()),
        ("HttpProbe", "timeout", "10s".into()),
        ("HttpProbe", "method", "GET".into()),
        ("LoadProbe", "timeout", "5s".into()),
        ("LoadProbe", "concurrency", 1.into()),
        ("PrometheusProbe", "timeout", "10s".into()),
        ("Step", "timeout", "10m".into()),
        ("Step", "retries", 0.into()),
        ("Notify", "format", "json".into()),
        ("Schedule", "timezone", "UTC".into()),
    ] {
        assert_eq!(
            defs[def]["properties"][key]["default"], default,
            "{def}.{key}"
        );
    }
    assert_eq!(
        defs["ConditionSpec"]["properties"]["check"]["examples"][0],
        "load.canary.error_rate <= 0.5%"
    );
    assert_eq!(defs["Checks"]["properties"]["every"]["examples"][0], "30s");
    assert_eq!(defs["Stage"]["properties"]["bake"]["examples"][0], "10m");

    // Every `default` and example is itself a valid value of its property: an editor inserts it.
    let mut found = Vec::new();
    properties(&schema, "", &mut found);
    let mut checked = 0;
    for (path, property) in found {
        let validator = property_validator(&schema, property);
        let values = property.get("default").into_iter().chain(
            property
                .get("examples")
                .into_iter()
                .flat_map(|e| e.as_array().unwrap().iter()),
        );
        for value in values {
            checked += 1;
            assert!(validator.is_valid(value), "{path}: {value} is not valid");
        }
        // A description that names a default names the one the schema gives.
        let text = property["description"].as_str().unwrap_or_default();
        if let Some(rest) = text.split("Default `").nth(1) {
            let named = &rest[..rest.find('`').unwrap()];
            assert_eq!(
                property["default"].as_str(),
                Some(named),
                "{path}: `{text}` names a default the schema lacks"
            );
        }
    }
    assert!(checked >= 30, "{checked}");
}

/// The property names of one definition as the committed text lists them.
fn listed_order<'a>(text: &'a str, def: &str) -> Vec<&'a str> {
    let (start, indent) = if def == "root" {
        (0, 2)
    } else {
        let at = text
            .find(&format!("\n    \"{def}\": {{\n"))
            .unwrap_or_else(|| panic!("no definition {def}"));
        (at, 6)
    };
    let open = format!("\n{}\"properties\": {{\n", " ".repeat(indent));
    let from = start + text[start..].find(&open).unwrap() + open.len();
    let close = format!("\n{}}}", " ".repeat(indent));
    let body = &text[from..from + text[from..].find(&close).unwrap()];
    let name_indent = " ".repeat(indent + 2);
    body.lines()
        .filter_map(|l| l.strip_prefix(&name_indent))
        .filter_map(|l| l.strip_prefix('"'))
        .filter_map(|l| l.split_once("\": ").map(|(name, _)| name))
        .collect()
}

#[test]
fn properties_come_in_the_order_a_person_writes_them() {
    let (text, schema) = committed("plan.schema.json");
    assert_eq!(
        listed_order(&text, "Stage")[..4],
        ["name", "traffic", "bake", "steps"]
    );
    assert_eq!(
        listed_order(&text, "root")[..3],
        ["version", "name", "description"]
    );
    assert_eq!(listed_order(&text, "Step")[0], "name");
    assert_eq!(
        listed_order(&text, "ConditionSpec")[..2],
        ["check", "consecutive"]
    );
    // Every definition with properties follows the model's declaration order.
    let orders = ion_plan::plan::schema::plan_orders();
    for (def, value) in schema["$defs"].as_object().unwrap() {
        if value.get("properties").is_none() {
            continue;
        }
        let (_, declared) = orders
            .iter()
            .find(|(name, _)| name == def)
            .unwrap_or_else(|| panic!("{def} has no entry in plan_orders()"));
        assert_eq!(listed_order(&text, def), declared.to_vec(), "{def}");
    }
    let (text, schema) = committed("scenario.schema.json");
    let orders = ion_plan::plan::schema::scenario_orders();
    assert_eq!(listed_order(&text, "root"), orders[0].1.to_vec());
    for (def, value) in schema["$defs"].as_object().unwrap() {
        if value.get("properties").is_some() {
            let (_, declared) = orders.iter().find(|(name, _)| name == def).unwrap();
            assert_eq!(listed_order(&text, def), declared.to_vec(), "{def}");
        }
    }
}

/// The findings of `validate --format=json` on a fixture: (line, column, message).
fn findings(fixture: &str) -> Vec<(u64, u64, String)> {
    let path = root().join("tests/fixtures/invalid/schema").join(fixture);
    let output = ion_plan()
        .arg("validate")
        .arg("--format=json")
        .arg(path)
        .run();
    assert_eq!(output.code, 2, "{fixture}: {}", output.stderr);
    output.json()["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_value_that_fits_no_form_is_told_every_form() {
    for (fixture, line, column, message) in [
        (
            "probe-no-kind.yaml",
            6,
            5,
            "a probe needs exactly one of `command`, `http`, `prometheus`, `load`",
        ),
        (
            "step-without-action.yaml",
            26,
            9,
            "a step needs exactly one of `run`, `http`",
        ),
        (
            "condition-number.yaml",
            18,
            9,
            "`require[1]` cannot be the number `85`: a condition is a string like \
             `load.canary.error_rate <= 1%` or a mapping with `check:`",
        ),
        (
            "tolerance-boolean.yaml",
            15,
            88,
            "`tolerance` cannot be the boolean `true`: a tolerance is a string like `10%` or a \
             number from 0 to 10",
        ),
        (
            "header-value-list.yaml",
            12,
            26,
            "`X-Team` cannot be a list: a header value is a string or a mapping with `value:`",
        ),
    ] {
        assert_eq!(
            findings(fixture),
            [(line, column, message.to_owned())],
            "{fixture}"
        );
    }
}
