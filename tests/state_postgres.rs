//! The PostgreSQL state store with real runners (README, "Running as a team"): two working
//! copies of a plan with nothing on disk in common stand for two CI machines. A runner killed
//! at random moments is resumed on the other machine with every non-idempotent step run once; a
//! runner frozen past its lease is taken over and, thawed, writes and runs nothing (exit 6); a
//! person's approval from a third place is taken by the running runner; the schema is checked;
//! `runs` lists; `state import` moves a state folder over.
//!
//! Needs the throwaway cluster of `.ci/postgres` (`ION_PLAN_TEST_POSTGRES`), as `.ci/run` starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::postgres::{migrated_database, psql};
use common::server::{TestServer, serve};
use common::{ion_plan, lines, script, write};

const NEEDS: &str = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)";

fn stats_server() -> TestServer {
    serve(Router::new().route("/stats", get(|| async { r#"{"error_rate": 0.001}"# })))
}

/// Four stages, each with an idempotent shift, a non-idempotent migration and an idempotent
/// verification; `bake` per stage, checked every 100 ms.
fn plan(server: &TestServer, bake: &str) -> String {
    format!(
        "\
version: 1
name: team
probes:
  stats:
    http: {{ url: \"{}\", metrics: {{ error_rate: /error_rate }} }}
gates:
  guard:
    at: every_check
    require:
      - check: stats.error_rate <= 1%
        consecutive: 2
defaults:
  steps:
    - run: [./log.sh, \"shift-${{{{ stage.name }}}}\"]
      idempotent: true
    - run: [./log.sh, \"migrate-${{{{ stage.name }}}}\"]
    - run: [./log.sh, \"verify-${{{{ stage.name }}}}\"]
      idempotent: true
  checks: {{ every: 100ms, probes: [stats] }}
  gates: [guard]
stages:
  - {{ name: a, traffic: 10, bake: {bake} }}
  - {{ name: b, traffic: 25, bake: {bake} }}
  - {{ name: c, traffic: 50, bake: {bake} }}
  - {{ name: d, traffic: 100, bake: {bake} }}
rollback:
  - run: [./log.sh, rollback]
",
        server.url("/stats")
    )
}

/// Two machines: a working copy of the plan each, and the outside world they both change
/// (`effects`: one line per step that ran, wherever it ran).
struct Machines {
    copies: [tempfile::TempDir; 2],
    world: tempfile::TempDir,
}

impl Machines {
    fn new(plan: &str) -> Machines {
        let world = tempfile::tempdir().unwrap();
        let effects = world.path().join("effects.txt");
        let copies = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        for copy in &copies {
            script(
                copy.path(),
                "log.sh",
                &format!("echo \"$*\" >> '{}'", effects.display()),
            );
            write(copy.path(), "plan.yaml", plan);
        }
        Machines { copies, world }
    }

    fn plan(&self, machine: usize) -> PathBuf {
        self.copies[machine].path().join("plan.yaml")
    }

    fn effects(&self) -> Vec<String> {
        lines(&self.world.path().join("effects.txt"))
    }

    /// Every non-idempotent step ran exactly once, every stage was verified, no rollback.
    fn assert_each_step_once(&self) {
        let effects = self.effects();
        for stage in ["a", "b", "c", "d"] {
            let migrations = effects
                .iter()
                .filter(|l| **l == format!("migrate-{stage}"))
                .count();
            assert_eq!(
                migrations, 1,
                "migrate-{stage} ran {migrations} times: {effects:?}"
            );
            assert!(effects.contains(&format!("verify-{stage}")), "{effects:?}");
        }
        assert!(!effects.contains(&"rollback".to_owned()), "{effects:?}");
    }

    /// Runs the plan on `machine` until its run ends, as an operator would: waiting out a
    /// dead runner's lease, and deciding an interrupted step by whether its effect is there.
    fn resume_to_end(&self, machine: usize, url: &str) -> (i32, String) {
        let output = common::resume_until_ended(
            |flags| {
                ion_plan()
                    .arg("run")
                    .arg(self.plan(machine))
                    .args(["--state", url, "--lease", "3s"])
                    .args(flags)
                    .run()
            },
            |stage| self.ran(stage),
            Duration::from_mins(1),
        );
        (output.code, output.stderr)
    }

    /// Whether stage `stage`'s non-idempotent step took effect.
    fn ran(&self, stage: &str) -> bool {
        self.effects().contains(&format!("migrate-{stage}"))
    }

    fn spawn(&self, machine: usize, url: &str) -> Child {
        common::postgres::spawn_runner(&self.plan(machine), url, "3s", &[])
    }
}

fn events(url: &str) -> u64 {
    psql(url, "SELECT count(*) FROM ion_plan_events")
        .parse()
        .unwrap()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_runner_killed_at_random_moments_resumes_on_the_other_machine_exactly() {
    let _ = NEEDS;
    let server = stats_server();
    let plan = plan(&server, "300ms");
    for i in 0..5u64 {
        // A database of its own each time: an ended run is not started again.
        let url = migrated_database();
        let machines = Machines::new(&plan);
        let first = usize::try_from(i % 2).unwrap();
        let mut child = machines.spawn(first, &url);
        std::thread::sleep(Duration::from_millis(200 + 190 * i));
        let _ = child.kill(); // SIGKILL: its lease is left to expire
        let _ = child.wait();
        let (code, stderr) = machines.resume_to_end(1 - first, &url);
        assert_eq!(code, 0, "kill {i}: {stderr}");
        machines.assert_each_step_once();
        let report = ion_plan()
            .args(["report", "--format", "json", "--state", &url])
            .arg(machines.plan(first))
            .run();
        assert_eq!(report.code, 0, "{}", report.stderr);
        assert_eq!(report.json()["outcome"], "completed");
    }
}

/// One run, killed again and again: each runner is killed (SIGKILL) at a moment of its own, and the
/// next starts on the other machine (waiting out the dead one's lease, deciding an interrupted
/// step by whether its effect is there), until a runner ends the run. Every non-idempotent step
/// ran once however many runners it took.
#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_run_killed_again_and_again_alternating_machines_runs_each_step_once() {
    let _ = NEEDS;
    let server = stats_server();
    let machines = Machines::new(&plan(&server, "500ms"));
    let url = migrated_database();
    // A seeded sequence of kill moments, 150 ms to 1.35 s into each runner's life.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_delay = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        Duration::from_millis(150 + (seed >> 33) % 1200)
    };
    let (mut machine, mut kills, mut flags) = (0, 0, Vec::<&str>::new());
    let deadline = Instant::now() + Duration::from_mins(3);
    loop {
        assert!(
            Instant::now() < deadline,
            "the run did not end: {:?}",
            machines.effects()
        );
        let mut child = common::postgres::spawn_runner(&machines.plan(machine), &url, "3s", &flags);
        let until = Instant::now() + next_delay();
        while Instant::now() < until && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill(); // SIGKILL: its lease is left to expire
            let _ = child.wait();
            kills += 1;
            flags.clear();
            machine = 1 - machine;
            continue;
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => break,
            Some(6) if stderr.contains("another runner is running this plan") => {
                std::thread::sleep(Duration::from_millis(300));
            }
            Some(6) if stderr.contains("--retry-step") => {
                flags = common::step_decision(&stderr, |stage| machines.ran(stage))
                    .into_iter()
                    .collect();
            }
            code => panic!("exit {code:?} after {kills} kills: {stderr}"),
        }
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed: the run was too short to test much"
    );
    machines.assert_each_step_once();
    let report = ion_plan()
        .args(["report", "--format", "json", "--state", &url])
        .arg(machines.plan(0))
        .run();
    assert_eq!(report.json()["outcome"], "completed", "{}", report.stderr);
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_runner_frozen_past_its_lease_is_taken_over_and_thawed_writes_nothing() {
    let server = stats_server();
    let url = migrated_database();
    let machines = Machines::new(&plan(&server, "1s"));
    let mut frozen = machines.spawn(0, &url);
    wait_until("runner A migrates stage a", Duration::from_secs(20), || {
        machines.effects().contains(&"verify-a".to_owned())
    });
    common::signal(&frozen, "STOP");
    // Past the 3 s lease (renewed every second until the freeze).
    std::thread::sleep(Duration::from_millis(4500));
    let (code, stderr) = machines.resume_to_end(1, &url);
    assert_eq!(code, 0, "runner B finishes the run: {stderr}");
    assert!(stderr.contains("resuming run"), "{stderr}");
    machines.assert_each_step_once();
    let written = events(&url);
    let effects = machines.effects();
    common::signal(&frozen, "CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = frozen.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "thawed runner A did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(frozen.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("lease"), "{stderr}");
    assert_eq!(events(&url), written, "A wrote after its thaw: {stderr}");
    assert_eq!(machines.effects(), effects, "A ran a step after its thaw");
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn an_approval_from_a_third_place_is_taken_by_the_running_runner_once() {
    let server = stats_server();
    let url = migrated_database();
    let plan = plan(&server, "0s").replace(
        "  - { name: b, traffic: 25, bake: 0s }",
        "  - { name: b, traffic: 25, bake: 0s, approval: { timeout: 1h } }",
    );
    let machines = Machines::new(&plan);
    let runner = machines.spawn(0, &url);
    // The person is on neither machine: only the plan's name and the database in common.
    let person = tempfile::tempdir().unwrap();
    let plan_there = write(person.path(), "plan.yaml", &plan);
    let status = |path: &Path| {
        ion_plan()
            .args(["status", "--format", "json", "--state", &url])
            .arg(path)
            .run()
    };
    wait_until("the run asks for approval", Duration::from_secs(20), || {
        let output = status(&plan_there);
        output.code == 0 && !output.json()["approval"].is_null()
    });
    let held = status(&plan_there).json();
    assert!(
        held["runner"]
            .as_str()
            .is_some_and(|h| h.contains(&format!("pid {}", runner.id()))),
        "{held}"
    );
    // A second runner on the other machine is refused while the first holds the lease.
    let second = ion_plan()
        .arg("run")
        .arg(machines.plan(1))
        .args(["--state", &url])
        .run();
    assert_eq!(second.code, 6, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("another runner is running this plan"),
        "{}",
        second.stderr
    );
    let approve = ion_plan()
        .args(["approve", "--by", "sena", "--state", &url])
        .arg(&plan_there)
        .run();
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let output = runner.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    machines.assert_each_step_once();
    let taken = psql(
        &url,
        "SELECT count(*) FROM ion_plan_events WHERE (record->'event')::jsonb ? 'approved'",
    );
    assert_eq!(taken, "1", "the approval is taken once");
    // `runs` lists it by the plan's name; no other plan has runs.
    for (plan, count) in [("team", 1), ("plan", 0)] {
        let runs = ion_plan()
            .args(["runs", "--format", "json", "--plan", plan, "--state", &url])
            .run();
        assert_eq!(runs.code, 0, "{}", runs.stderr);
        let listed = runs.json();
        assert_eq!(
            listed["runs"].as_array().map(Vec::len),
            Some(count),
            "{listed}"
        );
        if count > 0 {
            assert_eq!(listed["runs"][0]["outcome"], "completed", "{listed}");
        }
    }
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn the_schema_is_made_by_migrate_and_checked_by_every_command() {
    let url = common::postgres::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.yaml",
        "version: 1\nname: x\nstages:\n  - { name: all, traffic: 100, bake: 0s }\n",
    );
    let run = || {
        ion_plan()
            .arg("run")
            .arg(&plan)
            .args(["--state", &url])
            .run()
    };
    let before = run();
    assert_eq!(before.code, 1, "{}", before.stderr);
    assert!(
        before.stderr.contains("has no ion-plan tables") && before.stderr.contains("state migrate"),
        "{}",
        before.stderr
    );
    for expected in ["schema version 0 → 1", "schema version 1, up to date"] {
        let migrate = ion_plan().args(["state", "migrate", "--state", &url]).run();
        assert_eq!(migrate.code, 0, "{}", migrate.stderr);
        assert!(migrate.stderr.contains(expected), "{}", migrate.stderr);
    }
    // A database a newer ion-plan migrated is refused, and nothing is written to it.
    psql(&url, "UPDATE ion_plan_schema SET version = 99");
    let newer = run();
    assert_eq!(newer.code, 1, "{}", newer.stderr);
    assert!(
        newer
            .stderr
            .contains("schema version 99, newer than this ion-plan knows"),
        "{}",
        newer.stderr
    );
    assert_eq!(psql(&url, "SELECT count(*) FROM ion_plan_runs"), "0");
    // A password in the URL would show in `ps`: refused before any connection.
    let with_password = url.replacen("postgres@", "postgres:hunter2@", 1);
    let refused = ion_plan()
        .arg("run")
        .arg(&plan)
        .args(["--state", &with_password])
        .run();
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("PGPASSWORD"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    // `--state` is a database; a folder is `--state-dir`.
    let folder = ion_plan()
        .arg("status")
        .arg(&plan)
        .args(["--state", "/tmp/somewhere"])
        .run();
    assert_eq!(folder.code, 2, "{}", folder.stderr);
    assert!(folder.stderr.contains("--state-dir"), "{}", folder.stderr);
    // ION_PLAN_STATE stands for `--state`.
    psql(&url, "UPDATE ion_plan_schema SET version = 1");
    let from_env = ion_plan()
        .arg("run")
        .arg(&plan)
        .env("ION_PLAN_STATE", &url)
        .run();
    assert_eq!(from_env.code, 0, "{}", from_env.stderr);
    assert_eq!(psql(&url, "SELECT count(*) FROM ion_plan_runs"), "1");
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_state_folder_imported_reads_back_the_same() {
    let server = stats_server();
    let machines = Machines::new(&plan(&server, "0s"));
    // Two runs in the folder: the first ended, then a second one.
    let plan_path = machines.plan(0);
    for restart in [false, true] {
        let output = ion_plan()
            .arg("run")
            .arg(&plan_path)
            .args(if restart { vec!["--restart"] } else { vec![] })
            .run();
        assert_eq!(output.code, 0, "{}", output.stderr);
    }
    let url = migrated_database();
    let folder = machines.copies[0].path().join(".ion-plan");
    for expected in ["2 runs imported", "0 runs imported"] {
        let import = ion_plan()
            .args(["state", "import"])
            .arg(&folder)
            .args(["--state", &url])
            .run();
        assert_eq!(import.code, 0, "{}", import.stderr);
        assert!(import.stderr.contains(expected), "{}", import.stderr);
    }
    let from_files = ion_plan()
        .args(["report", "--format", "json"])
        .arg(&plan_path)
        .run();
    let from_db = ion_plan()
        .args(["report", "--format", "json", "--state", &url])
        .arg(&plan_path)
        .run();
    assert_eq!(from_db.code, 0, "{}", from_db.stderr);
    assert_eq!(from_files.json(), from_db.json());
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM ion_plan_runs WHERE name = 'team'"
        ),
        "2"
    );
    // The imported run ended: a runner on the database says so and starts nothing.
    let again = ion_plan()
        .arg("run")
        .arg(machines.plan(1))
        .args(["--state", &url])
        .run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_plan_is_one_rollout_by_its_name_not_its_file_name() {
    let url = migrated_database();
    let plan = |name: &str| {
        format!("version: 1\nname: {name}\nstages:\n  - {{ name: all, traffic: 100, bake: 0s }}\n")
    };
    let run = |path: &Path| {
        ion_plan()
            .arg("run")
            .arg(path)
            .args(["--state", &url])
            .run()
    };
    // Two teams' `deploy.yaml`, in two folders: two rollouts, neither touching the other.
    let team_a = tempfile::tempdir().unwrap();
    let team_b = tempfile::tempdir().unwrap();
    let alpha = write(team_a.path(), "deploy.yaml", plan("alpha"));
    let beta = write(team_b.path(), "deploy.yaml", plan("beta"));
    for path in [&alpha, &beta] {
        let output = run(path);
        assert_eq!(output.code, 0, "{}", output.stderr);
        assert!(
            !output.stderr.contains("nothing to do"),
            "{}",
            output.stderr
        );
    }
    assert_eq!(
        psql(
            &url,
            "SELECT string_agg(plan, ',' ORDER BY plan) FROM ion_plan_runs"
        ),
        "alpha,beta"
    );
    // The same plan under another file name, on another machine: the same rollout, which has
    // ended.
    let elsewhere = tempfile::tempdir().unwrap();
    let renamed = write(elsewhere.path(), "alpha-rollout.yaml", plan("alpha"));
    let again = run(&renamed);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    assert_eq!(psql(&url, "SELECT count(*) FROM ion_plan_runs"), "2");
}
