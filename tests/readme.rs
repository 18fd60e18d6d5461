//! The README cannot rot: every `ion-plan` command it shows parses with the real command line,
//! every other command names something that exists, and the tour runs as written, line by line,
//! against `ion-plan demo --serve`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::root;
use ion_plan::cli::Cli;

/// One command line of the README.
#[derive(Debug, Clone)]
struct Line {
    /// The `## ` heading it is under.
    section: String,
    words: Vec<String>,
    comment: String,
}

impl Line {
    fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// Splits a shell line into words (single and double quotes, backslash escapes) and the comment
/// after an unquoted `#` that starts a word.
fn split(line: &str) -> (Vec<String>, String) {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' if word.is_none() => return (words, line[i + 1..].trim().to_owned()),
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next().map(|(_, c)| c)),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word
                .get_or_insert_with(String::new)
                .extend(chars.next().map(|(_, c)| c)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    (words, String::new())
}

/// The README's commands: every line of its ```sh blocks (`\` continues a line; `&&` and `;`
/// separate commands), and the `run:` lines of its ```yaml blocks that call `ion-plan`.
fn readme_lines() -> Vec<Line> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut lines = Vec::new();
    let mut section = String::new();
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    for raw in readme.lines() {
        if let Some(lang) = raw.trim_start().strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(lang.trim().to_owned()),
            };
            continue;
        }
        match fence.as_deref() {
            None => {
                if let Some(title) = raw.strip_prefix("## ") {
                    title.clone_into(&mut section);
                }
            }
            Some("sh") => {
                if let Some(start) = raw.strip_suffix('\\') {
                    pending.push_str(start);
                    continue;
                }
                let full = std::mem::take(&mut pending) + raw;
                let (words, comment) = split(&full);
                for command in words.split(|w| w == "&&" || w == ";") {
                    if !command.is_empty() {
                        lines.push(Line {
                            section: section.clone(),
                            words: command.to_vec(),
                            comment: comment.clone(),
                        });
                    }
                }
            }
            Some("yaml") => {
                if let Some((_, run)) = raw.split_once("run: ")
                    && run.starts_with("ion-plan ")
                {
                    let (words, comment) = split(run);
                    // Up to the end of the first command: `…; echo …` or `… && …`.
                    let mut command = Vec::new();
                    for word in words {
                        if word == "&&" {
                            break;
                        }
                        if let Some(last) = word.strip_suffix(';') {
                            command.push(last.to_owned());
                            break;
                        }
                        command.push(word);
                    }
                    lines.push(Line {
                        section: section.clone(),
                        words: command,
                        comment,
                    });
                }
            }
            Some(_) => {}
        }
    }
    lines
}

/// The words up to a redirection or a pipe.
fn before_redirect(words: &[String]) -> &[String] {
    let end = words
        .iter()
        .position(|w| w.starts_with('>') || w == "|")
        .unwrap_or(words.len());
    &words[..end]
}

fn assert_parses(line: &Line, words: &[String]) {
    if let Err(error) = Cli::try_parse_from(words) {
        panic!(
            "README ({}): `{}` does not parse:\n{error}",
            line.section,
            line.text()
        );
    }
}

