//! When a stage may start: not before `schedule.not_before`, and inside the crontab `window` in
//! its time zone (`plan::window`: open in every matching local minute, both occurrences of a
//! repeated hour, and after a gap).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::plan::model::Schedule;
use crate::plan::window::{Window, WindowError};

/// A plan's schedule, parsed.
#[derive(Debug, Clone)]
pub struct StartRule {
    not_before: Option<DateTime<Utc>>,
    window: Option<(Window, Tz, String)>,
}

impl StartRule {
    /// Parses a validated schedule; errors only if validation was skipped (a window that never
    /// opens is an error here too, so a run never starts outside its window by mistake).
    pub fn new(schedule: Option<&Schedule>) -> Result<StartRule, String> {
        let Some(schedule) = schedule else {
            return Ok(StartRule {
                not_before: None,
                window: None,
            });
        };
        let not_before = schedule
            .not_before
            .as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.to_utc())
                    .map_err(|e| format!("schedule.not_before `{t}`: {e}"))
            })
            .transpose()?;
        let tz: Tz = schedule
            .timezone
            .as_deref()
            .unwrap_or("UTC")
            .parse()
            .map_err(|e| format!("schedule.timezone: {e}"))?;
        let window = schedule
            .window
            .as_deref()
            .map(|w| {
                Window::parse(w)
                    .map(|window| (window, tz, w.to_owned()))
                    .map_err(|e| format!("schedule.window `{w}`: {}", describe(&e)))
            })
            .transpose()?;
        Ok(StartRule { not_before, window })
    }

    /// The first instant at or after `now` at which a stage may start, and why it waits if it
    /// does; an error if the window does not open within 8 years (which `new` rules out).
    pub fn try_next_start(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Option<String>), String> {
        let mut at = now;
        let mut why = None;
        if let Some(not_before) = self.not_before
            && not_before > at
        {
            at = not_before;
            why = Some(format!(
                "not before {}",
                not_before.format("%Y-%m-%d %H:%M:%SZ")
            ));
        }
        if let Some((window, tz, text)) = &self.window {
            let Some(open) = window.next_open(*tz, at) else {
                return Err(format!(
                    "window `{text}` ({tz}) does not open within 8 years"
                ));
            };
            if open > at {
                at = open;
                why = Some(format!("window `{text}` ({tz})"));
            }
        }
        Ok((at, why))
    }

    /// `try_next_start` for callers that wait: a window that does not open (only possible if
    /// validation was skipped) waits 8 years, saying why, rather than starting outside it.
    pub fn next_start(&self, now: DateTime<Utc>) -> (DateTime<Utc>, Option<String>) {
        self.try_next_start(now).unwrap_or_else(|reason| {
            let days = chrono::Days::new(crate::plan::window::SEARCH_DAYS);
            (now.checked_add_days(days).unwrap_or(now), Some(reason))
        })
    }
}

