//! Journal benchmarks (prints figures; asserts only that the data round-trips): appending one
//! event with fsync; replaying (read + fold) a 100,000-event journal; and the cost of pooling
//! (`docs/plan.md`, "Evidence"): journal bytes per check of `plans/phase4.yaml` with and
//! without the load probe's latency histograms, and a journal of every check of phase4's
//! stages — its size, its replay, and rebuilding the longest stage's pool from it.
//!
//! `cargo bench --bench journal`

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hdrhistogram::Histogram;
use ion_plan::engine::gates::{CompiledGate, Streaks, at_end};
use ion_plan::engine::pool::{Data, Pool};
use ion_plan::engine::timeline;
use ion_plan::event::{self, Event, FORMAT_VERSION, Mode, Record};
use ion_plan::journal::{Header, Journal, replay};
use ion_plan::plan::model::{Plan, Stage};
use ion_plan::plan::validate::{Checks, validate_file};
use ion_plan::probe::load::TargetStats;
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

    let phase4 = Phase4::load();
    bytes_per_check(&phase4);
    stage_journal(&phase4, dir.path());
}

/// The phase4 plan and its gates, compiled as a run compiles them.
struct Phase4 {
    plan: Plan,
    guard: CompiledGate,
    go: CompiledGate,
}

impl Phase4 {
    fn load() -> Phase4 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/phase4.yaml");
        let report = validate_file(&path, Checks { filesystem: false }).expect("read phase4");
        let plan = report.plan.expect("phase4 is valid");
        let compile = |name: &str| {
            CompiledGate::compile(name, &plan.gates[name], Some(&plan)).expect("compile gate")
        };
        let (guard, go) = (compile("guard"), compile("go"));
        Phase4 { plan, guard, go }
    }
}

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

impl Rng {
    /// One request's latency in µs: log-normal around 120 ms, 3% of requests in a slower tail
    /// around 450 ms.
    fn latency_micros(&mut self) -> u64 {
        let (median, sigma) = if self.uniform() < 0.03 {
            (450_000.0, 0.5)
        } else {
            (120_000.0, 0.25)
        };
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to the histogram's range"
        )]
        let micros = (median * (sigma * self.normal()).exp()).clamp(1.0, 3_600_000_000.0) as u64;
        micros
    }
}

/// Requests per target and check, as `plans/phase4.yaml` sets them.
const REQUESTS: u64 = 200;

/// The load probe's sample for one check, built as `LoadProbe::sample` builds it: the report's
/// readings of each target, and (with `histograms`) each target's latencies.
fn load_sample(rng: &mut Rng, histograms: bool) -> Sample {
    let stats: Vec<(String, TargetStats)> = ["canary", "legacy"]
        .into_iter()
        .map(|target| {
            // The load probe's bounds (src/probe/load.rs): 1 µs to an hour, 3 digits.
            let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
            let mut errors = 0;
            for _ in 0..REQUESTS {
                latency.record(rng.latency_micros()).unwrap();
                errors += u64::from(rng.uniform() < 0.001);
            }
            let status_codes = [(200, REQUESTS - errors), (503, errors)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
            let stats = TargetStats {
                requests: REQUESTS,
                errors,
                elapsed: Duration::from_millis(44_000 + rng.next() % 2_000),
                latency,
                status_codes,
                errors_by_kind: BTreeMap::new(),
            };
            (target.to_owned(), stats)
        })
        .collect();
    let mut sample = Sample::ok(
        "load",
        stats
            .iter()
            .flat_map(|(target, s)| s.report().readings(target).collect::<Vec<_>>())
            .collect(),
    );
    if histograms {
        sample.histograms = stats
            .iter()
            .map(|(target, s)| {
                (
                    target.clone(),
                    ion_plan::stats::encode_histogram(&s.latency),
                )
            })
            .collect();
    }
    sample
}

/// The Prometheus probe `canary`: error rate, memory, CPU.
fn canary_sample(rng: &mut Rng) -> Sample {
    let metrics = [
        ("error_rate", 0.002 * rng.uniform()),
        ("memory", 0.55 + 0.1 * rng.uniform()),
        ("cpu", 0.3 + 0.2 * rng.uniform()),
    ];
    Sample::ok(
        "canary",
        metrics
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Reading::Value(v)))
            .collect(),
    )
}