#[test]
fn the_readme_has_commands_to_check() {
    let lines = readme_lines();
    let ion_plan = lines.iter().filter(|l| l.words[0] == "ion-plan").count();
    assert!(ion_plan >= 30, "only {ion_plan} ion-plan commands found");
    assert!(lines.iter().any(|l| l.section == "A tour"));
    assert_eq!(
        split(r#"a 'b c' "d \"e\"" f\ g # h # i"#),
        (
            vec!["a".into(), "b c".into(), "d \"e\"".into(), "f g".into()],
            "h # i".into()
        )
    );
}

#[test]
fn every_ion_plan_command_in_the_readme_parses() {
    for line in readme_lines() {
        if line.words[0] == "ion-plan" {
            assert_parses(&line, before_redirect(&line.words));
        }
    }
}

/// Every other command names things that exist: test and bench targets, scripts, packages that
/// `.ci/run` installs, and `cargo run -- ARGS` parses.
#[test]
fn every_other_command_in_the_readme_names_what_exists() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let exists = |path: &str| root().join(path).exists();
    for line in readme_lines() {
        let words: Vec<String> = line
            .words
            .iter()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .cloned()
            .collect();
        let words = before_redirect(&words);
        let context = format!("README ({}): `{}`", line.section, line.text());
        let program = words[0].as_str();
        match program {
            "ion-plan" => {}
            "cargo" => {
                for pair in words.windows(2) {
                    match pair[0].as_str() {
                        "--test" => assert!(exists(&format!("tests/{}.rs", pair[1])), "{context}"),
                        "--bench" => {
                            assert!(exists(&format!("benches/{}.rs", pair[1])), "{context}");
                        }
                        _ => {}
                    }
                }
                if words[1] == "run"
                    && let Some(at) = words.iter().position(|w| w == "--")
                {
                    let mut args = vec!["ion-plan".to_owned()];
                    args.extend_from_slice(&words[at + 1..]);
                    assert_parses(&line, &args);
                }
                assert!(
                    ["run", "test", "fmt", "clippy", "bench", "install", "insta"]
                        .contains(&words[1].as_str()),
                    "{context}"
                );
            }
            "bash" => assert!(exists(&words[1]), "{context}"),
            // `eval "$(SCRIPT ARGS)"`: the script exists.
            "eval" => {
                let inner = words[1]
                    .strip_prefix("$(")
                    .and_then(|w| w.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("{context}: eval of what?"));
                let script = inner.split_whitespace().next().unwrap_or_default();
                assert!(exists(script), "{context}");
            }
            "apt-get" => {
                for package in &words[2..] {
                    assert!(
                        ci.contains(&format!("missing+=({package})")),
                        "{context}: .ci/run does not install {package}"
                    );
                }
            }
            "cp" | "curl" => assert_eq!(line.section, "A tour", "{context}"),
            script if script.starts_with("bench/") => {
                let path = root().join(script);
                assert!(path.is_file(), "{context}");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = path.metadata().unwrap().permissions().mode();
                    assert!(mode & 0o111 != 0, "{context}: not executable");
                }
            }
            _ => panic!("{context}: a command this test does not know; teach it"),
        }
    }
}

/// Three ports in a row that are free now.
fn free_ports() -> u16 {
    for _ in 0..100 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base < 65_000
            && (1..3).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok())
        {
            return base;
        }
    }
    panic!("no three free ports in a row");
}

/// The exit code a tour line's comment announces: `(exit N)`, else 0.
fn expected_exit(comment: &str) -> i32 {
    comment
        .split_once("(exit ")
        .and_then(|(_, rest)| rest.split(')').next())
        .map_or(0, |code| code.parse().unwrap())
}

/// A child whose stdout lines arrive on a channel, with its stderr kept. Both are read to the end
/// even once nobody listens: a service whose pipe closed early would die of it, and the tour would
/// blame the wrong thing.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watched {
    /// How the child is doing, for a failure message: still running, or its exit and stderr.
    fn account(&mut self, what: &str) -> String {
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        match self.child.try_wait() {
            Ok(None) => format!("{what}: still running; stderr so far:\n{stderr}"),
            Ok(Some(status)) => format!("{what}: EXITED ({status}); stderr:\n{stderr}"),
            Err(error) => format!("{what}: {error}"),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command) -> Watched {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // A receiver gone is no reason to stop reading.
            let _ = send.send(line);
        }
    });
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let kept = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut chunk) {
            if let Ok(mut all) = kept.lock() {
                all.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
    });
    Watched {
        child,
        lines: receive,
        stderr,
    }
}

/// Waits (at most a minute) for a stdout line of `watched` containing `needle`; on failure says
/// what it printed and how `background` is doing.
fn wait_for(watched: &mut Watched, needle: &str, what: &str, background: &mut [Watched]) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = watched.lines.recv_timeout(Duration::from_millis(200)) {
            if line.contains(needle) {
                return;
            }
            seen.push(line);
        }
    }
    let accounts: Vec<String> = std::iter::once(watched.account(what))
        .chain(
            background
                .iter_mut()
                .map(|b| b.account("in the background")),
        )
        .collect();
    panic!(
        "{what}: no `{needle}` within a minute:\n{}\n\n{}",
        seen.join("\n"),
        accounts.join("\n\n")
    );
}

