//! The stats rollup (seed `004`): a running total per (mailing, URL, kind)
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::day::{Clock, Day};
use crate::events::classify::{BurstInput, BurstRule, find_bursts, near_mint};
use crate::events::{Counts, Cursor, EventQuery, EventRow, FirstHit, Reason, Relabel, RollupApply, StatKey};
use crate::store::{LinkKind, Store};
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
    /// Clicks counted in the last burst window, as context for the next pass.
    tail: VecDeque<BurstInput>,
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

impl<S: Store> Rollup<S> {
    pub fn new(store: Arc<S>, clock: Clock, cfg: RollupConfig) -> Rollup<S> {
        Rollup { store, clock, cfg, tail: VecDeque::new(), tail_at: Cursor::START }
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
                        tracing::warn!(error = %e, "rollup pass failed; retrying later");
                        break;
                    }
                }
            }
        }
    }

    /// One pass: returns how many events it counted.
    pub async fn pass(&mut self) -> Result<usize> {
        let state = self.store.rollup_state().await?;
        if state.watermark != self.tail_at {
            self.tail.clear();
        }
        let cutoff = self.clock.now_ms() - self.cfg.settle_ms;
        let query = EventQuery { after: state.watermark, limit: self.cfg.page, mailing_id: None, through: self.clock.today() };
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
        let as_of_ms = rows.get(n).map_or(cutoff, |r| cutoff.min(r.at_ms - 1)).max(state.as_of_ms);
        if n == 0 && as_of_ms == state.as_of_ms {
            return Ok(0);
        }
        let apply = self.plan(&rows, n, state.watermark, as_of_ms);
        if self.store.apply_rollup(&apply).await? {
            let counted = rows[..n].iter().filter_map(burst_input);
            self.tail.extend(counted);
            let newest = self.tail.iter().map(|b| b.at_ms).max().unwrap_or(i64::MIN);
            self.tail.retain(|b| b.at_ms + self.cfg.burst.window_ms >= newest);
            self.tail_at = apply.to;
        } else {
            // Another replica applied this range first.
            self.tail.clear();
        }
        Ok(n)
    }

    /// Decide the final verdict of `rows[..n]` and the deltas they add.
    fn plan(&self, rows: &[EventRow], n: usize, from: Cursor, as_of_ms: i64) -> RollupApply {
        // Burst context: the previous pass's clicks, every row read (settled or not), in one run.
        let mut inputs: Vec<BurstInput> = self.tail.iter().copied().collect();
        let mut at: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        for r in rows {
            at.push(burst_input(r).map(|b| {
                inputs.push(b);
                inputs.len() - 1
            }));
        }
        let bursts = find_bursts(&inputs, &self.cfg.burst);
        let mut apply =
            RollupApply { from, to: rows.get(n.wrapping_sub(1)).map_or(from, |r| r.cursor), as_of_ms, ..RollupApply::default() };
        let mut deltas: HashMap<StatKey, Counts> = HashMap::new();
        let mut first: HashSet<(Day, Random)> = HashSet::new();
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
            let key = StatKey {
                mailing_id: link.mailing_id.clone(),
                url: if row.kind == LinkKind::Click { link.url.clone() } else { None },
                kind: row.kind,
            };
            deltas.entry(key.clone()).or_default().add_verdict(verdict, 1);
            if first.insert((row.link_day, row.random)) {
                apply.first_hits.push(FirstHit { link_day: row.link_day, random: row.random, key });
            }
        }
        apply.deltas = deltas.into_iter().collect();
        apply
    }
}
