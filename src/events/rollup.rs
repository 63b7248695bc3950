//! The stats rollup: a running total per (mailing, URL, kind)
//! plus a working set of recent events, merged periodically. The working set
//! is simply the events past the rollup watermark; a pass reads the settled
//! ones in (day, id) order, decides their final verdict, and applies the
//! deltas and the new watermark together. Nothing ever counts raw events at
//! read time, and no row is updated per hit.
//!
//! An event is *settled* once it is older than the settle delay (the burst
//! window plus the writer's flush interval plus a margin): by then the other
//! hits of a scanner burst around it have been written too, so the pass sees
//! the whole burst and can re-label events already written (the capture-time
//! verdict knew only the request). Stats count each event once, with its
//! final verdict. A pass keeps the last burst window of counted clicks in
//! memory as context for the next one; after a restart that context starts
//! empty.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::day::{Clock, Day};
use crate::events::burst::{BurstInput, BurstRule, find_bursts, near_mint};
use crate::events::queue::EventCounters;
use crate::events::{
    Counts, Cursor, EventQuery, EventRow, FirstHit, LetterHit, Reason, Relabel, RollupApply, SeriesKey, StatKey, Verdict, slot_of,
};
use crate::link::LinkKind;
use crate::store::Store;
use crate::token::Random;

/// How the rollup runs and classifies.
#[derive(Debug, Clone, Copy)]
pub struct RollupConfig {
    /// Pause between passes (a pass that filled its page runs again at once).
    pub every: Duration,
    /// Events younger than this are left for a later pass.
    pub settle_ms: i64,
    /// Events read per pass.
    pub page: usize,
    pub burst: BurstRule,
    /// Hits this soon after their letter's mint are `near_mint`.
    pub near_mint_ms: i64,
}

/// The rollup task's state.
#[derive(Debug)]
pub struct Rollup<S> {
    store: Arc<S>,
    clock: Clock,
    cfg: RollupConfig,
    /// `rolled_up` counts the events this task's passes applied.
    counters: Arc<EventCounters>,
    /// Clicks counted in the last burst window, as context for the next pass.
    tail: BurstContext,
    /// The watermark `tail` leads up to; another replica moving it invalidates the tail.
    tail_at: Cursor,
}

fn letter_key(day: Day, letter_id: u64) -> u64 {
    (u64::from(day.0) << 48) ^ letter_id
}

fn link_key(day: Day, random: &Random) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&random.0[..8]);
    u64::from_le_bytes(b) ^ u64::from(day.0)
}

fn burst_input(row: &EventRow) -> Option<BurstInput> {
    let link = row.link.as_ref()?;
    (row.kind == LinkKind::Click).then(|| BurstInput {
        at_ms: row.at_ms,
        letter: letter_key(row.link_day, link.letter_id),
        ip: row.ip.key(),
        link: link_key(row.link_day, &row.random),
        letter_links: link.letter_links,
    })
}

/// The clicks of the last burst window, grouped by (letter, IP), so a pass
/// looks up the context of the groups it read instead of re-sorting every
/// recent click (at 40k clicks/s a 10 s window holds 400k of them).
/// Expiry goes by time, not by arrival: a late (replayed) or clock-skewed
/// click neither outlives the window nor holds newer-arrived ones back.
#[derive(Debug, Default)]
struct BurstContext {
    by_group: HashMap<Group, BTreeMap<(i64, u64), BurstInput>>,
    /// Every held click by (time, arrival number), for expiry.
    by_time: BTreeMap<(i64, u64), Group>,
    arrivals: u64,
    newest: Option<i64>,
}

type Group = (u64, [u8; 16]);

fn group(b: &BurstInput) -> Group {
    (b.letter, b.ip)
}

impl BurstContext {
    fn clear(&mut self) {
        *self = BurstContext::default();
    }

