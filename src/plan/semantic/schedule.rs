//! `schedule`: a real instant, a standard crontab window that opens, an IANA time zone.

use crate::plan::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::plan::window::{Window, WindowError};

use super::Checker;

impl Checker<'_> {
    pub(super) fn schedule(&mut self) {
        let Some(schedule) = &self.plan.schedule else {
            return;
        };
        if let Some(instant) = &schedule.not_before
            && let Err(error) = chrono::DateTime::parse_from_rfc3339(instant)
        {
            self.push(
                Diagnostic::error(
                    Code::BadTimestamp,
                    "/schedule/not_before",
                    format!("`{instant}` is not an RFC 3339 instant: {error}"),
                )
                .with_help("write e.g. `2025-10-22T14:00:00Z` (a date, `T`, a time and a zone)"),
            );
        }
        if let Some(window) = &schedule.window
            && let Err(error) = Window::parse(window)
        {
            self.push(window_error(window, &error));
        }
        if let Some(zone) = &schedule.timezone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            let names: Vec<String> = chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| tz.name().to_owned())
                .collect();
            let mut d = Diagnostic::error(
                Code::BadTimezone,
                "/schedule/timezone",
                format!("`{}` is not an IANA time zone", clip(zone)),
            );
            d = d.with_help(did_you_mean(zone, &names, "").unwrap_or_else(|| {
                "use a name such as `UTC`, `Europe/Berlin` or `Asia/Seoul`".into()
            }));
            self.push(d);
        }
    }
}

/// A value quoted in a message, cut short when it is long: the snippet shows where it stands.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text.into();
    }
    format!("{}…", &text[..text.floor_char_boundary(MAX)]).into()
}

/// Why `schedule.window` is refused, in a diagnostic.
fn window_error(window: &str, error: &WindowError) -> Diagnostic {
    const POINTER: &str = "/schedule/window";
    const EXAMPLE: &str =
        "e.g. `* 13-17 * * Mon-Thu`: any minute from 13:00 to 17:59, Monday to Thursday";
    let parts: Vec<&str> = window.split_whitespace().collect();
    let window = &*clip(window);
    match error {
        WindowError::Fields(fields) => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` has {fields} fields; a crontab window has 5 (minute hour day-of-month month day-of-week)"),
        )
        .with_help(EXAMPLE),
        WindowError::Extension { text, field } => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` is not standard crontab: {text} in the {field} field is a croner extension"),
        )
        .with_help("a window is a standard 5-field crontab: numbers, names (`Mon`, `Jan`), `*`, ranges `1-5`, lists `1,3` and steps `*/2`"),
        WindowError::Invalid(message) => Diagnostic::error(
            Code::BadWindow,
            POINTER,
            format!("`{window}` is not a valid crontab window: {message}"),
        ),
        WindowError::NeverOpens => {
            Diagnostic::error(
                Code::BadWindow,
                POINTER,
                format!(
                    "the window `{window}` never opens: no date in 8 years has day of month `{}` in month `{}`",
                    clip(parts[2]),
                    clip(parts[3])
                ),
            )
            .with_help("a stage would wait for it forever; `0 0 29 2 *` (29 February) is fine, it opens in leap years")
        }
    }
}
