//! A stage's timeline: when its checks fall due, as offsets from the stage's start. Offsets are
//! computed one at a time, never listed up front: a 30-day bake checked every second costs no
//! memory. The engine, the live view and `status` all ask here, and so does the cadence of checks
//! while a stage waits for a person.

use std::time::Duration;

use crate::plan::model::{Stage, StageDefaults};
use crate::plan::units::PlanDuration;

/// Two offsets closer than this are the same check: a recorded offset (seconds, a float) is
/// never run twice, and a 1 ms cadence still runs every tick.
const SAME: f64 = 1e-6;

/// The first check of `stage` after `after` seconds since its start (the first check of all
/// when `after` is `None`): an `at` offset or an `every` tick, within the bake.
pub fn next_check(
    stage: &Stage,
    defaults: Option<&StageDefaults>,
    after: Option<f64>,
) -> Option<Duration> {
    let checks = stage.effective_checks(defaults)?;
    let bake = stage.bake.as_duration();
    let floor = after.map(|a| a + SAME);
    let later = |d: &Duration| floor.is_none_or(|f| d.as_secs_f64() > f);
    let from_at = checks
        .at
        .iter()
        .map(|d| d.as_duration())
        .filter(|d| *d <= bake && later(d))
        .min();
    let from_every = checks
        .every
        .map(PlanDuration::as_duration)
        .filter(|e| !e.is_zero())
        .and_then(|every| {
            let step = every.as_nanos();
            let k = match floor {
                None => 1,
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "offsets are non-negative and far below u128::MAX nanoseconds"
                )]
                Some(f) => ((f.max(0.0) * 1e9) as u128) / step + 1,
            };
            let mut tick = Duration::from_nanos(u64::try_from(k.checked_mul(step)?).ok()?);
            // The float floor may land one tick short.
            if !later(&tick) {
                tick = tick.checked_add(every)?;
            }
            (tick <= bake).then_some(tick)
        });
    match (from_at, from_every) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a check falls due exactly when the bake ends (else the `at: end` gates run one).
pub fn check_at_bake_end(stage: &Stage, defaults: Option<&StageDefaults>) -> bool {
    let Some(checks) = stage.effective_checks(defaults) else {
        return false;
    };
    let bake = stage.bake.as_duration();
    checks.at.iter().any(|d| d.as_duration() == bake)
        || checks
            .every
            .map(PlanDuration::as_duration)
            .filter(|e| !e.is_zero())
            .is_some_and(|e| bake >= e && bake.as_nanos().is_multiple_of(e.as_nanos()))
}

/// The checks that fell due after `after` and no later than `until` (seconds since the stage
/// started): how many, the first and the last. Counted one by one (validation bounds a stage's
/// checks), never listed.
pub fn due_between(
    stage: &Stage,
    defaults: Option<&StageDefaults>,
    after: Option<f64>,
    until: Duration,
) -> Option<(u64, Duration, Duration)> {
    let first = next_check(stage, defaults, after).filter(|o| *o <= until)?;
    let mut count = 1;
    let mut last = first;
    while let Some(next) = next_check(stage, defaults, Some(last.as_secs_f64())) {
        if next > until {
            break;
        }
        count += 1;
        last = next;
    }
    Some((count, first, last))
}

/// The default cadence of checks while a stage waits for a person, when it has neither `every`
/// nor two `at` offsets to take a gap from.
const FALLBACK_CADENCE: Duration = Duration::from_mins(5);

/// How often checks run while a stage waits for a person (approval or pause): `every`, else the
/// smallest gap between `at` offsets, else five minutes; none when the stage has no checks.
pub fn cadence(stage: &Stage, defaults: Option<&StageDefaults>) -> Option<Duration> {
    let checks = stage.effective_checks(defaults)?;
    if let Some(every) = checks
        .every
        .map(PlanDuration::as_duration)
        .filter(|e| !e.is_zero())
    {
        return Some(every);
    }
    let mut offsets: Vec<Duration> = std::iter::once(Duration::ZERO)
        .chain(checks.at.iter().map(|d| d.as_duration()))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    Some(
        offsets
            .windows(2)
            .filter_map(|w| w[1].checked_sub(w[0]))
            .filter(|gap| !gap.is_zero())
            .min()
            .unwrap_or(FALLBACK_CADENCE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(yaml: &str) -> Stage {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn all(stage: &Stage) -> Vec<f64> {
        let mut out = Vec::new();
        let mut after = None;
        while let Some(next) = next_check(stage, None, after) {
            out.push(next.as_secs_f64());
            after = Some(next.as_secs_f64());
        }
        out
    }

    #[test]
    fn at_offsets_and_every_ticks_merge_in_order_each_once() {
        let s = stage(
            "{name: s, traffic: 5, bake: 60m, checks: {at: [5m, 15m, 45m, 60m], every: 20m, probes: [p]}}",
        );
        assert_eq!(all(&s), [300.0, 900.0, 1200.0, 2400.0, 2700.0, 3600.0]);
        assert!(check_at_bake_end(&s, None));
        // After an unscheduled check (a resume at 7 min), the next scheduled one.
        assert_eq!(next_check(&s, None, Some(420.0)).unwrap().as_secs(), 900);
        let s = stage("{name: s, traffic: 5, bake: 10m, checks: {every: 3m, probes: [p]}}");
        assert_eq!(all(&s), [180.0, 360.0, 540.0]);
        assert!(!check_at_bake_end(&s, None));
    }

    #[test]
    fn a_long_bake_checked_often_is_counted_not_listed() {
        let s = stage("{name: s, traffic: 5, bake: 30d, checks: {every: 1ms, probes: [p]}}");
        let (count, first, last) =
            due_between(&s, None, Some(0.001), Duration::from_millis(5500)).unwrap();
        assert_eq!(count, 5499, "2 ms … 5.5 s: the 1 ms check was done");
        assert_eq!(first, Duration::from_millis(2));
        assert_eq!(last, Duration::from_millis(5500));
        assert!(next_check(&s, None, Some(30.0 * 86_400.0)).is_none());
    }
}
