//! One conformance suite for both state stores, the state folder and PostgreSQL (README,
//! "Running as a team"): append and replay, a damaged journal, one runner per plan and who
//! holds it, runners racing for a plan, a runner that lost its hold writing nothing, requests
//! taken once. Every case runs against each store through the same library calls; the
//! PostgreSQL ones need the throwaway cluster of `.ci/postgres` (`ION_PLAN_TEST_POSTGRES`).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use ion_plan::event::Event;
use ion_plan::journal::Writer;
use ion_plan::journal::inbox::{Entry, Request};
use ion_plan::journal::store::{Opened, Opening, Start, Store, StoreError, digest};
use ion_plan::plan::model::Plan;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Files,
    Postgres,
}

/// A plan in a temporary folder, and where its store is.
struct Fixture {
    dir: tempfile::TempDir,
    plan: PathBuf,
    url: Option<String>,
}

const PLAN: &str =
    "version: 1\nname: conformance\nstages:\n  - name: all\n    traffic: 100\n    bake: 0s\n";

impl Fixture {
    fn new(kind: Kind) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let plan = common::write(dir.path(), "web.yaml", PLAN);
        let url = match kind {
            Kind::Files => None,
            Kind::Postgres => Some(common::postgres::migrated_database()),
        };
        Fixture { dir, plan, url }
    }

    /// A store as one runner (one process, one connection) sees it.
    fn store(&self) -> Store {
        match &self.url {
            Some(url) => Store::in_postgres(&self.plan, url, Duration::from_secs(5)).unwrap(),
            None => Store::for_plan(&self.plan, None),
        }
    }

    fn plan(&self) -> Plan {
        ion_plan::plan::validate::validate_source(
            ion_plan::plan::load::Source::new(&self.plan, PLAN.to_owned()),
            ion_plan::plan::validate::Checks { filesystem: false },
        )
        .plan
        .expect("a valid plan")
    }

    /// Opens the plan's run (new or taken up) under `guard`.
    fn open(&self, store: &Store, guard: &ion_plan::journal::store::Guard) -> Opened {
        self.open_as(store, guard, false)
    }

    /// Opens the plan's run under `guard`; `restart`: a new run whatever the newest did.
    fn open_as(
        &self,
        store: &Store,
        guard: &ion_plan::journal::store::Guard,
        restart: bool,
    ) -> Opened {
        let plan = self.plan();
        let digest = digest(PLAN, &[]);
        let start = Start {
            plan: &plan,
            plan_path: &self.plan,
            digest: &digest,
            text: PLAN,
            vars: &[],
            restart,
            resolves_step: false,
            default_step_timeout: Duration::from_secs(1),
            now: Utc::now(),
        };
        match store.open(&start, guard, &mut |_| {}) {
            Ok(Opening::Opened(opened)) => *opened,
            other => panic!("{other:?}"),
        }
    }

    /// Spoils the record numbered `seq` of run `run_id`, as a failing disk or a hand edit would.
    fn damage(&self, run_id: &str, seq: u64) {
        if let Some(url) = &self.url {
            common::postgres::psql(
                url,
                &format!(
                    "UPDATE ion_plan_events SET record = '{{\"not\": \"a record\"}}' WHERE run_id = '{run_id}' AND seq = {seq}"
                ),
            );
        } else {
            let path = self
                .dir
                .path()
                .join(format!(".ion-plan/web-{run_id}.jsonl"));
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines[usize::try_from(seq).unwrap()] = "{\"not\": \"a record\"}";
            std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
        }
    }

    /// Takes the runner's hold away from under it: the lease expires (a runner frozen past it),
    /// or the lock file is replaced.
    fn take_hold_away(&self) {
        if let Some(url) = &self.url {
            common::postgres::psql(
                url,
                "UPDATE ion_plan_leases SET expires = now() - interval '1 second'",
            );
        } else {
            std::fs::remove_file(self.dir.path().join(".ion-plan/web.lock")).unwrap();
        }
    }
}

fn stage(name: &str) -> Event {
    Event::StageCompleted {
        stage: name.to_owned(),
    }
}

fn append(writer: &mut Writer, name: &str) -> std::io::Result<()> {
    writer.append(Utc::now(), stage(name)).map(drop)
}

