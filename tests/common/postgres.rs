//! A fresh database per test in the throwaway PostgreSQL cluster `.ci/postgres` starts (its URL
//! in `ION_PLAN_TEST_POSTGRES`), and `psql` to look at or tamper with what a test left there.

use std::process::Command;

/// The cluster's URL without a database: `postgres://USER@HOST:PORT`.
pub fn server() -> String {
    let url = std::env::var("ION_PLAN_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "ION_PLAN_TEST_POSTGRES is not set: start a throwaway cluster with \
             `eval \"$(.ci/postgres start /tmp/ion-plan-pg)\"` (as .ci/run does)"
        )
    });
    match url.rsplit_once('/') {
        Some((server, _db)) if server.contains('@') || server.ends_with(char::is_numeric) => {
            server.to_owned()
        }
        _ => url,
    }
}

/// Runs `sql` with `psql` against `url`; returns its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql (Debian's postgresql-client)");
    assert!(
        output.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A new, empty database of its own; its URL.
pub fn fresh_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let server = server();
    psql(
        &format!("{server}/postgres"),
        &format!("CREATE DATABASE {name}"),
    );
    format!("{server}/{name}")
}

/// `ion-plan run PLAN --state URL --lease LEASE FLAGS…` started in the background (stdin and
/// stdout closed, stderr piped), for a test that kills, freezes or waits on it.
pub fn spawn_runner(
    plan: &std::path::Path,
    url: &str,
    lease: &str,
    flags: &[&str],
) -> std::process::Child {
    use std::process::Stdio;
    Command::new(env!("CARGO_BIN_EXE_ion-plan"))
        .arg("run")
        .arg(plan)
        .args(["--state", url, "--lease", lease])
        .args(flags)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A fresh database with the ion-plan tables, made by `ion-plan state migrate`.
pub fn migrated_database() -> String {
    let url = fresh_database();
    let output = super::ion_plan()
        .args(["state", "migrate", "--state", &url])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    url
}
