//! The PostgreSQL store over TLS (rustls), against the throwaway cluster of `.ci/postgres`: it
//! serves TLS with a CA of its own (`$ION_PLAN_TEST_PG_DIR/ca.crt`) and a certificate for the name
//! `localhost` only, and admits the role `tls_only` over TLS alone — so a run that works as
//! `tls_only` went over TLS, and each `sslmode` is held to what it promises.
//!
//! Needs the cluster (`ION_PLAN_TEST_POSTGRES`, `ION_PLAN_TEST_PG_DIR`).

mod common;

use std::path::PathBuf;

use common::postgres::{fresh_database, psql};
use common::{ion_plan, write};

/// The CA that signed the cluster's certificate.
fn ca() -> PathBuf {
    let dir = std::env::var("ION_PLAN_TEST_PG_DIR")
        .expect("ION_PLAN_TEST_PG_DIR: the cluster's folder (.ci/postgres start prints it)");
    let ca = PathBuf::from(dir).join("ca.crt");
    assert!(
        ca.is_file(),
        "{} (made by .ci/postgres start)",
        ca.display()
    );
    ca
}

/// A fresh database's URL as `tls_only` at `host`, with `query`.
fn url_as_tls_only(host: &str, query: &str) -> String {
    let url = fresh_database();
    let (_, rest) = url.split_once('@').unwrap();
    let (_, port_db) = rest.split_once(':').unwrap();
    format!("postgres://tls_only@{host}:{port_db}?{query}")
}

fn migrate(url: &str) -> common::Output {
    ion_plan().args(["state", "migrate", "--state", url]).run()
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn a_run_goes_over_tls_with_require_and_with_verify_full_by_the_certificates_name() {
    let ca = ca();
    for url in [
        url_as_tls_only("127.0.0.1", "sslmode=require"),
        url_as_tls_only(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        url_as_tls_only(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        ),
    ] {
        let migrated = migrate(&url);
        assert_eq!(migrated.code, 0, "{url}: {}", migrated.stderr);
        let dir = tempfile::tempdir().unwrap();
        let plan = write(
            dir.path(),
            "plan.yaml",
            "version: 1\nname: over-tls\nstages:\n  - { name: all, traffic: 100, bake: 0s }\n",
        );
        let ran = ion_plan()
            .arg("run")
            .arg(&plan)
            .args(["--state", &url])
            .run();
        assert_eq!(ran.code, 0, "{url}: {}", ran.stderr);
        // Its journal is in the database, written as `tls_only`: over TLS.
        let (plain, _) = url.split_once('?').unwrap();
        let db = plain.rsplit('/').next().unwrap();
        let server = common::postgres::server();
        let events = psql(
            &format!("{server}/{db}"),
            "SELECT count(*) FROM ion_plan_events",
        );
        assert!(events.parse::<u32>().unwrap() > 2, "{events}");
        assert!(!dir.path().join(".ion-plan").exists(), "nothing on disk");
    }
}

#[test]
#[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
fn each_sslmode_refuses_what_it_must_and_says_why() {
    let ca = ca();
    // Without TLS the server refuses this role: its words, not sqlx's source line.
    let plain = migrate(&url_as_tls_only("127.0.0.1", "sslmode=disable"));
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("no encryption") && plain.stderr.contains("SQLSTATE 28000"),
        "{}",
        plain.stderr
    );
    assert!(!plain.stderr.contains("at line"), "{}", plain.stderr);

    // verify-full with a CA this machine does not trust: refused, and told how to name it.
    let untrusted = migrate(&url_as_tls_only("localhost", "sslmode=verify-full"));
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("UnknownIssuer") && untrusted.stderr.contains("sslrootcert="),
        "{}",
        untrusted.stderr
    );

    // verify-full by an address the certificate does not name: refused, though the CA is right.
    let mismatch = migrate(&url_as_tls_only(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ));
    assert_eq!(mismatch.code, 1, "{}", mismatch.stderr);
    assert!(
        mismatch.stderr.contains("not valid for name \"127.0.0.1\"")
            && mismatch.stderr.contains("verify-ca"),
        "{}",
        mismatch.stderr
    );

    // A CA file that is not there: refused before any connection, naming the file.
    let missing = migrate(&url_as_tls_only(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
    ));
    assert_ne!(missing.code, 0, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("its sslrootcert `/nonexistent/ca.crt` cannot be read"),
        "{}",
        missing.stderr
    );
}