fn appended_events_read_back_in_order(kind: Kind) {
    let fixture = Fixture::new(kind);
    let store = fixture.store();
    let guard = store.lock().unwrap();
    let mut opened = fixture.open(&store, &guard);
    assert!(opened.resume.is_none(), "a new run");
    for name in ["a", "b", "c", "d", "e"] {
        append(&mut opened.journal, name).unwrap();
    }
    drop(opened);
    drop(guard);
    // Another runner's view: a store opened afresh.
    let other = fixture.store();
    let (replay, run) = other.latest(&mut |w| panic!("{w}")).unwrap().unwrap();
    let stages: Vec<String> = replay
        .records
        .iter()
        .map(|r| match &r.event {
            Event::StageCompleted { stage } => stage.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(stages, ["a", "b", "c", "d", "e"]);
    assert_eq!(
        replay.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(other.run_ids(), std::slice::from_ref(&run.run_id));
    let (found, _) = other.find(&run.run_id).unwrap().unwrap();
    assert_eq!(found.records, replay.records);
    assert_eq!(found.header, replay.header);
    assert!(other.find("20200101T000000000Z-0000").unwrap().is_none());
}

fn a_damaged_journal_is_an_error_naming_the_record(kind: Kind) {
    let fixture = Fixture::new(kind);
    let store = fixture.store();
    let guard = store.lock().unwrap();
    let mut opened = fixture.open(&store, &guard);
    for name in ["a", "b", "c"] {
        append(&mut opened.journal, name).unwrap();
    }
    let run_id = opened.run_id.clone();
    drop(opened);
    drop(guard);
    fixture.damage(&run_id, 2);
    match fixture.store().latest(&mut |_| {}) {
        Err(StoreError::Journal(error)) => {
            let text = error.to_string();
            // The header is line 1: record 2 is line 3.
            assert!(text.contains("line 3"), "{text}");
            assert!(text.contains("not a journal record"), "{text}");
        }
        other => panic!("a damaged record must be an error: {other:?}"),
    }
}

fn one_runner_per_plan_and_the_holder_is_named(kind: Kind) {
    let fixture = Fixture::new(kind);
    let first = fixture.store();
    let held = first.lock().unwrap();
    let second = fixture.store();
    let refused = second.lock().expect_err("a second runner must be refused");
    assert!(refused.is_conflict(), "{refused}");
    assert!(refused.to_string().contains("another runner"), "{refused}");
    let holder = second.holder().expect("the holder is named");
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
    drop(held);
    assert!(second.holder().is_none(), "released: nobody holds it");
    second.lock().expect("released: the next runner takes it");
}

fn runners_racing_for_a_plan_one_wins(kind: Kind) {
    let fixture = Fixture::new(kind);
    let stores: Vec<Store> = (0..6).map(|_| fixture.store()).collect();
    let barrier = std::sync::Barrier::new(stores.len());
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let taken = store.lock();
                    // Hold it until every racer has tried.
                    barrier.wait();
                    taken.is_ok()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|won| **won).count(),
        1,
        "exactly one runner wins: {results:?}"
    );
}

fn a_runner_that_lost_its_hold_writes_nothing(kind: Kind) {
    let fixture = Fixture::new(kind);
    let store_a = fixture.store();
    let guard_a = store_a.lock().unwrap();
    let mut opened_a = fixture.open(&store_a, &guard_a);
    opened_a.journal.guard_with(&guard_a);
    append(&mut opened_a.journal, "a").unwrap();
    fixture.take_hold_away();
    let store_b = fixture.store();
    let guard_b = store_b.lock().expect("the hold was given up: B takes it");
    let error = append(&mut opened_a.journal, "stale").expect_err("A lost its hold");
    assert!(
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<ion_plan::journal::Stolen>())
            .is_some(),
        "A stops as a runner that lost its hold: {error}"
    );
    drop(opened_a);
    drop(guard_a);
    // B takes the run up where A's last good write left it, and goes on.
    let mut opened_b = fixture.open(&store_b, &guard_b);
    let resumed = opened_b.resume.as_ref().map(|r| r.last_seq);
    assert_eq!(
        resumed, None,
        "the run had not started: a header and one event"
    );
    append(&mut opened_b.journal, "b").unwrap();
    drop(opened_b);
    let (replay, _) = store_b.latest(&mut |_| {}).unwrap().unwrap();
    let names: Vec<String> = replay
        .records
        .iter()
        .map(|r| format!("{:?}", r.event))
        .collect();
    assert_eq!(replay.records.len(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n.contains("stale")), "{names:?}");
}

