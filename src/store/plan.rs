//! Day-partition policy: which days to create and which to drop, and the
//! oldest day still served.
//!
//! The plan is a pure function of the existing partitions, today, the days
//! ahead and the retention, so both backends share it and it is unit-tested
//! without a database. Each backend applies the plan under its own lock; the
//! redirect uses [`oldest_kept`] to answer expired tokens with no query.

use crate::day::Day;
use crate::store::MaintenancePolicy;

/// What to change so that `[today, today + ahead]` exists and nothing older
/// than `today - retention` remains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Days to create, ascending. Each becomes a partition holding exactly that day.
    pub create: Vec<Day>,
    /// Existing partitions (by last day) whose every day is past retention.
    pub drop: Vec<Day>,
}

/// The oldest day still served; tokens before it are expired.
pub fn oldest_kept(today: Day, retention: u16) -> Day {
    today.minus(retention)
}

/// Plan against `existing`, the last day of each existing partition.
///
/// Days are only ever appended after the newest partition (range partitions
/// grow at the top) and never before today, so a gap left by downtime is
/// covered by the range of today's partition and never needs back-filling.
pub fn plan(existing: &[Day], policy: &MaintenancePolicy) -> Plan {
    let newest = existing.iter().max().copied();
    // Nothing is ever inserted before today, so days before it are not created.
    let first_new = newest.map_or(policy.today, |d| d.plus(1).max(policy.today));
    let last_wanted = policy.today.plus(policy.ahead);
    let create = (first_new.0..=last_wanted.0).map(Day).collect();
    let keep_from = oldest_kept(policy.today, policy.retention);
    let mut drop: Vec<Day> = existing.iter().copied().filter(|d| *d < keep_from).collect();
    drop.sort_unstable();
    Plan { create, drop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(today: u16, ahead: u16, retention: u16) -> MaintenancePolicy {
        MaintenancePolicy { today: Day(today), ahead, retention, dry_run: false }
    }

    #[test]
    fn fresh_store_creates_today_and_ahead() {
        let p = plan(&[], &policy(100, 3, 30));
        assert_eq!(p.create, vec![Day(100), Day(101), Day(102), Day(103)]);
        assert!(p.drop.is_empty());
    }

    #[test]
    fn current_store_needs_nothing() {
        let existing: Vec<Day> = (70..=107).map(Day).collect();
        assert_eq!(plan(&existing, &policy(100, 7, 30)), Plan::default());
    }

    #[test]
    fn after_downtime_appends_and_drops() {
        let existing: Vec<Day> = (60..=80).map(Day).collect();
        let p = plan(&existing, &policy(100, 2, 30));
        // The gap 81..99 is covered by the range of the partition for day 100.
        assert_eq!(p.create, (100..=102).map(Day).collect::<Vec<_>>());
        assert_eq!(p.drop, (60..70).map(Day).collect::<Vec<_>>());
    }

    #[test]
    fn retention_keeps_exactly_the_boundary_day() {
        let existing: Vec<Day> = (68..=72).map(Day).collect();
        let p = plan(&existing, &policy(100, 0, 30));
        assert_eq!(p.drop, vec![Day(68), Day(69)]);
        assert_eq!(oldest_kept(Day(100), 30), Day(70));
    }
}
