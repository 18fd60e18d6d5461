//! `schedule.window`: a standard 5-field crontab read by croner 4, and the instants at which it is
//! open in a time zone (`docs/plan.md`, "Deploy windows").
//!
//! A window is open during every local wall-clock minute that matches it — in both occurrences
//! of a repeated hour when clocks go back, and at any second inside the minute. A matching minute
//! that a spring-forward gap skips opens the window at the first instant after the gap. croner's
//! own search runs a fixed-time pattern once in a repeated hour (as cron runs a job once), so the
//! search here is ours: day by day in local dates, minute by minute inside matching days.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use croner::Cron;

/// How far ahead a window is searched: 8 years hold a 29 February even across 2100, which is
/// not a leap year, so a window that does not open in this span never opens.
pub const SEARCH_DAYS: u64 = 8 * 366 + 2;

const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Why a window is not a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowError {
    /// Not 5 fields (a seconds or years field, or a nickname such as `@daily`).
    Fields(usize),
    /// A croner extension: `L`, `W`, `#`, `?` or the `+` prefix.
    Extension { text: String, field: &'static str },
    /// croner rejects it (a value out of range, a bad range or step).
    Invalid(String),
    /// No minute in 8 years matches it (`0 0 30 2 *`).
    NeverOpens,
}

/// A parsed window.
#[derive(Debug, Clone)]
pub struct Window {
    cron: Cron,
    hours: Vec<u32>,
    minutes: Vec<u32>,
}

impl Window {
    /// Parses a window: exactly 5 fields of numbers, names, `*`, ranges, lists and steps.
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(WindowError::Fields(fields.len()));
        }
        for (i, field) in fields.iter().enumerate() {
            let mut upper = field.to_uppercase();
            let names: &[&str] = match i {
                3 => &MONTHS,
                4 => &WEEKDAYS,
                _ => &[],
            };
            for name in names {
                upper = upper.replace(name, "0");
            }
            if let Some(bad) = upper
                .chars()
                .find(|c| !c.is_ascii_digit() && !"*,-/".contains(*c))
            {
                let text = match bad {
                    'L' => "`L` (last)".to_owned(),
                    'W' => "`W` (nearest weekday)".to_owned(),
                    '#' => "`#` (nth weekday)".to_owned(),
                    '?' => "`?`".to_owned(),
                    '+' => "`+` (day-of-month and day-of-week)".to_owned(),
                    other => format!("`{other}`"),
                };
                return Err(WindowError::Extension {
                    text,
                    field: FIELDS[i],
                });
            }
        }
        let cron = Cron::from_str(text).map_err(|error| {
            WindowError::Invalid(
                error
                    .to_string()
                    .to_lowercase()
                    .trim_end_matches('.')
                    .to_owned(),
            )
        })?;
        let pattern = &cron.pattern;
        let hours = (0..24)
            .filter(|h| pattern.hour_match(*h).unwrap_or(false))
            .collect();
        let minutes = (0..60)
            .filter(|m| pattern.minute_match(*m).unwrap_or(false))
            .collect();
        let window = Window {
            cron,
            hours,
            minutes,
        };
        if window.next_open(Tz::UTC, reference()).is_none() {
            return Err(WindowError::NeverOpens);
        }
        Ok(window)
    }

    /// Whether a local date matches the day-of-month, month and day-of-week fields. croner
    /// reads the two day fields as crontab does: when both are restricted (neither is exactly
    /// `*`), a day matches if either matches.
    pub fn day_matches(&self, date: NaiveDate) -> bool {
        let pattern = &self.cron.pattern;
        let weekday = croner::Weekday::from_days_from_sunday(date.weekday().num_days_from_sunday());
        pattern.month_match(date.month()).unwrap_or(false)
            && pattern
                .day_match(date.year(), date.month(), date.day(), weekday)
                .unwrap_or(false)
    }

    /// Whether a local wall-clock minute matches the window.
    pub fn minute_matches(&self, local: NaiveDateTime) -> bool {
        use chrono::Timelike as _;
        self.day_matches(local.date())
            && self.hours.contains(&local.hour())
            && self.minutes.contains(&local.minute())
    }

    /// The first instant at or after `now` at which the window is open in `tz`, or `None` if it
    /// does not open within `SEARCH_DAYS`.
    pub fn next_open(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&tz).date_naive();
        // A day before today too: a repeated hour can hold yesterday's wall clock after midnight.
        let first = today.checked_sub_days(Days::new(1))?;
        let mut best: Option<DateTime<Utc>> = None;
        let mut found_on = None;
        for (i, date) in first
            .iter_days()
            .take(usize::try_from(SEARCH_DAYS).ok()? + 2)
            .enumerate()
        {
            // Wall-clock days can overlap in absolute time, so one more day may hold an earlier
            // instant than the first day that matched.
            if found_on.is_some_and(|day| i > day + 1) {
                break;
            }
            if !self.day_matches(date) {
                continue;
            }
            for &hour in &self.hours {
                for &minute in &self.minutes {
                    let local = date.and_hms_opt(hour, minute, 0)?;
                    for start in minute_starts(tz, local) {
                        // The minute [start, start + 1 min) is open; `now` may be inside it.
                        if start + TimeDelta::minutes(1) > now {
                            let at = start.max(now);
                            if best.is_none_or(|b| at < b) {
                                best = Some(at);
                                found_on.get_or_insert(i);
                            }
                        }
                    }
                }
            }
        }
        best
    }
}

