//! The PostgreSQL state store against an on-call engineer's bad day and an attacker's input
//! (README, "Running as a team"): a password or a misspelt parameter in the URL, a server that
//! refuses connections, a state folder with a journal that is no run, a runner whose lease is
//! taken while it waits for a person.
//!
//! All but the refused connection need the throwaway cluster of `.ci/postgres`
//! (`ION_PLAN_TEST_POSTGRES`), as `.ci/run` starts.

mod common;

use common::postgres::{migrated_database, psql};
use common::{ion_plan, write};

/// Every table's row count and the lease's token: what a refused command must leave as it was.
fn footprint(url: &str) -> String {
    psql(
        url,
        "SELECT (SELECT count(*) FROM ion_plan_runs) || '/' || (SELECT count(*) FROM ion_plan_events)
             || '/' || (SELECT count(*) FROM ion_plan_inbox) || '/' || (SELECT count(*) FROM ion_plan_leases)",
    )
}

/// A one-stage plan named `name` run to its end with the file store; its folder (kept alive by
/// the first value) and the state folder holding the run.
fn one_run_in_a_folder(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.yaml",
        format!("version: 1\nname: {name}\nstages:\n  - {{ name: all, traffic: 100, bake: 0s }}\n"),
    );
    let ran = ion_plan().arg("run").arg(&plan).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let state = dir.path().join(".ion-plan");
    (dir, state)
}

