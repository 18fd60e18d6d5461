//! When a stage may start: not before `schedule.not_before`, and inside the crontab `window` in
//! its time zone (croner: standard 5-field crontab, POSIX weekday numbers).

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::plan::model::Schedule;

/// A plan's schedule, parsed.
#[derive(Debug, Clone)]
pub struct StartRule {
    not_before: Option<DateTime<Utc>>,
    window: Option<(Cron, Tz, String)>,
}

impl StartRule {
    /// Parses a validated schedule; errors only if validation was skipped.
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
                Cron::from_str(w)
                    .map(|cron| (cron, tz, w.to_owned()))
                    .map_err(|e| format!("schedule.window `{w}`: {e}"))
            })
            .transpose()?;
        Ok(StartRule { not_before, window })
    }

    /// The first instant at or after `now` at which a stage may start, and why it waits if it
    /// does.
    pub fn next_start(&self, now: DateTime<Utc>) -> (DateTime<Utc>, Option<String>) {
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
        if let Some((cron, tz, text)) = &self.window {
            let local = at.with_timezone(tz);
            let minute = local
                .with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(local);
            if !cron.is_time_matching(&minute).unwrap_or(false) {
                if let Ok(next) = cron.find_next_occurrence(&local, false) {
                    at = next.with_timezone(&Utc);
                    why = Some(format!("window `{text}` ({tz})"));
                } else {
                    // A window that never opens (e.g. 30 February) was for validation to
                    // catch; start rather than wait forever.
                }
            }
        }
        (at, why)
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
}
