//! The two state stores side by side (prints figures; asserts only that the data round-trips):
//! appending one event (the file journal's write + fsync; PostgreSQL's fenced insert on
//! loopback), replaying a 100,000-event run from each, and how long a runner that died holds a
//! plan in PostgreSQL with the default lease before another one takes over.
//!
//! `ION_PLAN_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT/postgres cargo bench --bench state`
//! (`.ci/postgres start DIR` prints it). `SMOKE=1`: small sizes, no takeover wait.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ion_plan::event::{Event, FORMAT_VERSION, Record};
use ion_plan::journal::postgres::Db;
use ion_plan::journal::store::{Guard, Store};
use ion_plan::journal::{Header, Journal, Writer, replay};
use ion_plan::probe::{Reading, Sample};

fn header(run_id: &str) -> Header {
    Header {
        format: FORMAT_VERSION,
        run_id: run_id.into(),
        plan: "plans/phase4.yaml".into(),
        digest: "sha256:0".into(),
        created: Utc::now(),
        vars: Vec::new(),
    }
}

fn sample(i: u64) -> Event {
    #[expect(clippy::cast_precision_loss, reason = "small numbers")]
    let value = (i % 100) as f64 / 10_000.0;
    Event::SampleTaken {
        stage: Some("canary-25".into()),
        check: u32::try_from(i).unwrap_or(u32::MAX),
        sample: Sample::ok(
            "canary",
            [("error_rate", value), ("memory", 0.6), ("cpu", 0.4)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Reading::Value(v)))
                .collect(),
        ),
    }
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "median {:?}, p99 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    )
}

fn psql(url: &str, sql: &str) -> String {
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
        .expect("psql");
    assert!(output.status.success(), "psql {sql}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn main() {
    let Ok(server) = std::env::var("ION_PLAN_TEST_POSTGRES") else {
        println!(
            "state bench: ION_PLAN_TEST_POSTGRES is not set (`.ci/postgres start DIR`); skipped"
        );
        return;
    };
    let smoke = std::env::var_os("SMOKE").is_some();
    let (appends, events) = if smoke {
        (100, 2_000)
    } else {
        (2_000, 100_000)
    };
    let server = server
        .rsplit_once('/')
        .map_or(server.clone(), |(s, _)| s.to_owned());
    let name = format!("bench_state_{}", std::process::id());
    let _ = psql(
        &format!("{server}/postgres"),
        &format!("DROP DATABASE IF EXISTS {name}"),
    );
    let _ = psql(
        &format!("{server}/postgres"),
        &format!("CREATE DATABASE {name}"),
    );
    let url = format!("{server}/{name}");
    let db = Db::connect(&url).expect("connect");
    db.migrate().expect("migrate");
    let dir = tempfile::tempdir().expect("temp dir");

    // Appending: the file journal (write + fsync) and the database (a fenced insert, committed).
    let mut file = Journal::create(dir.path(), "append.jsonl", &header("file")).expect("journal");
    let mut times = Vec::with_capacity(appends);
    for i in 0..appends as u64 {
        let started = Instant::now();
        file.append(Utc::now(), sample(i)).expect("append");
        times.push(started.elapsed());
    }
    println!(
        "append, file journal (write + fsync), {appends} events: {}",
        percentiles(times)
    );
    let plan = dir.path().join("bench.yaml");
    std::fs::write(&plan, "version: 1\nname: bench\nstages: []\n").expect("plan");
    let store = Store::with_db(&plan, std::sync::Arc::clone(&db), Duration::from_secs(30));
    let Guard::Lease(lease) = store.lock().expect("lease") else {
        unreachable!("a database store holds a lease")
    };
    db.create_run(&lease, &header("20251022T140000000Z-0001"), "bench", "")
        .expect("run");
    // The throwaway cluster runs with fsync=off; durable commits for this figure, as in production.
    psql(&url, "ALTER SYSTEM SET fsync = on");
    psql(&url, "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(200));
    let fsync = psql(&url, "SHOW fsync");
    let mut journal = Writer::Postgres(lease.journal("20251022T140000000Z-0001", 0));
    let mut times = Vec::with_capacity(appends);
    for i in 0..appends as u64 {
        let started = Instant::now();
        journal.append(Utc::now(), sample(i)).expect("append");
        times.push(started.elapsed());
    }
    psql(&url, "ALTER SYSTEM RESET fsync");
    psql(&url, "SELECT pg_reload_conf()");
    println!(
        "append, PostgreSQL on loopback (fenced insert, committed; server fsync {fsync}), {appends} events: {}",
        percentiles(times)
    );
    drop(journal);
    drop(lease);

    replay_both(&db, &store, dir.path(), events);

    if smoke {
        println!("takeover: skipped at smoke size");
    } else {
        takeover(&url, dir.path());
    }
    drop(store);
    drop(db);
    psql(
        &format!("{server}/postgres"),
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    );
}

/// Replaying a run of `events` events from each store.
fn replay_both(db: &Db, store: &Store, dir: &Path, events: u64) {
    let path = dir.join("bench-20251022T140000000Z-0002.jsonl");
    let mut text = serde_json::to_string(&header("20251022T140000000Z-0002")).expect("header");
    text.push('\n');
    for seq in 1..=events {
        let record = Record {
            seq,
            at: Utc::now(),
            event: sample(seq),
        };
        text.push_str(&serde_json::to_string(&record).expect("record"));
        text.push('\n');
    }
    std::fs::write(&path, &text).expect("write");
    let replayed = replay::read(&path).expect("replay");
    assert!(
        db.import("bench", Some("bench"), &replayed, "")
            .expect("import")
    );
    let time = |read: &dyn Fn() -> u64| {
        let mut runs: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(read(), events);
                started.elapsed()
            })
            .collect();
        runs.sort();
        runs[2]
    };
    let from_file = time(&|| replay::read(&path).expect("replay").state().last_seq);
    let from_db = time(&|| {
        let (_, run) = store
            .find("20251022T140000000Z-0002")
            .expect("find")
            .expect("the run");
        run.last_seq
    });
    println!(
        "replay (read + parse + fold) of {events} events ({} MB): file {from_file:?}, PostgreSQL {from_db:?} (median of 5)",
        text.len() / 1_000_000
    );
}

/// A runner holding the plan with the default lease (30 s) is killed (SIGKILL); how long until another
/// runner takes the plan over.
fn takeover(url: &str, dir: &Path) {
    let plan = dir.join("takeover.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: takeover\nstages:\n  - { name: all, traffic: 100, bake: 10m }\n",
    )
    .expect("plan");
    let binary = env!("CARGO_BIN_EXE_ion-plan");
    let mut runner = Command::new(binary)
        .arg("run")
        .arg(&plan)
        .args(["--state", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let store = Store::in_postgres(&plan, url, Duration::from_secs(30)).expect("store");
    let started = Instant::now();
    while store.holder().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the runner never took the lease"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it renew a few times, as a long-running runner has.
    std::thread::sleep(Duration::from_secs(12));
    let _ = runner.kill();
    let _ = runner.wait();
    let killed = Instant::now();
    let taken = loop {
        if let Ok(guard) = store.lock() {
            break (killed.elapsed(), guard);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "takeover after SIGKILL with the default 30 s lease (renewed every 10 s): {:?}",
        taken.0
    );
}