/// Where the search for whether a window opens at all starts; any instant would do.
fn reference() -> DateTime<Utc> {
    DateTime::from_timestamp(946_684_800, 0).unwrap_or_default() // 2000-01-01T00:00:00Z
}

/// The instants at which a local wall-clock minute starts: one, two in a repeated hour, or, for
/// a minute a gap skips, the first instant after the gap.
fn minute_starts(tz: Tz, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => vec![t.to_utc()],
        LocalResult::Ambiguous(a, b) => vec![a.to_utc(), b.to_utc()],
        LocalResult::None => {
            let mut later = local;
            for _ in 0..48 * 60 {
                later += TimeDelta::minutes(1);
                if let Some(t) = tz.from_local_datetime(&later).earliest() {
                    return vec![t.to_utc()];
                }
            }
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn croner_extensions_and_other_field_counts_are_refused() {
        for (text, what) in [
            ("0 0 L * *", "`L` (last)"),
            ("0 0 15W * *", "`W` (nearest weekday)"),
            ("0 0 * * 5#3", "`#` (nth weekday)"),
            ("0 0 ? * Mon", "`?`"),
            ("0 0 1 * +Mon", "`+` (day-of-month and day-of-week)"),
            ("0 0 * * 5L", "`L` (last)"),
        ] {
            match Window::parse(text) {
                Err(WindowError::Extension { text: found, .. }) => {
                    assert_eq!(found, what, "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            Window::parse("0 0 0 * * *").unwrap_err(),
            WindowError::Fields(6)
        );
        assert_eq!(
            Window::parse("0 0 0 * * * 2030").unwrap_err(),
            WindowError::Fields(7)
        );
        assert_eq!(Window::parse("@daily").unwrap_err(), WindowError::Fields(1));
        // Names are standard, including those with the letters of extensions.
        assert!(Window::parse("* 9-17 * Jul-Dec Wed,Sat").is_ok());
    }

    #[test]
    fn a_window_that_never_opens_is_refused_and_29_february_is_not() {
        assert_eq!(
            Window::parse("0 0 30 2 *").unwrap_err(),
            WindowError::NeverOpens
        );
        assert_eq!(
            Window::parse("0 0 31 4 *").unwrap_err(),
            WindowError::NeverOpens
        );
        assert_eq!(
            Window::parse("0 0 31 2,4,6 *").unwrap_err(),
            WindowError::NeverOpens
        );
        assert!(Window::parse("0 0 29 2 *").is_ok());
        // With a weekday as well, crontab's rule makes any Monday match.
        assert!(Window::parse("0 0 30 2 Mon").is_ok());
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn both_day_fields_restricted_means_either_matches() {
        // The 13th of any month, or any Friday.
        let window = Window::parse("0 12 13 * Fri").unwrap();
        assert!(window.day_matches(date("2025-10-13"))); // a Monday, the 13th
        assert!(window.day_matches(date("2025-10-17"))); // a Friday, the 17th
        assert!(!window.day_matches(date("2025-10-14")));
        // With one field `*`, the other alone decides.
        let fridays = Window::parse("0 12 * * Fri").unwrap();
        assert!(!fridays.day_matches(date("2025-10-13")));
        assert!(fridays.day_matches(date("2025-10-17")));
    }

    #[test]
    fn a_step_in_the_day_of_month_restricts_it_so_either_rule_applies() {
        // `*/2` is days 1, 3, 5 …; it is not `*`, so Mondays match too.
        let window = Window::parse("0 12 */2 * Mon").unwrap();
        assert!(window.day_matches(date("2025-10-01"))); // Wednesday, odd day
        assert!(window.day_matches(date("2025-10-06"))); // Monday, even day
        assert!(!window.day_matches(date("2025-10-02"))); // Thursday, even day
        let hours = Window::parse("0 */5 * * *").unwrap();
        assert_eq!(hours.hours, [0, 5, 10, 15, 20]);
        let days = Window::parse("0 0 3-10/3 * *").unwrap();
        assert!(days.day_matches(date("2025-10-03")));
        assert!(days.day_matches(date("2025-10-09")));
        assert!(!days.day_matches(date("2025-10-10")));
    }
}
