//! When a job's slots fall: a cron expression read in a time zone, or a fixed interval.
//!
//! Slots are instants (UTC) computed from the expression alone, never from when a run happened
//! to start, so every process reading the same configuration computes the same slots: that is
//! what lets the run history's unique `(job, slot)` key stop two processes running one slot.
//!
//! Cron is evaluated by `croner`, which follows Vixie cron across DST changes: in a spring-forward
//! gap a fixed-time job (`30 2 * * *`) runs once at the first valid time after the gap and an
//! interval job (`*/15 * * * *`) skips the missing times; in a fall-back overlap a fixed-time job
//! runs once, an interval job at each wall-clock match.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;
use std::time::Duration;

/// How a job's slots are computed.
#[derive(Debug, Clone)]
pub enum Timing {
    /// A cron expression (five fields, or six with seconds first) in a named time zone.
    Cron { cron: Box<Cron>, zone: Tz },
    /// Every `every`, on multiples of it since the Unix epoch (so `1h` falls on the hour, and
    /// every process agrees on the slots without sharing a start time).
    Interval { every: Duration },
}

/// The shortest interval: below it, recording each slot durably would be most of the work.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The most slots [`Timing::slots_between`] hands back at once: a long outage with a
/// one-second schedule must not build millions of runs in one go.
pub const MAX_SLOTS: usize = 10_000;

impl Timing {
    /// Parses `cron` in `zone` (IANA name, e.g. `Europe/Berlin`); the error names what was wrong.
    pub fn cron(expression: &str, zone: &str) -> Result<Self, String> {
        let cron = Cron::from_str(expression)
            .map_err(|e| format!("cron {expression:?} is not a cron expression: {e}"))?;
        let zone = Tz::from_str(zone).map_err(|_| {
            format!("time zone {zone:?} is not an IANA time zone name such as UTC or Europe/Berlin")
        })?;
        Ok(Timing::Cron {
            cron: Box::new(cron),
            zone,
        })
    }

    /// A fixed interval of at least [`MIN_INTERVAL`].
    pub fn interval(every: Duration) -> Result<Self, String> {
        if every < MIN_INTERVAL {
            return Err(format!(
                "every = {every:?} is shorter than the shortest interval, {MIN_INTERVAL:?}"
            ));
        }
        Ok(Timing::Interval { every })
    }

    /// The first slot strictly after `after`, if there is one.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron { cron, zone } => cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Timing::Interval { every } => {
                let every = i64::try_from(every.as_micros()).ok()?;
                let micros = after.timestamp_micros();
                let next = (micros.div_euclid(every) + 1).checked_mul(every)?;
                Utc.timestamp_micros(next).single()
            }
        }
    }

    /// The slots in `(after, until]`, oldest first, at most [`MAX_SLOTS`] of them (the newest).
    pub fn slots_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut slots = std::collections::VecDeque::new();
        let mut at = after;
        while let Some(next) = self.next_after(at).filter(|n| *n <= until) {
            if slots.len() == MAX_SLOTS {
                slots.pop_front();
            }
            slots.push_back(next);
            at = next;
        }
        slots.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_interval_falls_on_its_multiples_whoever_computes_it() {
        let timing = Timing::interval(Duration::from_secs(3600)).unwrap();
        assert_eq!(
            timing.next_after(utc("2026-03-01T10:17:00Z")),
            Some(utc("2026-03-01T11:00:00Z"))
        );
        // Strictly after: a slot is never handed out twice.
        assert_eq!(
            timing.next_after(utc("2026-03-01T11:00:00Z")),
            Some(utc("2026-03-01T12:00:00Z"))
        );
        assert!(Timing::interval(Duration::from_millis(50)).is_err());
    }

    #[test]
    fn slots_between_is_half_open_and_ordered() {
        let timing = Timing::cron("*/10 * * * * *", "UTC").unwrap();
        let slots = timing.slots_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:30Z"));
        assert_eq!(
            slots,
            vec![
                utc("2026-01-01T00:00:10Z"),
                utc("2026-01-01T00:00:20Z"),
                utc("2026-01-01T00:00:30Z")
            ]
        );
    }

    #[test]
    fn a_long_gap_keeps_the_newest_slots_only() {
        let timing = Timing::interval(Duration::from_secs(1)).unwrap();
        let slots = timing.slots_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-02T00:00:00Z"));
        assert_eq!(slots.len(), MAX_SLOTS);
        assert_eq!(slots.last(), Some(&utc("2026-01-02T00:00:00Z")));
    }

    #[test]
    fn a_fixed_time_in_the_spring_gap_runs_once_right_after_it() {
        // Berlin skips 02:00-03:00 on 2026-03-29 (01:00 UTC).
        let timing = Timing::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let slots = timing.slots_between(utc("2026-03-28T12:00:00Z"), utc("2026-03-30T12:00:00Z"));
        assert_eq!(
            slots,
            vec![utc("2026-03-29T01:00:00Z"), utc("2026-03-30T00:30:00Z")]
        );
    }

    #[test]
    fn a_fixed_time_in_the_autumn_overlap_runs_once() {
        // Berlin repeats 02:00-03:00 on 2026-10-25.
        let timing = Timing::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let slots = timing.slots_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"));
        assert_eq!(slots, vec![utc("2026-10-25T00:30:00Z")]);
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let err = Timing::cron("61 * * * *", "UTC").unwrap_err();
        assert!(err.contains("\"61 * * * *\""), "{err}");
        let err = Timing::cron("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }
}