    /// The held clicks that share a (letter, IP) with one of `read`.
    fn context_for<'a>(&self, read: impl Iterator<Item = &'a BurstInput>) -> Vec<BurstInput> {
        let groups: HashSet<Group> = read.map(group).collect();
        groups.iter().filter_map(|g| self.by_group.get(g)).flat_map(BTreeMap::values).copied().collect()
    }

    /// Add counted clicks, then forget those more than `window_ms` older than the newest.
    fn extend(&mut self, counted: impl Iterator<Item = BurstInput>, window_ms: i64) {
        for b in counted {
            self.newest = Some(self.newest.map_or(b.at_ms, |n| n.max(b.at_ms)));
            let key = (b.at_ms, self.arrivals);
            self.arrivals += 1;
            self.by_time.insert(key, group(&b));
            self.by_group.entry(group(&b)).or_default().insert(key, b);
        }
        let Some(newest) = self.newest else { return };
        while let Some((&key, &g)) = self.by_time.first_key_value() {
            if key.0.saturating_add(window_ms) >= newest {
                break;
            }
            self.by_time.pop_first();
            if let Some(held) = self.by_group.get_mut(&g) {
                held.remove(&key);
                if held.is_empty() {
                    self.by_group.remove(&g);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_time.len()
    }
}

/// How far the totals are complete after a pass that leaves `uncounted`
/// (read but not settled) behind: every *stored* event hit at or before the
/// returned time is counted. Rows are in cursor order, not time order, so
/// any uncounted row bounds it, not just the first; after a full page the
/// rows not read yet could be older still, so it does not move. It never
/// moves back: an event replayed late from a spool, older than `as_of`,
/// is counted by a later pass without moving `as_of` back.
fn as_of(uncounted: &[EventRow], page_full: bool, cutoff: i64, previous: i64) -> i64 {
    if page_full {
        return previous;
    }
    let oldest = uncounted.iter().map(|r| r.at_ms).min();
    oldest.map_or(cutoff, |t| cutoff.min(t - 1)).max(previous)
}

impl<S: Store> Rollup<S> {
    pub fn new(store: Arc<S>, clock: Clock, cfg: RollupConfig, counters: Arc<EventCounters>) -> Rollup<S> {
        Rollup { store, clock, cfg, counters, tail: BurstContext::default(), tail_at: Cursor::START }
    }

    /// Run passes every `cfg.every` until `cancel` fires. All state is in the
    /// store, so there is nothing to flush on the way out.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.cfg.every) => {}
            }
            loop {
                match self.pass().await {
                    Ok(n) if n >= self.cfg.page && !cancel.is_cancelled() => {}
                    Ok(_) => break,
                    Err(e) => {
                        crate::log_limited!(warn, error = %e, "rollup pass failed; retrying later");
                        break;
                    }
                }
            }
        }
    }

    /// One pass: returns how many events it counted.
    pub async fn pass(&mut self) -> Result<usize> {
        let state = self.store.rollup_state().await?;
        self.note_as_of(state.as_of_ms);
        if state.watermark != self.tail_at {
            self.tail.clear();
        }
        let cutoff = self.clock.now_ms() - self.cfg.settle_ms;
        let query = EventQuery { after: state.watermark, limit: self.cfg.page, mailing_id: None };
        let rows = self.store.read_events(&query).await?;
        let mut n = rows.iter().take_while(|r| r.at_ms <= cutoff).count();
        if rows.len() == self.cfg.page && n == rows.len() {
            // A full page: the next one may hold burst neighbours of the last rows. Leave those for it.
            let last = rows.last().map_or(i64::MIN, |r| r.at_ms);
            let safe = rows.iter().take_while(|r| r.at_ms + self.cfg.burst.window_ms <= last).count();
            if safe > 0 {
                n = safe;
            }
        }
        let as_of_ms = as_of(&rows[n..], rows.len() == self.cfg.page, cutoff, state.as_of_ms);
        if n == 0 && as_of_ms == state.as_of_ms {
            return Ok(0);
        }
        let apply = self.plan(&rows, n, state.watermark, as_of_ms);
        if self.store.apply_rollup(&apply).await? {
            EventCounters::add(&self.counters.rolled_up, n as u64);
            self.note_as_of(apply.as_of_ms);
            self.tail.extend(rows[..n].iter().filter_map(burst_input), self.cfg.burst.window_ms);
            self.tail_at = apply.to;
        } else {
            // Another replica applied this range first.
            self.tail.clear();
        }
        Ok(n)
    }

    /// Publish how far the totals are complete, for the rollup lag gauge.
    fn note_as_of(&self, as_of_ms: i64) {
        EventCounters::set(&self.counters.rollup_as_of_ms, u64::try_from(as_of_ms).unwrap_or(0));
    }

    /// Decide the final verdict of `rows[..n]` and the deltas they add.
    fn plan(&self, rows: &[EventRow], n: usize, from: Cursor, as_of_ms: i64) -> RollupApply {
        // Burst context: the previous passes' clicks from the same (letter, IP)
        // as a click read now, then every row read (settled or not), in one run.
        let read: Vec<Option<BurstInput>> = rows.iter().map(burst_input).collect();
        let mut inputs = self.tail.context_for(read.iter().flatten());
        let mut at: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        for b in read {
            at.push(b.map(|b| {
                inputs.push(b);
                inputs.len() - 1
            }));
        }
        let bursts = find_bursts(&inputs, &self.cfg.burst);
        let mut apply =
            RollupApply { from, to: rows.get(n.wrapping_sub(1)).map_or(from, |r| r.cursor), as_of_ms, ..RollupApply::default() };
        let mut deltas: HashMap<StatKey, Counts> = HashMap::new();
        let mut series: HashMap<SeriesKey, Counts> = HashMap::new();
        let mut first: HashMap<(Day, Random), usize> = HashMap::new();
        let mut letters: HashSet<(Day, u64)> = HashSet::new();
        for (row, idx) in rows[..n].iter().zip(&at) {
            let mut reason = row.reason;
            if idx.is_some_and(|i| bursts[i]) {
                reason = reason.stronger(Reason::LetterBurst);
            }
            let Some(link) = &row.link else {
                // The link is gone (its day was dropped) or never existed: nothing to count it under.
                continue;
            };
            if near_mint(row.at_ms, link.minted_at * 1000, self.cfg.near_mint_ms) {
                reason = reason.stronger(Reason::NearMint);
            }
            let verdict = reason.verdict();
            if (verdict, reason) != (row.verdict, row.reason) {
                apply.relabels.push(Relabel { event: row.cursor, verdict, reason });
            }
            let click = row.kind == LinkKind::Click;
            let key = StatKey {
                tenant: link.tenant,
                mailing_id: link.mailing_id.clone(),
                url: if click { link.url.clone() } else { None },
                position: if click { link.position } else { None },
                kind: row.kind,
            };
            deltas.entry(key.clone()).or_default().add_verdict(verdict, 1);
            let slot = SeriesKey { tenant: link.tenant, mailing_id: link.mailing_id.clone(), kind: row.kind, slot: slot_of(row.at_ms) };
            series.entry(slot).or_default().add_verdict(verdict, 1);
            let human = verdict == Verdict::Human;
            match first.entry((row.link_day, row.random)) {
                Entry::Occupied(e) => apply.first_hits[*e.get()].human |= human,
                Entry::Vacant(e) => {
                    e.insert(apply.first_hits.len());
                    apply.first_hits.push(FirstHit { link_day: row.link_day, random: row.random, key, human });
                }
            }
            if click && human && letters.insert((row.link_day, link.letter_id)) {
                apply.letters_human.push(LetterHit {
                    link_day: row.link_day,
                    letter_id: link.letter_id,
                    tenant: link.tenant,
                    mailing_id: link.mailing_id.clone(),
                });
            }
        }
        apply.deltas = deltas.into_iter().collect();
        apply.deltas.sort_by(|a, b| a.0.cmp(&b.0));
        apply.series = series.into_iter().collect();
        apply.series.sort_by(|a, b| a.0.cmp(&b.0));
        apply
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const RULE: BurstRule = BurstRule { window_ms: 1000, min_links: 3, min_fraction: 0.6 };

    fn click(at_ms: i64, letter: u64, ip: u8, link: u64) -> BurstInput {
        let mut addr = [0; 16];
        addr[15] = ip;
        BurstInput { at_ms, letter, ip: addr, link, letter_links: 4 }
    }

    /// The verdicts of each page, given the context `BurstContext` keeps, and
    /// given every click of the last window (what a pass used to sort).
    fn both_ways(clicks: &[BurstInput], page: usize) -> (Vec<bool>, Vec<bool>) {
        let (mut ctx, mut kept, mut by_ctx, mut by_all) = (BurstContext::default(), Vec::<BurstInput>::new(), Vec::new(), Vec::new());
        for chunk in clicks.chunks(page) {
            let mut inputs = ctx.context_for(chunk.iter());
            let skip = inputs.len();
            inputs.extend_from_slice(chunk);
            by_ctx.extend_from_slice(&find_bursts(&inputs, &RULE)[skip..]);
            let mut all = kept.clone();
            all.extend_from_slice(chunk);
            by_all.extend_from_slice(&find_bursts(&all, &RULE)[kept.len()..]);
            ctx.extend(chunk.iter().copied(), RULE.window_ms);
            kept.extend_from_slice(chunk);
            let newest = kept.iter().map(|b| b.at_ms).max().unwrap_or(i64::MIN);
            kept.retain(|b| b.at_ms + RULE.window_ms >= newest);
            assert_eq!(ctx.len(), kept.len(), "the context holds exactly the last window");
        }
        (by_ctx, by_all)
    }

    #[test]
    fn a_burst_split_across_passes_is_found_from_the_context() {
        // A scanner hits links 0..4 of letter 7, 200 ms apart; a person clicks once in between.
        let clicks: Vec<_> = (0..4u64).map(|i| click(i64::try_from(i).unwrap() * 200, 7, 9, i)).chain([click(300, 8, 1, 0)]).collect();
        let mut sorted = clicks.clone();
        sorted.sort_by_key(|c| c.at_ms);
        let (by_ctx, by_all) = both_ways(&sorted, 2);
        assert_eq!(by_ctx, by_all);
        // In time order: scanner 0, 200, person 300, scanner 400, 600. The first
        // page alone is no burst yet; 400 completes it with the context 0 and 200.
        assert_eq!(by_ctx, [false, false, false, true, true]);
    }

    fn row(id: u64, at_ms: i64) -> EventRow {
        EventRow {
            cursor: Cursor { day: Day(100), id },
            at_ms,
            kind: LinkKind::Click,
            method: crate::events::Method::Get,
            verdict: crate::events::Verdict::Human,
            reason: Reason::None,
            link_day: Day(100),
            version: crate::token::Version::V2,
            random: Random([0; 16]),
            link_ids: None,
            ip: crate::events::IpBytes::new("198.51.100.1".parse().unwrap()),
            user_agent: String::new(),
            link: None,
        }
    }

    #[test]
    fn as_of_is_bounded_by_every_uncounted_row() {
        // Settled up to 1000. Left behind: a fresh row at 5000, then a replayed one from 50.
        let uncounted = [row(2, 5000), row(3, 50)];
        assert_eq!(as_of(&uncounted, false, 1000, 0), 49, "the late row after the first unsettled one bounds it");
        assert_eq!(as_of(&uncounted[..1], false, 1000, 0), 1000);
        assert_eq!(as_of(&[], false, 1000, 0), 1000);
        assert_eq!(as_of(&[], true, 1000, 300), 300, "rows past a full page are unknown: no claim");
        assert_eq!(as_of(&uncounted, false, 1000, 700), 700, "never moves back");
    }

    #[test]
    fn expired_clicks_leave_the_context() {
        let mut ctx = BurstContext::default();
        ctx.extend([click(0, 1, 1, 0), click(10, 2, 2, 0)].into_iter(), 1000);
        ctx.extend([click(1005, 1, 1, 1)].into_iter(), 1000);
        assert_eq!(ctx.len(), 2, "the click at 0 is more than a window older than 1005");
        assert_eq!(ctx.context_for([click(1006, 1, 1, 2)].iter()).len(), 1);
        assert!(ctx.context_for([click(1006, 3, 3, 2)].iter()).is_empty());
        ctx.clear();
        assert_eq!(ctx.len(), 0);
    }

    proptest! {
        /// Looking up a group's context gives exactly the verdicts of sorting
        /// every click of the last window, also when some clicks arrive late
        /// or far ahead of the others (replayed batches, skewed clocks).
        #[test]
        fn context_lookup_matches_the_full_window(
            gaps in prop::collection::vec((0i64..400, -3000i64..3000, 0u8..10, 0u64..4, 0u8..3, 0u64..4), 1..300),
            page in 1usize..50,
        ) {
            let mut at = 0;
            let clicks: Vec<_> = gaps
                .into_iter()
                .map(|(gap, skew, skewed, letter, ip, link)| {
                    at += gap;
                    click(if skewed == 0 { at + skew } else { at }, letter, ip, link)
                })
                .collect();
            let (by_ctx, by_all) = both_ways(&clicks, page);
            prop_assert_eq!(by_ctx, by_all);
        }
    }
}