/// A window error in words, for engine errors (validation words its own diagnostics).
fn describe(error: &WindowError) -> String {
    match error {
        WindowError::Fields(n) => format!("has {n} fields; a crontab window has 5"),
        WindowError::Extension { text, field } => {
            format!("{text} in the {field} field is not standard crontab")
        }
        WindowError::Invalid(message) => message.clone(),
        WindowError::NeverOpens => "never opens".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn rule(not_before: Option<&str>, window: Option<&str>, tz: Option<&str>) -> StartRule {
        StartRule::new(Some(&Schedule {
            not_before: not_before.map(str::to_owned),
            window: window.map(str::to_owned),
            timezone: tz.map(str::to_owned),
        }))
        .unwrap()
    }

    #[test]
    fn inside_the_window_starts_now() {
        let r = rule(None, Some("* 13-17 * * Mon-Thu"), None);
        let now = utc("2025-10-22T14:03:27Z"); // a Wednesday
        assert_eq!(r.next_start(now), (now, None));
    }

    #[test]
    fn a_friday_evening_in_seoul_waits_for_monday_13_00_kst() {
        let r = rule(None, Some("* 13-17 * * Mon-Thu"), Some("Asia/Seoul"));
        // Friday 2025-10-24 18:00 KST = 09:00 UTC.
        let (at, why) = r.next_start(utc("2025-10-24T09:00:00Z"));
        // Monday 2025-10-27 13:00 KST = 04:00 UTC.
        assert_eq!(at, utc("2025-10-27T04:00:00Z"));
        assert!(why.unwrap().contains("Asia/Seoul"));
    }

    #[test]
    fn not_before_comes_first_then_the_window() {
        let r = rule(Some("2025-10-22T14:00:00Z"), None, None);
        assert_eq!(
            r.next_start(utc("2025-10-22T13:00:00Z")).0,
            utc("2025-10-22T14:00:00Z")
        );
        assert_eq!(
            r.next_start(utc("2025-10-23T00:00:00Z")).0,
            utc("2025-10-23T00:00:00Z")
        );
        // not_before lands on a Sunday: the window moves it to Monday 13:00 UTC.
        let r = rule(Some("2025-10-26T14:00:00Z"), Some("* 13-17 * * 1-4"), None);
        assert_eq!(
            r.next_start(utc("2025-10-20T00:00:00Z")).0,
            utc("2025-10-27T13:00:00Z")
        );
    }

    #[test]
    fn weekday_seven_is_sunday_as_in_crontab() {
        let r = rule(None, Some("0 12 * * 7"), None);
        // From Friday, the next 12:00 on a Sunday.
        assert_eq!(
            r.next_start(utc("2025-10-24T09:00:00Z")).0,
            utc("2025-10-26T12:00:00Z")
        );
    }

    #[test]
    fn a_start_inside_the_second_occurrence_of_a_repeated_minute_starts_at_once() {
        // Berlin goes back from 03:00 CEST to 02:00 CET at 01:00Z: 02:30:20 CET is 01:30:20Z.
        let r = rule(
            Some("2025-10-26T01:30:20Z"),
            Some("30 2 * * *"),
            Some("Europe/Berlin"),
        );
        let now = utc("2025-10-26T01:00:00Z");
        let (at, _) = r.next_start(now);
        assert_eq!(at, utc("2025-10-26T01:30:20Z"));
        // Any second inside the minute, in either occurrence.
        let r = rule(None, Some("30 2 * * *"), Some("Europe/Berlin"));
        for now in [
            "2025-10-26T00:30:59Z",
            "2025-10-26T01:30:20Z",
            "2025-10-26T01:30:00Z",
        ] {
            assert_eq!(r.next_start(utc(now)), (utc(now), None), "{now}");
        }
    }

    #[test]
    fn a_one_minute_window_opens_in_both_occurrences_of_a_repeated_hour() {
        // New York goes back from 02:00 EDT to 01:00 EST at 06:00Z: 01:30 is 05:30Z and 06:30Z.
        let r = rule(None, Some("30 1 * * *"), Some("America/New_York"));
        assert_eq!(
            r.next_start(utc("2025-11-02T05:00:00Z")).0,
            utc("2025-11-02T05:30:00Z")
        );
        assert_eq!(
            r.next_start(utc("2025-11-02T06:00:00Z")).0,
            utc("2025-11-02T06:30:00Z")
        );
        assert_eq!(
            r.next_start(utc("2025-11-02T06:31:00Z")).0,
            utc("2025-11-03T06:30:00Z")
        );
    }

    #[test]
    fn a_minute_skipped_by_spring_forward_opens_at_the_end_of_the_gap() {
        // Berlin jumps from 02:00 CET to 03:00 CEST at 01:00Z: 02:30 never happens that day.
        let r = rule(None, Some("30 2 * * *"), Some("Europe/Berlin"));
        assert_eq!(
            r.next_start(utc("2025-03-30T00:00:00Z")).0,
            utc("2025-03-30T01:00:00Z")
        );
        // Lord Howe moves its clocks by 30 minutes: 02:00 → 02:30 at 15:30Z.
        let r = rule(None, Some("15 2 * * *"), Some("Australia/Lord_Howe"));
        assert_eq!(
            r.next_start(utc("2025-10-04T15:00:00Z")).0,
            utc("2025-10-04T15:30:00Z")
        );
    }

    #[test]
    fn a_window_that_never_opens_is_refused_not_ignored() {
        for window in ["0 0 30 2 *", "0 0 31 4 *"] {
            let error = StartRule::new(Some(&Schedule {
                not_before: None,
                window: Some(window.to_owned()),
                timezone: None,
            }))
            .unwrap_err();
            assert!(error.contains("never opens"), "{error}");
        }
        // 29 February waits for the next leap year.
        let r = rule(None, Some("0 0 29 2 *"), None);
        assert_eq!(
            r.next_start(utc("2025-03-01T00:00:00Z")).0,
            utc("2028-02-29T00:00:00Z")
        );
    }

    /// The oracle: croner's own matcher on the local wall-clock minute, and a scan of `now` and
    /// then every UTC minute boundary. A boundary right after a gap is open when a minute the
    /// gap skipped matches.
    fn brute_force(cron: &croner::Cron, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::{DurationRound as _, TimeDelta};
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
        let open = |t: DateTime<Utc>| {
            if cron.is_time_matching(&local(t)).unwrap() {
                return true;
            }
            // The local minutes between the previous boundary's and this one's were skipped.
            let mut skipped = local(t - TimeDelta::minutes(1)) + TimeDelta::minutes(1);
            while skipped < local(t) {
                if cron.is_time_matching(&skipped).unwrap() {
                    return true;
                }
                skipped += TimeDelta::minutes(1);
            }
            false
        };
        let floor = now.duration_trunc(TimeDelta::minutes(1)).unwrap();
        if open(floor) {
            return now;
        }
        let mut t = floor + TimeDelta::minutes(1);
        for _ in 0..9 * 24 * 60 {
            if open(t) {
                return t;
            }
            t += TimeDelta::minutes(1);
        }
        panic!("no opening within 9 days of {now}");
    }

    #[test]
    fn next_start_is_the_first_instant_whose_local_minute_matches_around_dst() {
        let windows = [
            "30 2 * * *",
            "30 1 * * *",
            "* 2 * * *",
            "15 2 * * *",
            "0,45 1-3 * * *",
            "*/20 0-3 * * Sun,Sat",
            "59 23 * * *",
            "* 13-17 * * Mon-Thu",
        ];
        // Each zone's 2025 transitions (Seoul and UTC have none: any instants do).
        let zones = [
            (
                "Europe/Berlin",
                ["2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"],
            ),
            (
                "America/New_York",
                ["2025-03-09T07:00:00Z", "2025-11-02T06:00:00Z"],
            ),
            (
                "Australia/Lord_Howe",
                ["2025-04-05T15:00:00Z", "2025-10-04T15:30:00Z"],
            ),
            (
                "Asia/Seoul",
                ["2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"],
            ),
            ("UTC", ["2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"]),
        ];
        let mut cases = 0;
        for window in windows {
            let cron: croner::Cron = window.parse().unwrap();
            for (zone, transitions) in zones {
                let tz: Tz = zone.parse().unwrap();
                let r = rule(None, Some(window), Some(zone));
                for transition in transitions {
                    // Every 11m17s from 3 hours before to 3 hours after: off the minute, too.
                    let mut now = utc(transition) - chrono::TimeDelta::hours(3);
                    while now < utc(transition) + chrono::TimeDelta::hours(3) {
                        let expected = brute_force(&cron, tz, now);
                        let (at, _) = r.next_start(now);
                        assert_eq!(at, expected, "`{window}` in {zone} from {now}");
                        cases += 1;
                        now += chrono::TimeDelta::seconds(11 * 60 + 17);
                    }
                }
            }
        }
        assert!(cases > 2_000, "{cases}");
    }
}