/// A plan whose second stage waits an hour for a person (its steps append to `effects.txt`),
/// and a runner on it, once it waits.
fn waiting_runner(dir: &std::path::Path, url: &str) -> (std::path::PathBuf, std::process::Child) {
    use std::time::{Duration, Instant};

    common::script(dir, "log.sh", "echo \"$1\" >> effects.txt");
    let plan = write(
        dir,
        "plan.yaml",
        "\
version: 1
name: waits
defaults:
  steps:
    - run: [./log.sh, \"step-${{ stage.name }}\"]
stages:
  - { name: a, traffic: 10, bake: 0s }
  - { name: b, traffic: 100, bake: 0s, approval: { timeout: 1h } }
rollback:
  - run: [./log.sh, rollback]
",
    );
    let runner = common::postgres::spawn_runner(&plan, url, "3s", &[]);
    let waiting = Instant::now() + Duration::from_secs(20);
    while psql(
        url,
        "SELECT count(*) FROM ion_plan_events WHERE (record->'event')::jsonb ? 'approval_requested'",
    ) != "1"
    {
        assert!(Instant::now() < waiting, "the run never asked for approval");
        std::thread::sleep(Duration::from_millis(50));
    }
    (plan, runner)
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_password_or_an_unknown_parameter_in_the_url_is_refused_and_never_printed() {
    let url = migrated_database();
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.yaml",
        "version: 1\nname: x\nstages:\n  - { name: all, traffic: 100, bake: 0s }\n",
    );
    // Each of these would connect (the cluster trusts loopback), so only the refusal stops them:
    // a password as a parameter shows in `ps` as one in the user part does, and a misspelt
    // `sslmode` is ignored by the client, which then connects without TLS.
    for (query, expected) in [
        ("?password=hunter2", "PGPASSWORD"),
        ("?sslmode=disable&password=hunter2", "PGPASSWORD"),
        ("?ssl_mode=verify-full", "`ssl_mode`"),
        ("?sslmod=require", "`sslmod`"),
    ] {
        let refused = ion_plan()
            .arg("run")
            .arg(&plan)
            .args(["--state", &format!("{url}{query}")])
            .run();
        assert_eq!(refused.code, 1, "{query}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(expected),
            "{query}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
        assert_eq!(footprint(&url), "0/0/0/0", "{query}");
    }
    // The parameters the client knows still work.
    let known = ion_plan()
        .arg("run")
        .arg(&plan)
        .args([
            "--state",
            &format!("{url}?sslmode=disable&application_name=ci"),
        ])
        .run();
    assert_eq!(known.code, 0, "{}", known.stderr);
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_journal_that_is_no_run_is_skipped_by_import_as_by_the_file_store() {
    let (_dir, state) = one_run_in_a_folder("x");
    // A runner that crashed before its header was written left an empty journal; it sorts
    // first. The file store reads past it.
    let empty = write(&state, "a-20200101T000000Z-abcd.jsonl", "");
    let url = migrated_database();
    let import = ion_plan()
        .args(["state", "import"])
        .arg(&state)
        .args(["--state", &url])
        .run();
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("1 run imported"),
        "{}",
        import.stderr
    );
    assert!(
        import
            .stderr
            .contains(&format!("warning: ignoring `{}`", empty.display())),
        "{}",
        import.stderr
    );
    let journal = common::journals(&state)
        .into_iter()
        .find(|j| *j != empty)
        .expect("the run's journal");
    let events = std::fs::read_to_string(&journal).unwrap().lines().count() - 1;
    // The import held the plan's lease while it copied, and let it go.
    assert_eq!(footprint(&url), format!("1/{events}/0/1"));
    assert_eq!(
        psql(&url, "SELECT expires <= now() FROM ion_plan_leases"),
        "t"
    );
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_runner_whose_lease_is_taken_while_it_waits_for_a_person_stops_with_exit_6() {
    use std::time::{Duration, Instant};

    let url = migrated_database();
    let dir = tempfile::tempdir().unwrap();
    let (_, mut runner) = waiting_runner(dir.path(), &url);
    // Another runner takes the lease over, as `ion-plan run` on another machine does once it
    // expired: a new holder and the next token.
    psql(
        &url,
        "UPDATE ion_plan_leases SET holder = 'other', pid = 1, token = token + 1,
             expires = now() + interval '1 hour'",
    );
    let before = footprint(&url);
    // It stops at its next renewal (every second with this lease), not at the approval's
    // timeout an hour away.
    let stopping = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= stopping {
            runner.kill().unwrap();
            runner.wait().unwrap();
            panic!("the runner still waits for a person on a lease that is not its own");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut runner.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("taken over while it waited"), "{stderr}");
    assert_eq!(footprint(&url), before, "it wrote nothing more");
    assert_eq!(
        common::lines(&dir.path().join("effects.txt")),
        ["step-a", "step-b"],
        "no rollback, nothing run twice"
    );
}

#[test]
fn a_server_that_refuses_the_connection_is_named_as_refusing() {
    // A port nobody listens on: the pool alone said only "pool timed out while waiting for an
    // open connection", which sends the on-call engineer to the pool, not to the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = ion_plan()
        .args([
            "runs",
            "--state",
            &format!("postgres://ion@127.0.0.1:{port}/rollouts"),
        ])
        .run();
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stderr.contains(&format!(
            "cannot connect to postgres://ion@127.0.0.1:{port}/rollouts"
        )) && output.stderr.contains("Connection refused"),
        "{}",
        output.stderr
    );
}

/// A journal whose last line a crash tore is imported without that line, and says so; a line
/// damaged in the middle stops the import there, worded for an import (not for a backtest).
#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_torn_last_line_is_imported_without_it_and_said_and_a_damaged_middle_stops_the_import() {
    let (_dir, state) = one_run_in_a_folder("torn");
    let journal = common::journals(&state).pop().expect("the run's journal");
    let whole = std::fs::read_to_string(&journal).unwrap();
    let events = whole.lines().count() - 1;
    let torn = r#"{"seq":99,"at":"2026-"#;
    std::fs::write(&journal, format!("{whole}{torn}")).unwrap();
    let url = migrated_database();
    let import = ion_plan()
        .args(["state", "import"])
        .arg(&state)
        .args(["--state", &url])
        .run();
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("dropped a torn last line")
            && import.stderr.contains("1 run imported"),
        "{}",
        import.stderr
    );
    assert_eq!(footprint(&url), format!("1/{events}/0/1"));

    // A line damaged in the middle: nothing of that journal goes in.
    let mut lines: Vec<&str> = whole.lines().collect();
    lines[2] = "{not json";
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let url = migrated_database();
    let import = ion_plan()
        .args(["state", "import"])
        .arg(&state)
        .args(["--state", &url])
        .run();
    assert_eq!(import.code, 1, "{}", import.stderr);
    assert!(
        import.stderr.contains("line 3") && import.stderr.contains("the import stopped there"),
        "{}",
        import.stderr
    );
    assert!(!import.stderr.contains("judged"), "{}", import.stderr);
    assert_eq!(psql(&url, "SELECT count(*) FROM ion_plan_events"), "0");
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_state_folder_is_not_imported_beside_a_run_a_runner_is_running() {
    let url = migrated_database();
    let machine = tempfile::tempdir().unwrap();
    let (_, mut runner) = waiting_runner(machine.path(), &url);
    // The same plan run from a state folder after it: its run is the newer one.
    let laptop = tempfile::tempdir().unwrap();
    common::script(laptop.path(), "log.sh", "true");
    let plan = write(
        laptop.path(),
        "plan.yaml",
        std::fs::read_to_string(machine.path().join("plan.yaml")).unwrap(),
    );
    let local = ion_plan().args(["run", "--once"]).arg(&plan).run();
    assert!(
        local.stderr.contains("waits for a person"),
        "{}",
        local.stderr
    );
    let before = footprint(&url);
    let import = ion_plan()
        .args(["state", "import"])
        .arg(laptop.path().join(".ion-plan"))
        .args(["--state", &url])
        .run();
    // Imported, it became the plan's newest run: `status` showed it as the one running, and an
    // approval went to it while the runner waited on.
    assert_eq!(import.code, 6, "{}", import.stderr);
    assert!(
        import
            .stderr
            .contains("another runner is running this plan")
            && import.stderr.contains(&format!("pid {}", runner.id())),
        "{}",
        import.stderr
    );
    assert_eq!(footprint(&url), before, "nothing imported");
    runner.kill().unwrap();
    runner.wait().unwrap();
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_runner_stopped_with_ctrl_c_lets_its_lease_go() {
    let url = migrated_database();
    let dir = tempfile::tempdir().unwrap();
    let (plan, runner) = waiting_runner(dir.path(), &url);
    common::signal(&runner, "INT");
    let output = runner.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Its processes are ended and it writes nothing more: the operator who pressed Ctrl-C to
    // fix something resumes at once, not "another runner is running this plan" (naming the
    // dead process) for the rest of the lease.
    assert_eq!(
        psql(&url, "SELECT expires <= now() FROM ion_plan_leases"),
        "t"
    );
    let resumed = ion_plan()
        .args(["run", "--once", "--state", &url])
        .arg(&plan)
        .run();
    assert!(
        resumed.stderr.contains("waits for a person") && resumed.code != 6,
        "{}",
        resumed.stderr
    );
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_runner_whose_database_stalls_past_its_lease_runs_no_probe() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let url = migrated_database();
    let dir = tempfile::tempdir().unwrap();
    // A `command` probe runs a program on every check (a `load` probe sends requests): each
    // run leaves a line.
    common::script(
        dir.path(),
        "probe.sh",
        "echo ran >> probes.txt\necho '{\"error_rate\": 0}'",
    );
    let plan = write(
        dir.path(),
        "plan.yaml",
        "\
version: 1
name: stalled
probes:
  health:
    command: [./probe.sh]
stages:
  - name: a
    traffic: 10
    bake: 1h
    checks: { every: 200ms, probes: [health] }
",
    );
    let probes = || common::lines(&dir.path().join("probes.txt")).len();
    let mut runner = common::postgres::spawn_runner(&plan, &url, "3s", &[]);
    let baking = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("probes.txt").exists() {
        assert!(Instant::now() < baking, "the bake never checked");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The database stalls on the lease row for longer than the lease (a lock held 5 s): the
    // runner's renewal and its next check's start wait, then the start is written (it was
    // asked for while the lease held). By then the lease may have passed to another runner:
    // the probe that follows must not run.
    let mut locker = Command::new("psql")
        .args(["-X", "-q", &url, "-c"])
        .arg("SELECT 1 FROM ion_plan_leases FOR UPDATE; SELECT pg_sleep(5)")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let locking = Instant::now() + Duration::from_secs(10);
    while psql(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
    ) != "1"
    {
        assert!(Instant::now() < locking, "the lease row was never locked");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A check already past its start when the lock came finishes its probe meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let ran = probes();
    let stopping = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= stopping {
            runner.kill().unwrap();
            runner.wait().unwrap();
            panic!("the runner did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    locker.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut runner.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert_eq!(probes(), ran, "a probe ran on a lapsed lease: {stderr}");
}