fn requests_are_taken_once_and_only_by_their_run(kind: Kind) {
    let fixture = Fixture::new(kind);
    let store = fixture.store();
    let guard = store.lock().unwrap();
    let opened = fixture.open(&store, &guard);
    let entry = |id: &str, run_id: &str, request: Request| Entry {
        id: id.to_owned(),
        run_id: run_id.to_owned(),
        at: Utc::now(),
        by: "sena".to_owned(),
        request,
    };
    let abort = || Request::Abort {
        reason: "customer complaints".to_owned(),
    };
    // A person's requests arrive through another store: another process, another machine.
    let person = fixture.store();
    person
        .request(&entry("r1", &opened.run_id, abort()))
        .unwrap();
    person
        .request(&entry("r0", "20200101T000000000Z-0000", abort()))
        .unwrap();
    let mut inbox = store.inbox(&opened.run_id, HashSet::new());
    let taken = inbox.take(None, None).expect("the run's abort is taken");
    assert_eq!(taken.id, "r1");
    assert_eq!(taken.by, "sena");
    assert!(inbox.take(None, None).is_none(), "taken once");
    // A runner resuming with the journal's record of what was taken does not take it again.
    let resumed = store.inbox(&opened.run_id, HashSet::from(["r1".to_owned()]));
    assert!(resumed.pending().is_empty());
    // Another run's request is never this run's.
    assert_eq!(
        store
            .inbox("20200101T000000000Z-0000", HashSet::new())
            .pending()
            .len(),
        1
    );
}

/// `ion-plan runs` (the real binary) lists the plan's runs newest first, each with its outcome,
/// and who holds an unfinished one; `--plan` takes the plan's `name:` or nothing matches.
fn runs_lists_the_runs_newest_first_with_outcome_and_holder(kind: Kind) {
    let fixture = Fixture::new(kind);
    let store_args: Vec<String> = match &fixture.url {
        Some(url) => vec!["--state".into(), url.clone()],
        None => vec![
            "--state-dir".into(),
            fixture.dir.path().join(".ion-plan").display().to_string(),
        ],
    };
    for restart in [false, true] {
        let ran = common::ion_plan()
            .arg("run")
            .arg(&fixture.plan)
            .args(restart.then_some("--restart"))
            .args(fixture.url.iter().flat_map(|url| ["--state", url.as_str()]))
            .run();
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    // A third run, unfinished, its runner (this process) holding the plan.
    let store = fixture.store();
    let guard = store.lock().unwrap();
    let mut opened = fixture.open_as(&store, &guard, true);
    append(&mut opened.journal, "all").unwrap();
    let list = |plan: &str| {
        let listed = common::ion_plan()
            .args(["runs", "--format", "json", "--plan", plan])
            .args(&store_args)
            .run();
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        listed.json()["runs"].as_array().unwrap().clone()
    };
    let runs = list("conformance");
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["unfinished", "completed", "completed"],
        "{runs:?}"
    );
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(
        runs[0]["holder"]
            .as_str()
            .is_some_and(|h| h.contains(&format!("pid {}", std::process::id()))),
        "{runs:?}"
    );
    assert!(runs[1]["holder"].is_null(), "{runs:?}");
    assert!(runs.iter().all(|r| r["plan"] == "conformance"), "{runs:?}");
    assert!(list("nothing-of-that-name").is_empty());
    drop(guard);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod files {
            $(
                #[test]
                fn $case() {
                    super::$case(super::Kind::Files);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                #[ignore = "needs PostgreSQL: ION_PLAN_TEST_POSTGRES (.ci/postgres start)"]
                fn $case() {
                    super::$case(super::Kind::Postgres);
                }
            )*
        }
    };
}

conformance!(
    appended_events_read_back_in_order,
    a_damaged_journal_is_an_error_naming_the_record,
    one_runner_per_plan_and_the_holder_is_named,
    runners_racing_for_a_plan_one_wins,
    a_runner_that_lost_its_hold_writes_nothing,
    requests_are_taken_once_and_only_by_their_run,
    runs_lists_the_runs_newest_first_with_outcome_and_holder,
);
