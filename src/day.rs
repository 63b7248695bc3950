//! Calendar days as the partition key: `Day` counts UTC days since 2020-01-01.
//!
//! Everything that partitions by time (tokens, MySQL partitions, embedded day
//! tables, retention) speaks `Day`, so there is exactly one notion of "which
//! day" in the crate. The clock that produces "today" is injectable, so tests
//! can move time forward without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Days between 1970-01-01 and the day epoch, 2020-01-01.
const EPOCH_OFFSET_DAYS: i64 = 18_262;
const SECS_PER_DAY: i64 = 86_400;

/// A UTC calendar day, counted from 2020-01-01 (day 0).
///
/// `u16` covers the years 2020 to 2199, which is also what the MySQL
/// `SMALLINT UNSIGNED` day column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Day(pub u16);

impl Day {
    /// The day a Unix timestamp (seconds) falls on, or `None` before 2020 or after 2199.
    pub fn from_unix(secs: i64) -> Option<Day> {
        let d = secs.div_euclid(SECS_PER_DAY) - EPOCH_OFFSET_DAYS;
        u16::try_from(d).ok().map(Day)
    }

    /// Unix seconds at 00:00:00 UTC of this day.
    pub fn start_unix(self) -> i64 {
        (i64::from(self.0) + EPOCH_OFFSET_DAYS) * SECS_PER_DAY
    }

    /// The civil date of this day.
    pub fn date(self) -> time::Date {
        // Julian day of 2020-01-01 is 2_458_850.
        time::Date::from_julian_day(2_458_850 + i32::from(self.0)).expect("u16 day range is a valid date")
    }

    /// The day a Unix timestamp falls on, held to the range: day 0 before
    /// 2020, the last day after 2199.
    pub fn saturating_from_unix(secs: i64) -> Day {
        Day::from_unix(secs).unwrap_or(if secs < Day(0).start_unix() { Day(0) } else { Day(u16::MAX) })
    }

    /// Parse `YYYY-MM-DD`.
    pub fn parse_iso(s: &str) -> Option<Day> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(s, &fmt).ok()?;
        let d = i64::from(date.to_julian_day()) - 2_458_850;
        u16::try_from(d).ok().map(Day)
    }

    /// `self + n` days, saturating at the ends of the range.
    #[must_use]
    pub fn plus(self, n: u16) -> Day {
        Day(self.0.saturating_add(n))
    }

    /// `self - n` days, saturating at day 0.
    #[must_use]
    pub fn minus(self, n: u16) -> Day {
        Day(self.0.saturating_sub(n))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.date();
        write!(f, "{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }
}

/// The clock reads a time outside the days [`Day`] can name (2020 to 2199).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the clock reads Unix time {unix_secs}, outside 2020-01-01 to 2199; set the system time")]
pub struct ClockOutOfRange {
    pub unix_secs: i64,
}

/// Where "now" comes from. Production uses the system clock; tests use a
/// manual clock they can move.
///
/// A clock outside the range of [`Day`] is refused once, at startup, by
/// [`Clock::checked_today`]; after that [`Clock::today`] never fails.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// Unix time in milliseconds.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock frozen at `unix_secs` until [`Clock::advance_ms`] or [`Clock::advance_days`] moves it.
    pub fn manual(unix_secs: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(unix_secs * 1000)))
    }

    /// Current Unix time in seconds.
    pub fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Current Unix time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Today, in UTC, or an error if the clock is outside the range of
    /// [`Day`]. Startup calls this once and refuses to run on an error.
    pub fn checked_today(&self) -> Result<Day, ClockOutOfRange> {
        let unix_secs = self.now_unix();
        Day::from_unix(unix_secs).ok_or(ClockOutOfRange { unix_secs })
    }

    /// Today, in UTC. Never panics: a clock that leaves the range after the
    /// startup check reads as the nearest end of it.
    pub fn today(&self) -> Day {
        Day::saturating_from_unix(self.now_unix())
    }

    /// Move a manual clock forward by `ms` milliseconds; a no-op on the system clock.
    pub fn advance_ms(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Move a manual clock forward by whole days; a no-op on the system clock.
    pub fn advance_days(&self, days: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(days * SECS_PER_DAY * 1000, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_2020_01_01() {
        assert_eq!(Day::from_unix(1_577_836_800), Some(Day(0)));
        assert_eq!(Day(0).to_string(), "2020-01-01");
        assert_eq!(Day::from_unix(1_577_836_799), None);
    }

    #[test]
    fn iso_round_trip() {
        let d = Day::parse_iso("2026-11-22").unwrap();
        assert_eq!(d.to_string(), "2026-11-22");
        assert_eq!(Day::from_unix(d.start_unix()), Some(d));
        assert_eq!(Day::from_unix(d.start_unix() + 86_399), Some(d));
    }

    #[test]
    fn a_clock_out_of_range_is_an_error_once_and_saturates_after() {
        let before = Clock::manual(1_577_836_799);
        assert_eq!(before.checked_today(), Err(ClockOutOfRange { unix_secs: 1_577_836_799 }));
        assert_eq!(before.today(), Day(0));
        let after = Clock::manual(Day(u16::MAX).start_unix() + 86_400);
        assert!(after.checked_today().is_err());
        assert_eq!(after.today(), Day(u16::MAX));
        assert_eq!(Clock::manual(1_577_836_800).checked_today(), Ok(Day(0)));
    }
}
