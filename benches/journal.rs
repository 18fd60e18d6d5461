//! Journal benchmarks (prints figures; asserts nothing): appending one event with fsync, and
//! replaying (read + fold) a 100,000-event journal.
//!
//! `cargo bench --bench journal`

use std::time::Instant;

use chrono::Utc;
use ion_plan::event::{Event, FORMAT_VERSION, Record};
use ion_plan::journal::{Header, Journal, replay};
use ion_plan::probe::{Reading, Sample};

fn header() -> Header {
    Header {
        format: FORMAT_VERSION,
        run_id: "bench".into(),
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

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");

    // Appending with fsync, one event at a time.
    let mut journal = Journal::create(dir.path(), "append.jsonl", &header()).expect("journal");
    let mut times = Vec::with_capacity(2000);
    for i in 0..2000 {
        let started = Instant::now();
        journal.append(Utc::now(), sample(i)).expect("append");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "append + fsync, 2,000 events: median {:?}, p99 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );

    // Replaying 100,000 events.
    let path = dir.path().join("replay.jsonl");
    let mut text = serde_json::to_string(&header()).expect("header");
    text.push('\n');
    for seq in 1..=100_000u64 {
        let record = Record {
            seq,
            at: Utc::now(),
            event: sample(seq),
        };
        text.push_str(&serde_json::to_string(&record).expect("record"));
        text.push('\n');
    }
    std::fs::write(&path, &text).expect("write");
    let mut runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let replay = replay::read(&path).expect("replay");
        let state = replay.state();
        runs.push(started.elapsed());
        assert_eq!(state.last_seq, 100_000);
    }
    runs.sort();
    println!(
        "replay (read + parse + fold) of 100,000 events ({} MB): median {:?} of 5",
        text.len() / 1_000_000,
        runs[2]
    );
}
