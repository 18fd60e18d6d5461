//! `ion-plan demo`: the README's first command. A good canary is promoted, a bad one is rolled
//! back by the guard on its first bad check (its latencies compared with legacy's), all on
//! 127.0.0.1.

mod common;

use common::ion_plan;
use serde_json::Value;

fn demo(args: &[&str]) -> (i32, Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = ion_plan()
        .arg("demo")
        .arg("--json")
        .args(args)
        .current_dir(dir.path())
        .run();
    let events = output
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // The journal lands in .ion-plan/ of the folder it ran in, and says so.
    let journals = std::fs::read_dir(dir.path().join(".ion-plan"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert_eq!(journals, 1);
    assert!(
        output.stderr.contains("journal: .ion-plan/demo-"),
        "{}",
        output.stderr
    );
    // So does the report, written beside it: the decision log with the run's outcome.
    let report = output
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no report line: {}", output.stderr));
    let report = std::fs::read_to_string(dir.path().join(report)).unwrap();
    let outcome = if output.code == 0 {
        "completed"
    } else {
        "rolled back"
    };
    assert!(
        report.contains(&format!("outcome: **{outcome}**")),
        "{report}"
    );
    (output.code, events, output.stderr)
}

fn find<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter_map(|e| e["event"].get(name)).collect()
}

#[test]
fn a_good_canary_is_promoted_and_a_bad_one_rolled_back() {
    let (code, events, stderr) = demo(&[]);
    assert_eq!(code, 0, "{stderr}");
    let traffic: Vec<f64> = find(&events, "stage_started")
        .iter()
        .map(|s| s["traffic"].as_f64().unwrap())
        .collect();
    assert_eq!(traffic, [5.0, 10.0, 25.0, 50.0, 100.0]);
    assert!(find(&events, "gate_failed").is_empty());
    assert!(stderr.contains("promoted"), "{stderr}");

    let (code, events, stderr) = demo(&["--bad-canary"]);
    assert_eq!(code, 3, "{stderr}");
    // The guard fired on the second violation in a row, in the first stage.
    let fired: Vec<&Value> = find(&events, "evaluated")
        .into_iter()
        .filter(|e| e["evaluation"]["fired"] == true)
        .collect();
    // The guard's comparison with legacy caught it on the first bad check: the canary's
    // latencies `higher` than legacy's. Its thresholds saw it too, at 1 of the 2 in a row
    // they need.
    assert_eq!(fired.len(), 1, "{fired:?}");
    let caught = fired[0];
    assert_eq!(caught["stage"], "canary-5");
    assert_eq!(caught["evaluation"]["gate"], "guard");
    assert_eq!(
        caught["evaluation"]["condition"],
        "load.canary.latency vs load.legacy.latency"
    );
    assert_eq!(caught["evaluation"]["compare"]["shift"], "higher");
    let thresholds: Vec<&Value> = find(&events, "evaluated")
        .into_iter()
        .filter(|e| e["check"] == caught["check"] && e["evaluation"]["gate"] == "guard")
        .filter(|e| e["evaluation"]["compare"].is_null())
        .collect();
    assert!(!thresholds.is_empty());
    assert!(
        thresholds
            .iter()
            .any(|e| e["evaluation"]["outcome"] == "violation"
                && e["evaluation"]["streak"]["count"] == 1),
        "{thresholds:?}"
    );
    let failed = find(&events, "gate_failed");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains(": higher"),
        "{failed:?}"
    );
    // The rollback step moved all traffic back to legacy, and it worked.
    let rollback: Vec<&Value> = find(&events, "step_finished")
        .into_iter()
        .filter(|s| s["phase"] == "rollback")
        .collect();
    assert!(
        rollback
            .iter()
            .any(|s| s["ok"] == true && s["detail"] == "HTTP 200")
    );
    assert_eq!(find(&events, "rolled_back").len(), 1);
}

/// `demo --serve` on a port that is taken says which address, and exits 1; ports that do not
/// fit (the canary needs PORT+2) are usage errors.
#[test]
fn demo_serve_reports_a_busy_port_and_refuses_one_that_does_not_fit() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let output = ion_plan()
        .args(["demo", "--serve", "--port", &port.to_string()])
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        output.stderr
    );
    // ...and how to get around it: another port, and the plan pointed there without editing it.
    assert!(
        output
            .stderr
            .contains("another port: ion-plan demo --serve --port ")
            && output
                .stderr
                .contains("ion-plan run plans/demo.yaml --var router=http://127.0.0.1:"),
        "{}",
        output.stderr
    );
    let output = ion_plan()
        .args(["demo", "--serve", "--port", "65535"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    let output = ion_plan().args(["demo", "--port", "18080"]).run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(output.stderr.contains("--serve"), "{}", output.stderr);
}

/// Ctrl-C during the demo: exit 130, the journal intact, and no advice to resume a plan file
/// that the demo embeds.
#[test]
fn an_interrupted_demo_says_it_starts_anew() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ion-plan"))
        .arg("demo")
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        if line.unwrap().contains("canary-5: stage started") {
            break;
        }
    }
    common::signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("the demo does not resume"), "{stderr}");
    assert!(!stderr.contains("ion-plan run plans/demo.yaml"), "{stderr}");
}