/// Numbers records as the journal does and keeps them in order.
struct Records {
    records: Vec<Record>,
}

impl Records {
    fn push(&mut self, at: DateTime<Utc>, event: Event) {
        let seq = self.records.len() as u64 + 1;
        self.records.push(Record { seq, at, event });
    }

    /// One check as the engine journals it: `check_started`, a `sample_taken` per probe, then
    /// the guard's `evaluated` events. Returns the check's samples by probe.
    fn check(
        &mut self,
        phase4: &Phase4,
        streaks: &mut Streaks,
        stage: &str,
        (number, offset, at): (u32, Duration, DateTime<Utc>),
        samples: [Sample; 2],
    ) -> HashMap<String, Sample> {
        self.push(
            at,
            Event::CheckStarted {
                stage: stage.to_owned(),
                number,
                offset: offset.as_secs_f64(),
                probes: vec!["canary".into(), "load".into()],
            },
        );
        let mut current = HashMap::new();
        for sample in samples {
            self.push(
                at,
                Event::SampleTaken {
                    stage: Some(stage.to_owned()),
                    check: number,
                    sample: sample.clone(),
                },
            );
            current.insert(sample.probe.clone(), sample);
        }
        let (evaluations, _) = streaks.every_check(&phase4.guard, &current, &Pool::default());
        for evaluation in evaluations {
            self.push(
                at,
                Event::Evaluated {
                    stage: Some(stage.to_owned()),
                    check: number,
                    evaluation,
                },
            );
        }
        current
    }
}

/// Journal lines as `Journal::write_record` writes them (JSON and a newline), and a check that
/// they read back as written.
fn journal_bytes(records: &[Record]) -> usize {
    records
        .iter()
        .map(|record| {
            let line = serde_json::to_vec(record).unwrap();
            let back: Record = serde_json::from_slice(&line).unwrap();
            assert_eq!(&back, record, "a record round-trips");
            line.len() + 1
        })
        .sum()
}

/// Journal bytes of one phase4 check, with the load probe's histograms and without.
fn bytes_per_check(phase4: &Phase4) {
    const CHECKS: u32 = 100;
    let mut rng = Rng(12);
    let at = Utc::now();
    let (mut with, mut without) = (0, 0);
    let (mut load_with, mut load_without, mut histogram_text) = (0, 0, 0);
    for number in 1..=CHECKS {
        let canary = canary_sample(&mut rng);
        let load = load_sample(&mut rng, true);
        for text in load.histograms.values() {
            let back = ion_plan::stats::decode_histogram(text).unwrap();
            assert_eq!(back.len(), REQUESTS, "a histogram round-trips");
            histogram_text += text.len();
        }
        let mut bare = load.clone();
        bare.histograms.clear();
        let offset = Duration::from_secs(u64::from(number) * 300);
        for (total, load_total, load) in [
            (&mut with, &mut load_with, load),
            (&mut without, &mut load_without, bare),
        ] {
            let mut records = Records {
                records: Vec::new(),
            };
            records.check(
                phase4,
                &mut Streaks::default(),
                "canary-25",
                (number, offset, at),
                [canary.clone(), load],
            );
            assert_eq!(
                records.records.len(),
                6,
                "check_started, 2 samples, 3 evaluations"
            );
            *total += journal_bytes(&records.records);
            *load_total += journal_bytes(&records.records[2..3]);
        }
    }
    let n = CHECKS as usize;
    println!(
        "phase4 check (check_started, sample_taken canary + load, 3 evaluated), mean of {CHECKS}: \
         {} bytes with histograms, {} without (+{}%); load sample_taken line {} vs {} bytes; \
         one target's histogram (200 latencies) {} bytes of base64",
        with / n,
        without / n,
        (with - without) * 100 / without,
        load_with / n,
        load_without / n,
        histogram_text / (2 * n),
    );
}