/// The tour, line by line, in a copy of `plans/`, on ports of its own: the plan's `1808x` ports
/// and the `--serve` port are moved to free ones, nothing else changes.
#[test]
fn the_tour_runs_as_written() {
    let tour: Vec<Line> = readme_lines()
        .into_iter()
        .filter(|l| l.section == "A tour")
        .collect();
    assert!(tour.len() >= 8, "{tour:?}");
    let base = free_ports();
    let move_ports = |text: &str| {
        (0..3).fold(text.to_owned(), |text, k| {
            text.replace(&format!("{}", 18080 + k), &format!("{}", base + k))
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir_all(plans.join("scenarios")).unwrap();
    let demo = std::fs::read_to_string(root().join("plans/demo.yaml")).unwrap();
    std::fs::write(plans.join("demo.yaml"), move_ports(&demo)).unwrap();
    std::fs::copy(
        root().join("plans/scenarios/demo-regression.yaml"),
        plans.join("scenarios/demo-regression.yaml"),
    )
    .unwrap();

    let binary = env!("CARGO_BIN_EXE_ion-plan");
    let command = |words: &[String]| {
        let program = if words[0] == "ion-plan" {
            binary
        } else {
            &words[0]
        };
        let mut command = Command::new(program);
        command
            .args(words[1..].iter().map(|w| move_ports(w)))
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let mut background = Vec::new();
    let mut interrupted = false;
    for line in &tour {
        let what = line.text();
        let expected = expected_exit(&line.comment);
        if line.comment.contains("another terminal") {
            let mut words = line.words.clone();
            words.extend(["--port".to_owned(), base.to_string()]);
            let mut service = spawn(command(&words));
            wait_for(&mut service, "demo service up", &what, &mut []);
            background.push(service);
        } else if line.comment.contains("Ctrl-C") {
            // Interrupt it once the first stage is done: in the middle of the second bake.
            let mut run = spawn(command(&line.words));
            wait_for(&mut run, "canary-10: stage started", &what, &mut background);
            std::thread::sleep(Duration::from_millis(500));
            common::signal(&run.child, "INT");
            let status = run.child.wait().unwrap();
            assert_eq!(status.code(), Some(expected), "{what}");
            interrupted = true;
        } else {
            let output = command(&line.words).output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() != Some(expected) {
                let accounts: Vec<String> = background
                    .iter_mut()
                    .map(|b| b.account("in the background"))
                    .collect();
                panic!(
                    "{what}: exit {:?}, expected {expected}\n{stdout}\n{stderr}\n\n{}",
                    output.status.code(),
                    accounts.join("\n\n")
                );
            }
            if interrupted && line.words[1] == "run" && !line.words.contains(&"--once".into()) {
                // The first `run` after Ctrl-C resumes the interrupted run.
                assert!(stderr.contains("resuming run"), "{what}\n{stderr}");
                assert!(!stdout.contains("canary-5: stage started"), "{stdout}");
                interrupted = false;
            }
        }
    }
    assert!(
        dir.path().join("plans/my-plan.yaml").exists(),
        "the tour wrote its plan"
    );
}

/// The text after `run: ` of the README's workflow step that follows a line containing `after`.
fn workflow_step(after: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| !l.contains(after));
    let line = lines
        .find(|l| l.trim_start().starts_with("run: ") || l.contains("- run: "))
        .unwrap_or_else(|| panic!("no `run:` after `{after}` in the README's workflow"));
    let (_, script) = line.split_once("run: ").unwrap();
    // A YAML comment ends the scalar.
    script.split("   #").next().unwrap().trim().to_owned()
}

/// GitHub runs a step's `run:` as `bash --noprofile --norc -eo pipefail`: the README's
/// scheduled workflow must record every exit code of `run --once` (not stop at a non-zero one),
/// and fail the job for the codes that need people (1, 2, 6) — including a failed rollback.
#[test]
fn the_scheduled_workflow_sees_every_exit_code() {
    let record = workflow_step("- id: run");
    let judge = workflow_step("rollout state");
    assert!(judge.contains("steps.run.outputs.code"), "{judge}");
    for code in 0..=6 {
        let dir = tempfile::tempdir().unwrap();
        common::script(dir.path(), "ion-plan", &format!("exit {code}"));
        let output_file = dir.path().join("github_output");
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &record])
            .env("PATH", &path)
            .env("GITHUB_OUTPUT", &output_file)
            .status()
            .unwrap();
        assert!(status.success(), "the step itself failed on exit {code}");
        let written = std::fs::read_to_string(&output_file).unwrap_or_default();
        assert_eq!(written.trim(), format!("code={code}"), "exit {code}");
        let judged = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
            .arg(judge.replace("${{ steps.run.outputs.code }}", &code.to_string()))
            .status()
            .unwrap();
        assert_eq!(
            judged.success(),
            matches!(code, 0 | 3 | 4 | 5),
            "the job's verdict on exit {code}"
        );
    }
}
