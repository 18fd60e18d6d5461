//! Time for the engine: real in a run, simulated in `--dry-run`, `--scenario` and tests, so a
//! 22-day plan is run in milliseconds. The engine never reads the system clock directly.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

/// `t + d`, saturating at the end of time: instants come from journals, which may be damaged.
pub fn after(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A source of "now" and a way to wait.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'_, ()>;
    /// Whether time only moves when the engine waits (no real waiting happens).
    fn is_simulated(&self) -> bool;
}

/// Wall-clock time.
#[derive(Debug, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Sleep in slices so a changed system clock or a suspended laptop cannot make a wait
            // overshoot by more than a slice.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(30))).await;
            }
        })
    }

    fn is_simulated(&self) -> bool {
        false
    }
}

/// Simulated time: waiting jumps straight to the deadline.
#[derive(Debug)]
pub struct SimClock {
    now: Mutex<DateTime<Utc>>,
}

impl SimClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let mut now = self.now.lock().expect("clock lock");
        if deadline > *now {
            *now = deadline;
        }
        Box::pin(std::future::ready(()))
    }

    fn is_simulated(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_time_jumps_forward_and_never_back() {
        let start = DateTime::parse_from_rfc3339("2025-10-22T14:00:00Z")
            .unwrap()
            .to_utc();
        let clock = SimClock::new(start);
        clock.sleep_until(start + chrono::Duration::days(22)).await;
        assert_eq!(clock.now(), start + chrono::Duration::days(22));
        clock.sleep_until(start).await;
        assert_eq!(clock.now(), start + chrono::Duration::days(22));
    }
}
