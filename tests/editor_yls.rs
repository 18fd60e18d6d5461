//! The committed schemas as an editor reads them, through yaml-language-server itself (the
//! server VS Code's YAML extension runs): the bundled plans and scenarios open without a
//! problem through their modelines, and a condition given a number is told both forms it may
//! take. `.ci/run` installs the server with npm.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::root;
use serde_json::{Value, json};

struct Server {
    child: Child,
    input: ChildStdin,
    /// Messages from the server, read by a thread so that waiting can time out.
    output: Receiver<Value>,
}

impl Server {
    fn start() -> Server {
        let program =
            std::env::var("YAML_LANGUAGE_SERVER").unwrap_or_else(|_| "yaml-language-server".into());
        let mut child = Command::new(&program)
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (npm install -g yaml-language-server)"));
        let input = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, output) = channel();
        std::thread::spawn(move || {
            while let Some(message) = read_message(&mut stdout) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            input,
            output,
        };
        server.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": null, "rootUri": null, "capabilities": {}}}));
        while server
            .receive(Duration::from_secs(30))
            .expect("initialize answered")["id"]
            != 1
        {}
        server.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        server.send(
            &json!({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
            "params": {"settings": {"yaml": {"validate": true}}}}),
        );
        server
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.input, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.input.flush().unwrap();
    }

    fn receive(&mut self, wait: Duration) -> Option<Value> {
        self.output.recv_timeout(wait).ok()
    }

    /// The messages of the diagnostics published for `path` once its schema is loaded.
    fn problems(&mut self, path: &Path, text: &str) -> Vec<(u64, String)> {
        let uri = format!("file://{}", path.display());
        self.send(&json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}}));
        let start = Instant::now();
        let mut last = None;
        // The first publication may come before the schema is read; the server publishes
        // again when it is. Collect until a quiet second after the last.
        while start.elapsed() < Duration::from_secs(20) {
            let Some(message) = self.receive(Duration::from_secs(2)) else {
                if last.is_some() {
                    break;
                }
                continue;
            };
            if let Some(id) = message
                .get("id")
                .filter(|_| message.get("method").is_some())
            {
                // Configuration requests: no settings beyond the defaults.
                let items = message["params"]["items"].as_array().map_or(0, Vec::len);
                self.send(&json!({"jsonrpc": "2.0", "id": id, "result": vec![Value::Null; items]}));
                continue;
            }
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                let found: Vec<(u64, String)> = message["params"]["diagnostics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        (
                            d["range"]["start"]["line"].as_u64().unwrap() + 1,
                            d["message"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let schema_read = message["params"]["diagnostics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| {
                        d["source"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("yaml-schema"))
                    });
                last = Some(found);
                if schema_read && last.as_ref().is_some_and(|f| !f.is_empty()) {
                    break;
                }
            }
        }
        last.expect("no diagnostics were published")
    }
}

/// One framed JSON-RPC message, or None when the server closed its output.
fn read_message(output: &mut impl BufRead) -> Option<Value> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if output.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    output.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs yaml-language-server (npm); .ci/run installs it and runs this"]
fn yaml_language_server_accepts_the_bundled_plans_and_names_both_forms_of_a_condition() {
    let mut server = Server::start();
    let mut opened = 0;
    for dir in ["plans", "plans/scenarios"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema="),
                "{}",
                path.display()
            );
            assert_eq!(server.problems(&path, &text), [], "{}", path.display());
            opened += 1;
        }
    }
    assert!(opened >= 7, "{opened}");

    // The fixture with a number for a condition, its first line a modeline to the committed file.
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::fs::read_to_string(root().join("tests/fixtures/invalid/schema/condition-number.yaml"))
            .unwrap();
    let (_, rest) = fixture.split_once('\n').unwrap();
    let text = format!(
        "# yaml-language-server: $schema=file://{}\n{rest}",
        root().join("schemas/plan.schema.json").display()
    );
    let path = common::write(dir.path(), "plan.yaml", &text);
    assert_eq!(
        server.problems(&path, &text),
        [(
            18,
            "Incorrect type. Expected \"string | a mapping with `check:`\".".to_owned()
        )]
    );
}
