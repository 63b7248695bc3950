//! Time series from the rollup's quarter-hour slots: grouping stored slots
//! into hour or day buckets for a display time zone, with empty buckets
//! filled in so a chart's x axis is continuous. Pure: the store reads the
//! slots, HTTP and the CLI render the buckets.
//!
//! Slots are 15 minutes of UTC. Every real-world UTC offset is a multiple of
//! 15 minutes, so with any such offset each slot falls in exactly one local
//! hour and one local day: buckets are exact, never apportioned.

use std::fmt;
use std::str::FromStr;

use crate::events::{Counts, SLOT_SECS, SeriesRow};

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub const NAMES: [&str; 2] = ["hour", "day"];

    pub fn secs(self) -> i64 {
        match self {
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

impl FromStr for Bucket {
    type Err = String;
    fn from_str(s: &str) -> Result<Bucket, String> {
        match s {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            _ => Err(format!("bucket must be one of {}", Bucket::NAMES.join(", "))),
        }
    }
}

/// A display offset from UTC, a whole number of quarter hours within ±14:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset {
    pub secs: i32,
}

impl Offset {
    pub const UTC: Offset = Offset { secs: 0 };

    /// `Z`, `+HH:MM` or `-HH:MM` (also `+HHMM` and `+HH`).
    pub fn parse(s: &str) -> Result<Offset, String> {
        let bad = || format!("tz {s:?} is not Z or an offset like +02:00, a multiple of 15 minutes within ±14:00");
        if s == "Z" || s == "z" {
            return Ok(Offset::UTC);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) || rest.matches(':').count() > 1 {
            return Err(bad());
        }
        let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i32 = if digits.len() == 4 { digits[2..].parse().map_err(|_| bad())? } else { 0 };
        let secs = sign * (hours * 3600 + minutes * 60);
        if minutes >= 60 || minutes % 15 != 0 || secs.abs() > 14 * 3600 {
            return Err(bad());
        }
        Ok(Offset { secs })
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.secs < 0 { '-' } else { '+' };
        let abs = self.secs.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

/// One bucket: its start (Unix seconds) and what was hit in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub start: i64,
    pub clicks: Counts,
    pub opens: Counts,
}

/// The start (Unix seconds) of the bucket holding instant `t`.
pub fn bucket_start(t: i64, bucket: Bucket, tz: Offset) -> i64 {
    let local = t + i64::from(tz.secs);
    local.div_euclid(bucket.secs()) * bucket.secs() - i64::from(tz.secs)
}

/// The slot numbers covering `[from, to)` (Unix seconds), for the store.
pub fn slot_range(from: i64, to: i64) -> (u32, u32) {
    let first = u32::try_from(from.div_euclid(SLOT_SECS)).unwrap_or(if from < 0 { 0 } else { u32::MAX });
    let last = u32::try_from((to - 1).div_euclid(SLOT_SECS)).unwrap_or(if to <= 0 { 0 } else { u32::MAX });
    (first, last)
}

/// Group `rows` (in slot order) into buckets from the one holding `from` up
/// to the one holding `to - 1`, every bucket present, zeros where nothing was hit.
pub fn buckets(rows: &[SeriesRow], from: i64, to: i64, bucket: Bucket, tz: Offset) -> Vec<Point> {
    let first = bucket_start(from, bucket, tz);
    let width = bucket.secs();
    let count = if to <= from { 0 } else { (bucket_start(to - 1, bucket, tz) - first) / width + 1 };
    let mut out: Vec<Point> =
        (0..count).map(|i| Point { start: first + i * width, clicks: Counts::default(), opens: Counts::default() }).collect();
    for r in rows {
        let at = i64::from(r.slot) * SLOT_SECS;
        let i = (bucket_start(at, bucket, tz) - first).div_euclid(width);
        if let Some(p) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            p.clicks.merge(&r.clicks);
            p.opens.merge(&r.opens);
        }
    }
    out
}

/// How many buckets `[from, to)` spans.
pub fn bucket_count(from: i64, to: i64, bucket: Bucket, tz: Offset) -> i64 {
    if to <= from { 0 } else { (bucket_start(to - 1, bucket, tz) - bucket_start(from, bucket, tz)) / bucket.secs() + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(slot: u32, human: i64, bot: i64) -> SeriesRow {
        SeriesRow { slot, clicks: Counts { human, bot, ..Counts::default() }, opens: Counts::default() }
    }

    #[test]
    fn offsets_parse_and_print() {
        assert_eq!(Offset::parse("Z"), Ok(Offset::UTC));
        assert_eq!(Offset::parse("+05:45").map(|o| o.secs), Ok(5 * 3600 + 45 * 60));
        assert_eq!(Offset::parse("-0330").map(|o| o.secs), Ok(-(3 * 3600 + 30 * 60)));
        assert_eq!(Offset::parse("+02").map(|o| o.to_string()), Ok("+02:00".to_owned()));
        assert_eq!(Offset::parse("-09:30").map(|o| o.to_string()), Ok("-09:30".to_owned()));
        for bad in ["", "2", "+2", "+02:10", "+15:00", "+01:60", "UTC", "+0a:00", "+02::00", "++02:00"] {
            assert!(Offset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_follow_the_offset_and_hours_are_exact() {
        // 2026-12-01T23:30Z is 2026-12-02 in Berlin (+01:00) and still 2026-12-01 in New York (-05:00).
        let t = 1_796_167_800;
        assert_eq!(t % 86_400, 23 * 3600 + 1800);
        let day_utc = t - (23 * 3600 + 1800);
        assert_eq!(bucket_start(t, Bucket::Day, Offset::UTC), day_utc);
        assert_eq!(bucket_start(t, Bucket::Day, Offset { secs: 3600 }), day_utc + 86_400 - 3600);
        assert_eq!(bucket_start(t, Bucket::Day, Offset { secs: -5 * 3600 }), day_utc + 5 * 3600);
        // Nepal (+05:45): local hours start at quarter past... in UTC, on a slot boundary.
        let nepal = Offset { secs: 5 * 3600 + 45 * 60 };
        assert_eq!((bucket_start(t, Bucket::Hour, nepal) + i64::from(nepal.secs)) % 3600, 0);
        assert_eq!(bucket_start(t, Bucket::Hour, nepal) % SLOT_SECS, 0);
    }

    #[test]
    fn buckets_are_continuous_and_every_slot_lands_once() {
        let from = 1_796_083_200; // 2026-12-01T00:00Z
        let to = from + 3 * 86_400;
        let s = |t: i64| u32::try_from(t / SLOT_SECS).unwrap();
        let rows = [row(s(from), 1, 0), row(s(from + 3 * 900), 2, 1), row(s(from + 86_400 + 900), 0, 5), row(s(to - 900), 7, 0)];
        let hours = buckets(&rows, from, to, Bucket::Hour, Offset::UTC);
        assert_eq!(hours.len(), 72);
        assert_eq!(hours[0].clicks.human, 3);
        assert_eq!(hours[0].clicks.bot, 1);
        assert_eq!(hours[24].clicks.bot, 5);
        assert_eq!(hours[71].clicks.human, 7);
        assert!(hours.windows(2).all(|w| w[1].start - w[0].start == 3600));
        let days = buckets(&rows, from, to, Bucket::Day, Offset { secs: -2 * 3600 });
        // At -02:00 the range starts in the local day before and ends in the last local day: 4 buckets.
        assert_eq!(days.len(), 4);
        let total = |ps: &[Point]| ps.iter().map(|p| p.clicks.total()).sum::<i64>();
        assert_eq!(total(&days), total(&hours));
        assert_eq!(total(&hours), 16);
        assert_eq!(bucket_count(from, to, Bucket::Hour, Offset::UTC), 72);
        assert_eq!(slot_range(from, to), (s(from), s(to) - 1));
    }
}