/// A journal of every check of phase4's stages (their bakes back to back: the days spent
/// waiting for the schedule's window or a person add no checks), then its replay and the
/// rebuild of the longest stage's pool from it.
fn stage_journal(phase4: &Phase4, dir: &Path) {
    let journal = Phase4Journal::write(phase4, &dir.join("phase4.jsonl"));
    let replay = replay_journal(&journal);
    rebuild_pool(phase4, &journal, &replay);
}

/// The phase4 journal as written, and what the run knew while writing it.
struct Phase4Journal {
    path: std::path::PathBuf,
    records: Vec<Record>,
    bytes: usize,
    /// "canary-5 4, canary-10 288, …"
    checks_by_stage: Vec<String>,
    checks: u32,
    /// The bakes' length, in hours.
    hours: i64,
    /// The longest stage, its checks, and its pool as the run built it check by check.
    longest: (String, u32, Pool),
}

impl Phase4Journal {
    fn write(phase4: &Phase4, path: &Path) -> Phase4Journal {
        let mut rng = Rng(4);
        let start: DateTime<Utc> = "2025-10-22T14:00:00Z".parse().unwrap();
        let mut records = Records {
            records: Vec::new(),
        };
        records.push(
            start,
            Event::RunStarted {
                run_id: "bench".into(),
                plan: "plans/phase4.yaml".into(),
                digest: "sha256:0".into(),
                mode: Mode::Live,
                stages: phase4.plan.stages.len(),
            },
        );
        let mut number = 0u32;
        let mut stage_start = start;
        let mut checks_by_stage = Vec::new();
        let mut longest: Option<(String, u32, Pool)> = None;
        for (index, stage) in phase4.plan.stages.iter().enumerate() {
            records.push(
                stage_start,
                Event::StageStarted {
                    stage: stage.name.clone(),
                    index,
                    traffic: stage.traffic,
                },
            );
            let first = number;
            let pool = records.stage(phase4, stage, stage_start, &mut number, &mut rng);
            let checks = number - first;
            checks_by_stage.push(format!("{} {checks}", stage.name));
            if longest.as_ref().is_none_or(|(_, n, _)| checks > *n) {
                longest = Some((stage.name.clone(), checks, pool));
            }
            stage_start += TimeDelta::from_std(stage.bake.as_duration()).unwrap();
        }
        records.push(
            stage_start,
            Event::RunEnded {
                outcome: event::Outcome::Completed,
                reason: None,
            },
        );
        let mut text = serde_json::to_vec(&header()).unwrap();
        text.push(b'\n');
        for record in &records.records {
            serde_json::to_writer(&mut text, record).unwrap();
            text.push(b'\n');
        }
        std::fs::write(path, &text).expect("write");
        Phase4Journal {
            path: path.to_owned(),
            records: records.records,
            bytes: text.len(),
            checks_by_stage,
            checks: number,
            hours: (stage_start - start).num_hours(),
            longest: longest.unwrap(),
        }
    }
}

impl Records {
    /// One stage's checks as its timeline has them, then its end gate judged on the pool and
    /// the stage's end. Returns the stage's pool.
    fn stage(
        &mut self,
        phase4: &Phase4,
        stage: &Stage,
        stage_start: DateTime<Utc>,
        number: &mut u32,
        rng: &mut Rng,
    ) -> Pool {
        let (mut streaks, mut pool, mut newest) =
            (Streaks::default(), Pool::default(), HashMap::new());
        let mut offset = None;
        while let Some(due) = timeline::next_check(stage, phase4.plan.defaults.as_ref(), offset) {
            offset = Some(due.as_secs_f64());
            *number += 1;
            let jitter = TimeDelta::nanoseconds(i64::try_from(rng.next() % 900_000_000).unwrap());
            let at = stage_start + TimeDelta::from_std(due).unwrap() + jitter;
            let samples = [canary_sample(rng), load_sample(rng, true)];
            newest = self.check(
                phase4,
                &mut streaks,
                &stage.name,
                (*number, due, at),
                samples,
            );
            pool.add(phase4.go.conditions.iter(), &newest);
        }
        let end = stage_start + TimeDelta::from_std(stage.bake.as_duration()).unwrap();
        let (evaluations, _) = at_end(&phase4.go, &newest, Data::Pool(&pool));
        for evaluation in evaluations {
            self.push(
                end,
                Event::Evaluated {
                    stage: Some(stage.name.clone()),
                    check: *number,
                    evaluation,
                },
            );
        }
        self.push(
            end,
            Event::BakeEnded {
                stage: stage.name.clone(),
                early: false,
            },
        );
        self.push(
            end,
            Event::StageCompleted {
                stage: stage.name.clone(),
            },
        );
        pool
    }
}

