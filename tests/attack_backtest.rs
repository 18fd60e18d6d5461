//! Attacks on `ion-plan backtest` (README, "Backtest") and its `compare:` judging, as an
//! on-call engineer meets them in a pull request: journals someone else produced, with outside
//! text that would be a CI workflow command, latency histograms whose counts are absurd, files
//! that are no journal (or no plan), one run given twice, a count the journal never recorded,
//! and journals large enough that a quadratic search shows. Each test failed before the fix it
//! pins; every backtest runs under a watchdog, so a hang fails rather than waits.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Output, ion_plan, write};

/// A plan judging a series and a latency distribution against their baselines at the end of
/// its one stage (five checks).
const PLAN: &str = "\
version: 1
name: compare
probes:
  app:
    command: [./app-metrics.sh]
  load:
    load:
      targets: { canary: \"http://127.0.0.1:9/c\", legacy: \"http://127.0.0.1:9/l\" }
gates:
  judge:
    at: end
    compare:
      - { canary: app.canary_ms, baseline: app.legacy_ms, tolerance: 5% }
      - { canary: load.canary.latency, baseline: load.legacy.latency, tolerance: 5% }
    on_fail: rollback
stages:
  - name: only
    traffic: 10
    bake: 5m
    checks: { every: 1m, probes: [app, load] }
    gates: [judge]
";

/// A folder with the plan, and a journal of one scenario run of it, both alike.
struct Bench {
    dir: tempfile::TempDir,
    journal: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "app-metrics.sh", "#!/bin/sh\nexit 1\n");
        let plan = write(dir.path(), "plan.yaml", PLAN);
        let latencies = |base: u32| {
            (0..25)
                .map(|i| format!("{}ms", base + i % 5))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let scenario = write(
            dir.path(),
            "scenario.yaml",
            format!(
                "version: 1
metrics:
  app.canary_ms: {{ series: [101, 103, 99, 102, 104] }}
  app.legacy_ms: {{ series: [100, 98, 101, 99, 100] }}
  load.canary.latency: {{ distribution: [{}] }}
  load.legacy.latency: {{ distribution: [{}] }}
",
                latencies(101),
                latencies(100)
            ),
        );
        let output = ion_plan()
            .arg("run")
            .arg(&plan)
            .args(["--json", "--scenario"])
            .arg(&scenario)
            .run();
        assert_eq!(output.code, 0, "{}", output.stderr);
        let journal = common::journal_from_scenario(
            &output.stdout,
            "plan.yaml",
            &dir.path().join("state"),
            "plan",
        );
        Bench { dir, journal }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The journal's lines as JSON values (the header first), changed by `change`, written
    /// as `name`.
    fn rewrite(&self, name: &str, change: impl Fn(&mut Vec<serde_json::Value>)) -> PathBuf {
        let text = std::fs::read_to_string(&self.journal).unwrap();
        let mut lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        change(&mut lines);
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        write(self.dir.path(), name, text)
    }

    /// `backtest plan.yaml JOURNAL… [ARGS…]`, stopped after 20 s: a hang fails the test.
    fn backtest(&self, journals: &[&Path], args: &[&str]) -> Output {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ion-plan"))
            .env("NO_COLOR", "1")
            .arg("backtest")
            .arg(self.path("plan.yaml"))
            .args(journals)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read while it runs: a full pipe would stall it.
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes).unwrap();
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                let _ = child.wait();
                panic!("backtest hung on {journals:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

/// The sample of `probe` a `sample_taken` line holds.
fn sample_of<'a>(
    line: &'a mut serde_json::Value,
    probe: &str,
) -> Option<&'a mut serde_json::Value> {
    line.pointer_mut("/event/sample_taken/sample")
        .filter(|s| s["probe"] == probe)
}

/// release one.
#[test]
fn histogram_counts_past_u64_pool_to_a_median_not_a_panic() {
    use hdrhistogram::Histogram;
    let bench = Bench::new();
    let hostile = |first: bool| {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        if first {
            h.record_n(1_000, 1 << 62).unwrap();
        }
        h.record_n(2_000, i64::MAX.cast_unsigned()).unwrap();
        ion_plan::stats::encode_histogram(&h)
    };
    let journal = bench.rewrite("counts.jsonl", |lines| {
        let mut check = 0;
        for line in lines.iter_mut() {
            if let Some(sample) = sample_of(line, "load") {
                check += 1;
                if check <= 2 {
                    sample["histograms"] = serde_json::json!({
                        "canary": hostile(check == 1),
                        "legacy": hostile(check == 1),
                    });
                }
            }
        }
    });
    let output = bench.backtest(&[&journal], &["--format", "json"]);
    assert!(
        output.code == 0 || output.code == 3,
        "{}{}",
        output.stdout,
        output.stderr
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    // Judged on numbers (whatever such counts deserve), not on a wrapped median.
    let run = &json["runs"][0];
    assert!(
        ["completed", "rolled_back"].contains(&run["now"]["outcome"].as_str().unwrap()),
        "{json}"
    );
    let text = json.to_string();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

/// The human output is read in a terminal or a CI log: text from the journal (a run id, an
/// abort's reason, a probe's error, stage names) is shown escaped (`docs/plan.md`, "Outside
/// text"). It printed raw: a reason with `\n::error::…` started a GitHub workflow command in
/// the pull request's log, and ESC sequences cleared the screen.
#[test]
fn outside_text_in_a_journal_starts_no_workflow_command_and_moves_no_cursor() {
    let bench = Bench::new();
    let hostile = "x\n::error file=plan.yaml::all good\u{1b}[2J\u{7}";
    let journal = bench.rewrite("hostile.jsonl", |lines| {
        lines[0]["run_id"] = "::warning::run\u{1b}]0;title\u{7}".into();
        let last = lines.last_mut().unwrap();
        last["event"]["run_ended"] = serde_json::json!({"outcome": "aborted", "reason": hostile});
        for line in lines.iter_mut() {
            // A probe error from a server's reply, and a stage the plan no longer has.
            if let Some(sample) = sample_of(line, "app") {
                *sample = serde_json::json!({"probe": "app", "error": hostile});
            }
            if let Some(stage) = line.pointer_mut("/event/stage_started/stage") {
                *stage = "gone\n::notice::x".into();
            }
        }
    });
    let output = bench.backtest(&[&journal], &[]);
    assert!(output.code == 0 || output.code == 3, "{}", output.stderr);
    for line in output.stdout.lines() {
        assert!(
            !line.trim_start().starts_with("::"),
            "{line:?} in\n{}",
            output.stdout
        );
    }
    assert!(
        !output.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        output.stdout
    );
    // Still said, escaped.
    assert!(
        output
            .stdout
            .contains("x\\n::error file=plan.yaml::all good\\x1b[2J\\x07"),
        "{}",
        output.stdout
    );
    // JSON stays raw JSON.
    let output = bench.backtest(&[&journal], &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json["runs"][0]["recorded"]["reason"], hostile);
}

/// A JOURNAL that is no regular file (a FIFO would block a reader forever, `/dev/zero` would
/// feed one forever), a folder, or nothing: refused at once, exit 1, with the cause. The cause
/// was dropped ("failed to read journal `x`; nothing was judged"), so the engineer could not
/// tell a missing file from a FIFO.
#[test]
fn a_journal_that_is_no_regular_file_is_refused_at_once_with_its_cause() {
    let bench = Bench::new();
    let fifo = bench.path("fifo.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let cases: [(PathBuf, &str); 4] = [
        (fifo, "not a regular file; a journal is one"),
        (
            PathBuf::from("/dev/zero"),
            "not a regular file; a journal is one",
        ),
        (bench.path("state"), "not a regular file; a journal is one"),
        (bench.path("missing.jsonl"), "No such file"),
    ];
    for (path, cause) in cases {
        let output = bench.backtest(&[&path], &[]);
        assert_eq!(output.code, 1, "{}: {}", path.display(), output.stderr);
        assert!(output.stdout.is_empty(), "{}", output.stdout);
        assert!(
            output.stderr.contains(&path.display().to_string()) && output.stderr.contains(cause),
            "{}: {}",
            path.display(),
            output.stderr
        );
        // Not the state folder's advice: nothing there to remove.
        assert!(!output.stderr.contains("remove it"), "{}", output.stderr);
    }
    // A symbolic link a person names (`latest.jsonl`) is read: backtest writes nothing, and
    // what it points at is checked as above. It was refused as if planted in the state folder.
    let link = bench.path("latest.jsonl");
    std::os::unix::fs::symlink(&bench.journal, &link).unwrap();
    let output = bench.backtest(&[&link], &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.contains("latest.jsonl"), "{}", output.stdout);
    let to_fifo = bench.path("to-fifo.jsonl");
    std::os::unix::fs::symlink(bench.path("fifo.jsonl"), &to_fifo).unwrap();
    assert_eq!(bench.backtest(&[&to_fifo], &[]).code, 1);
}

/// One run given twice (the same file twice, or a copy of it): judged once, and said; of a
/// copy taken while it ran and the whole journal, the whole one. It was judged and counted
/// twice ("3 runs backtested").
#[test]
fn one_run_given_twice_is_judged_once_and_said() {
    let bench = Bench::new();
    let copy = bench.path("copy.jsonl");
    std::fs::copy(&bench.journal, &copy).unwrap();
    let output = bench.backtest(&[&bench.journal, &bench.journal, &copy], &[]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert!(
        output
            .stdout
            .ends_with("1 run backtested, 0 outcomes flipped\n"),
        "{}",
        output.stdout
    );
    assert_eq!(
        output.stderr.matches("judged once").count(),
        2,
        "{}",
        output.stderr
    );
    // A copy cut short while the run went on (before its stage ended): the whole journal is
    // judged, whichever comes first.
    let text = std::fs::read_to_string(&bench.journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let early = write(
        bench.dir.path(),
        "early.jsonl",
        format!("{}\n", lines[..8].join("\n")),
    );
    let output = bench.backtest(&[&early, &bench.journal], &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{json}");
    assert_eq!(runs[0]["recorded"]["outcome"], "completed", "{json}");
    assert!(
        output.stderr.contains("early.jsonl` holds run"),
        "{}",
        output.stderr
    );
}

/// A JOURNAL of hundreds of megabytes without a newline (a sparse file, a log pasted by
/// mistake): refused once a line runs past the 1 MiB a journal line may hold, not read into
/// memory whole first and then called a run "cut short" (a terabyte one ran out of memory).
#[test]
fn a_journal_without_newlines_is_refused_at_its_first_megabyte() {
    let bench = Bench::new();
    let huge = bench.path("huge.jsonl");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let output = bench.backtest(&[&huge], &[]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stderr.contains(&format!(
            "journal `{}` line 1: line of more than 1048576 bytes is too long",
            huge.display()
        )),
        "{}",
        output.stderr
    );
    // A long line further on is named by its number.
    let mut text = std::fs::read_to_string(&bench.journal).unwrap();
    text.push_str(&"x".repeat(3 << 20));
    let long = write(bench.dir.path(), "long.jsonl", text.as_bytes());
    let lines = text.lines().count();
    let output = bench.backtest(&[&long], &[]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains(&format!("line {lines}: line of more than")),
        "{}",
        output.stderr
    );
}

/// A PLAN that is a FIFO nobody writes to (a symlink planted to one, a path typed wrong):
/// `open` waited for a writer forever. It reads as empty now, and an empty plan is invalid
/// (exit 2).
#[test]
fn a_plan_that_is_a_fifo_nobody_writes_to_is_invalid_not_a_hang() {
    let bench = Bench::new();
    let fifo = bench.path("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::rename(bench.path("plan.yaml"), bench.path("real.yaml")).unwrap();
    std::os::unix::fs::symlink(&fifo, bench.path("plan.yaml")).unwrap();
    let output = bench.backtest(&[&bench.journal], &[]);
    assert_eq!(output.code, 2, "{}{}", output.stdout, output.stderr);
    assert!(output.stderr.contains("plan.yaml"), "{}", output.stderr);
}

/// A plan that now judges a ratio on its interval over a count (`of: app.requests`), on a
/// journal that never recorded that count: the condition is left out and said, like one on a
/// metric never recorded. It was judged as an error at every check, and three in a row
/// "rolled back" a run the plan never saw the evidence of (exit 3, a flip).
#[test]
fn a_count_the_journal_never_recorded_is_skipped_not_an_error_at_every_check() {
    let bench = Bench::new();
    let guard = "  guard:
    at: every_check
    require:
      - check: app.canary_ms <= 200
        confidence: 95%
        of: app.requests
    on_fail: rollback
";
    let plan = PLAN
        .replace("gates:\n", &format!("gates:\n{guard}"))
        .replace("gates: [judge]", "gates: [guard, judge]");
    write(bench.dir.path(), "plan.yaml", plan);
    let output = bench.backtest(&[&bench.journal], &["--format", "json"]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["now"]["outcome"], "completed", "{run}");
    assert_eq!(
        run["skipped"],
        serde_json::json!(["gate `guard`, `app.canary_ms <= 200`: `app.requests` never recorded"]),
        "{run}"
    );
    // A load rate's count is its target's `requests`: a journal with the rate and not the
    // count (a scenario's, say) skips it the same way.
    let rated = bench.rewrite("rated.jsonl", |lines| {
        for line in lines.iter_mut() {
            if let Some(sample) = sample_of(line, "load") {
                sample["metrics"] = serde_json::json!({"canary.error_rate": {"value": 0.001}});
            }
        }
    });
    let plan = PLAN
        .replace(
            "gates:\n",
            "gates:\n  guard:\n    at: every_check\n    require:\n      - { check: load.canary.error_rate <= 1%, confidence: 95% }\n    on_fail: rollback\n",
        )
        .replace("gates: [judge]", "gates: [guard, judge]");
    write(bench.dir.path(), "plan.yaml", plan);
    let output = bench.backtest(&[&rated], &["--format", "json"]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(
        json["runs"][0]["skipped"],
        serde_json::json!([
            "gate `guard`, `load.canary.error_rate <= 1%`: `load.canary.requests` never recorded"
        ]),
        "{json}"
    );
}

/// A journal naming 70,000 stages (10 MB): each was looked for in the list of those seen so
/// far, quadratic — half a minute in a debug build (50,000 took 16 s), hours for a few more
/// megabytes. Bounded by the test's watchdog; each stage is said once under `skipped`.
#[test]
fn a_journal_of_many_stages_is_read_in_linear_time() {
    let bench = Bench::new();
    let journal = bench.rewrite("stages.jsonl", |lines| {
        let (header, first) = (lines[0].clone(), lines[1].clone());
        let at = first["at"].clone();
        lines.clear();
        lines.push(header);
        lines.push(first);
        for i in 0..70_000_u32 {
            lines.push(serde_json::json!({
                "seq": i + 2,
                "at": at,
                "event": {"stage_started": {"stage": format!("s{i}"), "index": i, "traffic": 10.0}},
            }));
        }
    });
    let start = Instant::now();
    let output = bench.backtest(&[&journal], &["--format", "json"]);
    let took = start.elapsed();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let skipped = json["runs"][0]["skipped"].as_array().unwrap();
    assert_eq!(
        skipped
            .iter()
            .filter(|s| s.as_str().unwrap().ends_with(": recorded, not in the plan"))
            .count(),
        70_000
    );
    println!("70,000 stages in {took:?}");
}

/// A long stage judged on many conditions: 1,200 checks of a gate with 50 conditions, 60,000
/// decisions a side. The first difference was looked for by searching the recorded decisions
/// for each re-judged one, quadratic: half a minute in a debug build for a 19 MB journal a real
/// rollout can write. Bounded by the test's watchdog.
#[test]
fn the_first_difference_among_many_decisions_is_found_in_linear_time() {
    let bench = Bench::new();
    let conditions: String = (1001..=1050)
        .map(|i| "      - app.canary_ms <= ".to_owned() + &i.to_string() + "\n")
        .collect();
    let plan = format!(
        "version: 1
name: compare
probes:
  app:
    command: [./app-metrics.sh]
gates:
  guard:
    at: every_check
    require:
{conditions}    on_fail: rollback
stages:
  - name: only
    traffic: 10
    bake: 1200m
    checks: {{ every: 1m, probes: [app] }}
    gates: [guard]
"
    );
    let path = write(bench.dir.path(), "plan.yaml", &plan);
    let scenario = write(
        bench.dir.path(),
        "long.yaml",
        "version: 1\nmetrics: { app.canary_ms: 100 }\n",
    );
    let output = ion_plan()
        .arg("run")
        .arg(&path)
        .args(["--json", "--scenario"])
        .arg(&scenario)
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let journal = common::journal_from_scenario(
        &output.stdout,
        "plan.yaml",
        &bench.dir.path().join("long"),
        "plan",
    );
    let output = bench.backtest(&[&journal], &["--format", "json"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert!(json["runs"][0]["first_difference"].is_null(), "{json}");
}

/// A journal of 45,000 checks whose 45,000 evaluations all name the first: each evaluation's
/// check was searched for from the newest back, quadratic — over 20 s in a debug build for a
/// 20 MB journal. Bounded by the test's watchdog.
#[test]
fn evaluations_are_placed_by_lookup_not_by_search() {
    let bench = Bench::new();
    let text = std::fs::read_to_string(&bench.journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut evaluated: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["event"]["evaluated"].is_object())
        .unwrap();
    evaluated["seq"] = "SEQ".into();
    evaluated["event"]["evaluated"]["check"] = 1.into();
    let evaluated = evaluated.to_string().replace("\"SEQ\"", "{seq}");
    let at = serde_json::from_str::<serde_json::Value>(lines[1]).unwrap()["at"].to_string();
    // Built as text: 90,000 records as JSON values take seconds in a debug build.
    let mut out = lines[..3].join("\n");
    out.push('\n');
    for i in 1..=45_000_u32 {
        let seq = i + 2;
        let offset = f64::from(i) * 60.0;
        let _ = writeln!(
            out,
            "{{\"seq\":{seq},\"at\":{at},\"event\":{{\"check_started\":{{\"stage\":\"only\",\"number\":{i},\"offset\":{offset},\"probes\":[\"app\"]}}}}}}"
        );
    }
    for i in 1..=45_000_u32 {
        out += &evaluated.replace("{seq}", &(45_002 + i).to_string());
        out.push('\n');
    }
    let journal = write(bench.dir.path(), "evaluations.jsonl", out);
    let output = bench.backtest(&[&journal], &["--format", "json"]);
    assert!(
        output.code == 0 || output.code == 3,
        "{}{}",
        output.stdout,
        output.stderr
    );
}
