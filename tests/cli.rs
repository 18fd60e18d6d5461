//! The command line as a newcomer meets it: every `--help` has examples and describes every
//! argument, `--format json` is the one spelling of machine output (`--json` a hidden alias),
//! and completions and the man page cover every subcommand.

mod common;

use clap::CommandFactory;
use common::{MINIMAL_PLAN, ion_plan, plan_dir, root, run_once};
use ion_plan::cli::Cli;
use serde_json::Value;

/// Every command and subcommand, with its path (`ion-plan probe http`).
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(path: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        let path = format!("{path} {}", command.get_name()).trim().to_owned();
        out.push((path.clone(), command.clone()));
        for sub in command.get_subcommands() {
            walk(&path, sub, out);
        }
    }
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    walk("", &command, &mut out);
    out
}

#[test]
fn every_subcommand_has_examples_and_every_argument_a_description() {
    let commands = commands();
    assert!(commands.len() > 15, "{}", commands.len());
    for (path, command) in &commands {
        // clap's own `help` subcommand is generated and has no examples to give.
        if path.ends_with(" help") || path.contains(" help ") {
            continue;
        }
        let after = command.get_after_help().map(ToString::to_string);
        assert!(
            after
                .as_deref()
                .is_some_and(|t| t.starts_with("Examples:\n  ion-plan ")),
            "`{path} --help` has no examples: {after:?}"
        );
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            assert!(
                arg.get_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty()),
                "`{path}`: argument `{}` has no description",
                arg.get_id()
            );
        }
    }
}

#[test]
fn the_examples_show_in_help() {
    let output = ion_plan().args(["probe", "http", "--help"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.contains("Examples:\n  ion-plan probe http "),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("The URL to request"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("Timeout of the request"),
        "{}",
        output.stdout
    );
}

#[test]
fn json_is_a_hidden_alias_of_format_json() {
    for command in [
        &["run"][..],
        &["status"],
        &["demo"],
        &["probe", "load"],
        &["probe", "http"],
        &["probe", "prometheus"],
        &["probe", "command"],
    ] {
        let output = ion_plan().args(command).arg("--help").run();
        assert_eq!(output.code, 0, "{command:?}: {}", output.stderr);
        assert!(
            output.stdout.contains("--format <FORMAT>"),
            "{command:?}: {}",
            output.stdout
        );
        assert!(
            !output.stdout.contains("--json"),
            "{command:?}: {}",
            output.stdout
        );
    }
    // Both at once is a usage error rather than a silent choice.
    let both = ion_plan()
        .args([
            "run",
            "--dry-run",
            "plans/demo.yaml",
            "--json",
            "--format",
            "text",
        ])
        .current_dir(root())
        .run();
    assert_eq!(both.code, 2, "{}", both.stderr);
}

fn json_lines(stdout: &str) -> Vec<Value> {
    assert!(!stdout.trim().is_empty(), "no output");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn run_format_json_prints_json_lines_and_text_does_not() {
    let args = [
        "run",
        "plans/demo.yaml",
        "--scenario",
        "plans/scenarios/demo-regression.yaml",
    ];
    let json = ion_plan()
        .args(args)
        .args(["--format", "json"])
        .current_dir(root())
        .run();
    assert_eq!(json.code, 3, "{}", json.stderr);
    let events = json_lines(&json.stdout);
    assert!(
        events.iter().any(|e| e["event"].get("evaluated").is_some()),
        "{}",
        json.stdout
    );
    let text = ion_plan()
        .args(args)
        .args(["--format", "text"])
        .current_dir(root())
        .run();
    assert_eq!(text.code, 3, "{}", text.stderr);
    assert!(serde_json::from_str::<Value>(text.stdout.lines().next().unwrap()).is_err());
}

#[test]
fn status_format_json_prints_json() {
    let (_dir, path) = plan_dir(MINIMAL_PLAN);
    run_once(&path);
    let output = ion_plan()
        .args(["status", "--format", "json"])
        .arg(&path)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.json().is_object(), "{}", output.stdout);
}

#[test]
fn probe_command_format_json_prints_json() {
    let output = ion_plan()
        .args(["probe", "command", "--format", "json", "--", "sh", "-c"])
        .arg(r#"echo '{"queue": 7}'"#)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(
        output.json()["metrics"]["queue"]["value"],
        7.0,
        "{}",
        output.stdout
    );
}

#[test]
fn demo_format_json_prints_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let output = ion_plan()
        .args(["demo", "--format", "json"])
        .current_dir(dir.path())
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let events = json_lines(&output.stdout);
    assert!(events.len() > 10, "{}", output.stdout);
    // `--serve` prints no events: asking for JSON from it is a usage error, as `--json` was.
    let serve = ion_plan()
        .args(["demo", "--serve", "--format", "json"])
        .run();
    assert_eq!(serve.code, 2, "{}", serve.stderr);
}

#[test]
fn bash_completions_name_every_subcommand() {
    let output = ion_plan().args(["completions", "bash"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    for sub in Cli::command().get_subcommands() {
        let name = sub.get_name();
        assert!(
            output.stdout.contains(name),
            "no `{name}` in:\n{}",
            output.stdout
        );
    }
    assert!(output.stdout.contains("complete -F"), "{}", output.stdout);
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let output = ion_plan().arg("man").run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stdout.contains("\n.TH ion-plan 1 "),
        "{}",
        output.stdout
    );
    for sub in Cli::command().get_subcommands() {
        let entry = format!("\n.TP\nion\\-plan\\-{}(1)\n", sub.get_name());
        assert!(
            output.stdout.contains(&entry),
            "no `{entry}` in:\n{}",
            output.stdout
        );
    }
}

#[test]
fn init_writes_each_template_as_a_plan_that_validates_strictly() {
    for (template, written) in [
        ("canary", "plans/canary.yaml"),
        ("blue-green", "plans/blue-green.yaml"),
        ("nginx", "plans/nginx.yaml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = ion_plan()
            .args(["init", "--template", template])
            .current_dir(dir.path())
            .run();
        assert_eq!(output.code, 0, "{template}: {}", output.stderr);
        let text = std::fs::read_to_string(dir.path().join(written)).unwrap();
        // The modeline names the committed schema by its `$id`, which works from any folder.
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap(),
        )
        .unwrap();
        let modeline = format!(
            "# yaml-language-server: $schema={}\n",
            schema["$id"].as_str().unwrap()
        );
        assert!(text.starts_with(&modeline), "{template}: {text}");
        let validate = ion_plan()
            .args(["validate", "--strict", written])
            .current_dir(dir.path())
            .run();
        assert_eq!(
            validate.code, 0,
            "{template}: {}{}",
            validate.stdout, validate.stderr
        );
        assert!(
            validate.stdout.contains("valid (0 errors, 0 warnings)"),
            "{template}: {}",
            validate.stdout
        );
    }
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("mine.yaml");
    std::fs::write(&plan, "my own plan\n").unwrap();
    let output = ion_plan()
        .args(["init", "mine.yaml"])
        .current_dir(dir.path())
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("mine.yaml exists; nothing was written (--force overwrites it)"),
        "{}",
        output.stderr
    );
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), "my own plan\n");
    let forced = ion_plan()
        .args(["init", "--force", "mine.yaml"])
        .current_dir(dir.path())
        .run();
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        std::fs::read_to_string(&plan)
            .unwrap()
            .contains("name: my-service-canary")
    );
}

