//! When a stage checks: offsets within its bake, a bounded number of checks, a positive
//! interval.

use std::time::Duration;

use crate::plan::diagnostic::{Code, Diagnostic};
use crate::plan::model::{Checks, Stage};
use crate::plan::units::{PlanDuration, format_duration};

use super::Checker;

impl Checker<'_> {
    pub(super) fn stage_timing(&mut self, pointer: &str, stage: &Stage) {
        let defaults = self.plan.defaults.as_ref();
        let Some(checks) = stage.effective_checks(defaults) else {
            return;
        };
        let inherited = stage.checks.is_none();
        let bake = stage.bake.as_duration();
        for (j, at) in checks.at.iter().enumerate() {
            if at.as_duration() > bake {
                let (at_pointer, note) = if inherited {
                    (format!("{pointer}/bake"), " (from `defaults.checks`)")
                } else {
                    (format!("{pointer}/checks/at/{j}"), "")
                };
                self.push(
                    Diagnostic::error(
                        Code::OffsetBeyondBake,
                        at_pointer,
                        format!(
                            "check at {at}{note} is beyond stage `{}`'s bake of {}",
                            stage.name, stage.bake
                        ),
                    )
                    .with_help("checks run during the bake: use an offset no longer than `bake`"),
                );
            }
        }
        let count = check_count(bake, checks);
        if count > MAX_CHECKS {
            let every_pointer = match (inherited, checks.every.is_some()) {
                (true, true) => "/defaults/checks/every".to_owned(),
                (true, false) => "/defaults/checks/at".to_owned(),
                (false, true) => format!("{pointer}/checks/every"),
                (false, false) => format!("{pointer}/checks/at"),
            };
            // The shortest interval that keeps the bake under the limit, in whole seconds.
            let shortest = Duration::from_secs(bake.as_secs().div_ceil(MAX_CHECKS as u64).max(1));
            self.push(
                Diagnostic::error(
                    Code::TooManyChecks,
                    every_pointer,
                    format!(
                        "stage `{}` would run {} checks in its bake of {}; the limit is {} checks a stage, because every check is a sample in the journal and an entry in memory",
                        stage.name,
                        grouped(count),
                        format_duration(bake),
                        grouped(MAX_CHECKS)
                    ),
                )
                .with_help(format!(
                    "use a longer `every` (at least {} for this bake)",
                    format_duration(shortest)
                )),
            );
        }
        if let Some(every) = checks.every
            && every.as_duration().is_zero()
        {
            let every_pointer = if inherited {
                "/defaults/checks/every".to_owned()
            } else {
                format!("{pointer}/checks/every")
            };
            self.push(Diagnostic::error(
                Code::Range,
                every_pointer,
                "`every: 0s` would check without pause; use a positive interval",
            ));
        }
    }
}

/// The most checks one stage may run: a day checked every second is 86,400.
pub const MAX_CHECKS: usize = 100_000;

/// A count with thousands separators: `2,592,000,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// How many checks a stage runs in its bake: `at` offsets, `every` ticks, and the final check
/// at the bake's end when none is scheduled there.
pub fn check_count(bake: Duration, checks: &Checks) -> usize {
    let every = checks
        .every
        .map(PlanDuration::as_duration)
        .filter(|e| !e.is_zero());
    let on_grid = |offset: Duration| {
        every.is_some_and(|e| !offset.is_zero() && offset.as_millis().is_multiple_of(e.as_millis()))
    };
    let ticks = every.map_or(0, |e| bake.as_millis() / e.as_millis());
    let mut extra: Vec<Duration> = checks
        .at
        .iter()
        .map(|d| d.as_duration())
        .filter(|d| *d <= bake && !on_grid(*d))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    let final_scheduled = on_grid(bake) || extra.last() == Some(&bake);
    usize::try_from(ticks).unwrap_or(usize::MAX) + extra.len() + usize::from(!final_scheduled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::units::parse_duration;

    fn checks(every: Option<&str>, at: &[&str]) -> Checks {
        Checks {
            every: every.map(|e| PlanDuration(parse_duration(e).unwrap())),
            at: at
                .iter()
                .map(|a| PlanDuration(parse_duration(a).unwrap()))
                .collect(),
            probes: vec!["p".into()],
        }
    }

    #[test]
    fn a_30_day_bake_checked_every_millisecond_is_counted_not_listed() {
        let bake = Duration::from_hours(30 * 24);
        assert_eq!(check_count(bake, &checks(Some("1ms"), &[])), 2_592_000_000);
        assert_eq!(grouped(2_592_000_000), "2,592,000,000");
        assert_eq!(grouped(100_000), "100,000");
        assert_eq!(grouped(7), "7");
    }

    #[test]
    fn check_count_includes_the_final_check_once() {
        let bake = Duration::from_hours(1);
        assert_eq!(
            check_count(bake, &checks(None, &["5m", "15m", "45m", "60m"])),
            4
        );
        assert_eq!(check_count(bake, &checks(None, &["5m", "15m"])), 3);
        assert_eq!(check_count(bake, &checks(Some("5m"), &[])), 12);
        assert_eq!(check_count(bake, &checks(Some("7m"), &[])), 9);
        assert_eq!(check_count(bake, &checks(Some("5m"), &["10m", "12m"])), 13);
        assert_eq!(check_count(bake, &checks(None, &[])), 1);
    }
}