/// Replays the journal (read + parse + fold) three times; returns the last replay.
fn replay_journal(journal: &Phase4Journal) -> replay::Replay {
    let last_seq = journal.records.len() as u64;
    let mut times = Vec::new();
    let mut replayed = None;
    for _ in 0..3 {
        let started = Instant::now();
        let replay = replay::read(&journal.path).expect("replay");
        let state = replay.state();
        times.push(started.elapsed());
        assert_eq!(state.last_seq, last_seq, "every record replays");
        replayed = Some(replay);
    }
    times.sort();
    let replay = replayed.unwrap();
    assert_eq!(
        replay.records, journal.records,
        "the journal reads back as written"
    );
    #[expect(clippy::cast_precision_loss, reason = "a size in bytes")]
    let megabytes = journal.bytes as f64 / 1e6;
    println!(
        "phase4 journal, every stage's checks ({}; {} checks, {} d {} h of bakes): \
         {megabytes:.1} MB, {last_seq} records; replay (read + parse + fold) median {:?} of 3",
        journal.checks_by_stage.join(", "),
        journal.checks,
        journal.hours / 24,
        journal.hours % 24,
        times[1]
    );
    replay
}

/// Resume: the longest stage's samples from the replayed journal, check by check, pooled
/// again by `Pool::add`; the rebuilt pool must equal the one the run built.
fn rebuild_pool(phase4: &Phase4, journal: &Phase4Journal, replay: &replay::Replay) {
    let (name, checks, pooled) = &journal.longest;
    let mut samples: BTreeMap<u32, HashMap<String, Sample>> = BTreeMap::new();
    for record in &replay.records {
        if let Event::SampleTaken {
            stage: Some(stage),
            check,
            sample,
        } = &record.event
            && stage == name
        {
            samples
                .entry(*check)
                .or_default()
                .insert(sample.probe.clone(), sample.clone());
        }
    }
    let mut times = Vec::new();
    let mut rebuilt = Pool::default();
    for _ in 0..3 {
        let started = Instant::now();
        rebuilt = Pool::default();
        for check in samples.values() {
            rebuilt.add(phase4.go.conditions.iter(), check);
        }
        times.push(started.elapsed());
    }
    times.sort();
    for condition in &phase4.go.conditions {
        let metric = &condition.expr.metric;
        let (was, now) = (Data::Pool(pooled), Data::Pool(&rebuilt));
        if metric.name.ends_with(".p95") {
            assert_eq!(
                was.latencies(metric),
                now.latencies(metric),
                "latencies re-pool"
            );
            let (histogram, n) = now.latencies(metric).unwrap();
            assert_eq!(
                (n, histogram.len()),
                (*checks, u64::from(*checks) * REQUESTS)
            );
        } else if condition.interval.is_some() {
            assert_eq!(
                was.ratio(metric, None),
                now.ratio(metric, None),
                "ratios re-pool"
            );
        }
    }
    println!(
        "pool rebuild of `{name}` ({checks} checks, {} latencies a target) by Pool::add: \
         median {:?} of 3",
        u64::from(*checks) * REQUESTS,
        times[1]
    );
}