/// Every `description` in a schema object, with the `markdownDescription` beside it.
fn descriptions(value: &Value, out: &mut Vec<(String, Option<String>)>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(text)) = object.get("description") {
                let markdown = object.get("markdownDescription").and_then(Value::as_str);
                out.push((text.clone(), markdown.map(str::to_owned)));
            }
            object.values().for_each(|v| descriptions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| descriptions(v, out)),
        _ => {}
    }
}

#[test]
fn the_schema_speaks_markdown_to_editors() {
    let output = ion_plan().arg("schema").run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let schema = output.json();
    let mut found = Vec::new();
    descriptions(&schema, &mut found);
    assert!(found.len() > 50, "{}", found.len());
    for (text, markdown) in &found {
        assert_eq!(markdown.as_deref(), Some(text.as_str()), "{text}");
    }
    // Each value of the actions and of a comparison's direction says what it does.
    for (name, values) in [
        ("Action", &["rollback", "pause", "warn"][..]),
        ("Direction", &["increase", "decrease", "either"]),
    ] {
        let definition = &schema["$defs"][name];
        assert_eq!(definition["enum"], serde_json::json!(values), "{name}");
        let about = definition["markdownEnumDescriptions"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {definition}"));
        assert_eq!(about.len(), values.len(), "{name}");
        assert!(
            about
                .iter()
                .all(|a| a.as_str().is_some_and(|a| a.len() > 10)),
            "{name}: {about:?}"
        );
    }
    assert!(
        schema["$defs"]["Action"]["markdownEnumDescriptions"][0]
            .as_str()
            .unwrap()
            .contains("`rolled_back`")
    );
}
