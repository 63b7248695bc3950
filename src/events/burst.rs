//! Rollup-time detection of machines that look like people: letter bursts
//! ([`find_bursts`]: one client hitting most of a letter's click links within
//! seconds, as corporate mail scanners do) and hits right after the mint
//! ([`near_mint`]). Pure, no I/O and no clock; only the rollup uses them, and
//! a match upgrades an event's reason to `LetterBurst` or `NearMint`.

use std::collections::HashMap;

/// Rollup-time burst rule (thresholds come from the CLI configuration).
#[derive(Debug, Clone, Copy)]
pub struct BurstRule {
    /// Length of the sliding window, in milliseconds. A window holds the hits
    /// at `t ..= t + window_ms`, both ends included.
    pub window_ms: i64,
    /// Fewest distinct links a burst needs, whatever the letter's size.
    pub min_links: u32,
    /// Fewest distinct links a burst needs, as a fraction of the letter's click links.
    pub min_fraction: f64,
}

impl BurstRule {
    /// Distinct links a (letter, ip) must hit within one window: the larger of
    /// `min_links` and `ceil(min_fraction * letter_links)`, and never below 2,
    /// since one link cannot make a burst (a rule with `min_links` 0 or 1
    /// would otherwise flag every lone click).
    fn threshold(&self, letter_links: u32) -> u32 {
        let product = self.min_fraction * f64::from(letter_links);
        // Shave rounding noise before `ceil`: 0.7 * 10.0 is 7.000000000000001
        // in binary floating point, and must need 7 links, not 8.
        let by_fraction = (product - product.abs() * 1e-12).ceil();
        #[allow(clippy::cast_sign_loss, reason = "clamped to 0..=u32::MAX first; NaN becomes 0")]
        let by_fraction = by_fraction.clamp(0.0, f64::from(u32::MAX)) as u32;
        self.min_links.max(by_fraction).max(2)
    }
}

/// One click event as the burst detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct BurstInput {
    /// When the hit happened, Unix milliseconds.
    pub at_ms: i64,
    /// Opaque letter key.
    pub letter: u64,
    /// Client address, IPv4 as IPv4-mapped IPv6.
    pub ip: [u8; 16],
    /// Opaque link key.
    pub link: u64,
    /// Number of click links in that letter.
    pub letter_links: u32,
}

/// For each input (same order), whether it belongs to a burst: some window of
/// `rule.window_ms` (both ends included) contains it and, from the same
/// (letter, ip), hits on at least [`BurstRule`]'s threshold of DISTINCT links
/// (the same link hit five times counts once). Corporate mail scanners
/// pre-click every link of a letter within seconds; people click one or two.
///
/// Should the events of one letter disagree on `letter_links`, the largest is
/// used (the stricter threshold). O(n log n): one sort, then a two-pointer
/// sweep per (letter, ip) with a count per link.
pub fn find_bursts(events: &[BurstInput], rule: &BurstRule) -> Vec<bool> {
    let window = rule.window_ms.max(0);
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_unstable_by_key(|&i| (events[i].letter, events[i].ip, events[i].at_ms));

    let mut out = vec![false; events.len()];
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for group in order.chunk_by(|&a, &b| events[a].letter == events[b].letter && events[a].ip == events[b].ip) {
        let letter_links = group.iter().map(|&i| events[i].letter_links).max().unwrap_or(0);
        let need = usize::try_from(rule.threshold(letter_links)).unwrap_or(usize::MAX);
        if group.len() < need {
            continue;
        }
        counts.clear();
        let mut left = 0;
        // Every index below `marked` is already true; each is marked once.
        let mut marked = 0;
        for (right, &r) in group.iter().enumerate() {
            *counts.entry(events[r].link).or_insert(0) += 1;
            while events[r].at_ms.saturating_sub(events[group[left]].at_ms) > window {
                let link = events[group[left]].link;
                if let Some(n) = counts.get_mut(&link) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&link);
                    }
                }
                left += 1;
            }
            // The widest window ending at `right` holds every event of any
            // window whose last event is `right`, so checking it suffices.
            if counts.len() >= need {
                for &i in &group[marked.max(left)..=right] {
                    out[i] = true;
                }
                marked = right + 1;
            }
        }
    }
    out
}

/// Whether a hit at `at_ms` is within `window_ms` after a mint at
/// `minted_at_ms`, both ends included. Hits before the mint (clock skew
/// between hosts) count as near. A negative window is taken as 0.
pub fn near_mint(at_ms: i64, minted_at_ms: i64, window_ms: i64) -> bool {
    at_ms.saturating_sub(minted_at_ms) <= window_ms.max(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const IP_A: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7];
    const IP_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    const RULE: BurstRule = BurstRule { window_ms: 5_000, min_links: 3, min_fraction: 0.6 };

    fn hit(at_ms: i64, letter: u64, ip: [u8; 16], link: u64, letter_links: u32) -> BurstInput {
        BurstInput { at_ms, letter, ip, link, letter_links }
    }

    #[test]
    fn scanner_hitting_every_link_within_two_seconds_is_a_burst() {
        let events: Vec<_> = (0..10).map(|l| hit(1_000_000 + i64::try_from(l).unwrap() * 200, 7, IP_A, l, 10)).collect();
        assert_eq!(find_bursts(&events, &RULE), vec![true; 10]);
    }

    #[test]
    fn person_clicking_two_of_ten_links_is_not_a_burst() {
        let events = [hit(1_000, 7, IP_A, 3, 10), hit(1_500, 7, IP_A, 8, 10)];
        assert_eq!(find_bursts(&events, &RULE), [false, false]);
    }

    #[test]
    fn all_links_spread_over_ten_minutes_is_not_a_burst() {
        let events: Vec<_> = (0..10).map(|l| hit(i64::try_from(l).unwrap() * 60_000, 7, IP_A, l, 10)).collect();
        assert_eq!(find_bursts(&events, &RULE), vec![false; 10]);
    }

    #[test]
    fn two_ips_each_hitting_half_the_links_is_not_a_burst() {
        let mut events: Vec<_> = (0..5).map(|l| hit(1_000 + i64::try_from(l).unwrap() * 100, 7, IP_A, l, 10)).collect();
        events.extend((5..10).map(|l| hit(1_050 + i64::try_from(l).unwrap() * 100, 7, IP_B, l, 10)));
        assert_eq!(find_bursts(&events, &RULE), vec![false; 10]);
        // The same ten hits from one address would be.
        let one_ip: Vec<_> = events.iter().map(|e| BurstInput { ip: IP_A, ..*e }).collect();
        assert_eq!(find_bursts(&one_ip, &RULE), vec![true; 10]);
    }

    #[test]
    fn single_link_letter_is_never_a_burst() {
        let events: Vec<_> = (0..6).map(|n| hit(n * 10, 9, IP_A, 1, 1)).collect();
        assert_eq!(find_bursts(&events, &RULE), vec![false; 6]);
    }

    #[test]
    fn min_links_of_zero_or_one_still_needs_two_links() {
        let rule = BurstRule { window_ms: 5_000, min_links: 0, min_fraction: 0.0 };
        assert_eq!(find_bursts(&[hit(0, 1, IP_A, 1, 1)], &rule), [false]);
        assert_eq!(find_bursts(&[hit(0, 1, IP_A, 1, 2), hit(1, 1, IP_A, 2, 2)], &rule), [true, true]);
    }

    #[test]
    fn burst_interleaved_with_other_letters_marks_only_its_own_events() {
        let mut events = Vec::new();
        let mut want = Vec::new();
        for l in 0..10 {
            let t = 50_000 + i64::try_from(l).unwrap() * 150;
            events.push(hit(t, 7, IP_A, l, 10)); // the scanner
            want.push(true);
            events.push(hit(t + 1, 8, IP_A, 100 + l % 2, 10)); // same IP, another letter, 2 links
            want.push(false);
            events.push(hit(t + 2, 7, IP_B, 200, 10)); // same letter, another IP, 1 link
            want.push(false);
        }
        assert_eq!(find_bursts(&events, &RULE), want);
    }

    #[test]
    fn repeated_hits_on_one_link_count_once() {
        let rule = BurstRule { window_ms: 5_000, min_links: 3, min_fraction: 0.0 };
        let same: Vec<_> = (0..5).map(|n| hit(n * 100, 7, IP_A, 4, 10)).collect();
        assert_eq!(find_bursts(&same, &rule), vec![false; 5]);
        // Two links hit five times between them: still two distinct.
        let two: Vec<_> = (0..5).map(|n| hit(n * 100, 7, IP_A, u64::try_from(n % 2).unwrap(), 10)).collect();
        assert_eq!(find_bursts(&two, &rule), vec![false; 5]);
        // A third distinct link tips it.
        let mut three = two.clone();
        three.push(hit(450, 7, IP_A, 2, 10));
        assert_eq!(find_bursts(&three, &rule), vec![true; 6]);
    }

    #[test]
    fn window_ends_are_inclusive_and_events_outside_stay_false() {
        let rule = BurstRule { window_ms: 1_000, min_links: 3, min_fraction: 0.0 };
        let events = [hit(0, 1, IP_A, 1, 5), hit(500, 1, IP_A, 2, 5), hit(1_000, 1, IP_A, 3, 5), hit(2_001, 1, IP_A, 4, 5)];
        assert_eq!(find_bursts(&events, &rule), [true, true, true, false]);
        let late = [hit(0, 1, IP_A, 1, 5), hit(500, 1, IP_A, 2, 5), hit(1_001, 1, IP_A, 3, 5)];
        assert_eq!(find_bursts(&late, &rule), [false, false, false]);
    }

    #[test]
    fn fraction_threshold_is_not_thrown_by_float_rounding() {
        // 0.7 * 10.0 == 7.000000000000001: exactly seven links must suffice.
        let rule = BurstRule { window_ms: 5_000, min_links: 1, min_fraction: 0.7 };
        assert_eq!(rule.threshold(10), 7);
        let seven: Vec<_> = (0..7).map(|l| hit(i64::try_from(l).unwrap(), 1, IP_A, l, 10)).collect();
        assert_eq!(find_bursts(&seven, &rule), vec![true; 7]);
        assert_eq!(find_bursts(&seven[..6], &rule), vec![false; 6]);
        assert_eq!(BurstRule { min_fraction: f64::NAN, ..rule }.threshold(10), 2);
        assert_eq!(BurstRule { min_fraction: 1e300, ..rule }.threshold(10), u32::MAX);
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(find_bursts(&[], &RULE).is_empty());
    }

    /// The definition, checked directly: O(n^2) over candidate window starts.
    fn bursts_by_definition(events: &[BurstInput], rule: &BurstRule) -> Vec<bool> {
        let window = rule.window_ms.max(0);
        events
            .iter()
            .map(|e| {
                let peers: Vec<&BurstInput> = events.iter().filter(|o| o.letter == e.letter && o.ip == e.ip).collect();
                let links = peers.iter().map(|o| o.letter_links).max().unwrap_or(0);
                let need = rule.threshold(links) as usize;
                peers.iter().map(|s| s.at_ms).filter(|&s| s <= e.at_ms && e.at_ms <= s + window).any(|start| {
                    let mut distinct: Vec<u64> =
                        peers.iter().filter(|o| start <= o.at_ms && o.at_ms <= start + window).map(|o| o.link).collect();
                    distinct.sort_unstable();
                    distinct.dedup();
                    distinct.len() >= need
                })
            })
            .collect()
    }

    proptest! {
        #[test]
        fn find_bursts_matches_the_definition(
            // Times and windows on a 100 ms grid, so window ends often land exactly on hits.
            raw in prop::collection::vec((0i64..40, 0u64..3, 0u8..3, 0u64..6, 1u32..7), 0..40),
            window_steps in 0i64..20,
            min_links in 0u32..5,
            min_fraction in 0.0f64..1.0,
        ) {
            let events: Vec<_> = raw.iter().map(|&(step, letter, ip, link, links)| {
                let mut addr = IP_A;
                addr[15] = ip;
                hit(step * 100, letter, addr, link, links)
            }).collect();
            let rule = BurstRule { window_ms: window_steps * 100, min_links, min_fraction };
            prop_assert_eq!(find_bursts(&events, &rule), bursts_by_definition(&events, &rule));
        }
    }

    #[test]
    fn near_mint_boundaries() {
        let mint = 1_700_000_000_000;
        assert!(near_mint(mint, mint, 10_000));
        assert!(near_mint(mint + 10_000, mint, 10_000));
        assert!(!near_mint(mint + 10_001, mint, 10_000));
        assert!(near_mint(mint - 1, mint, 10_000), "before the mint is clock skew: near");
        assert!(near_mint(mint - 86_400_000, mint, 10_000));
        assert!(near_mint(mint, mint, 0));
        assert!(!near_mint(mint + 1, mint, 0));
        assert!(!near_mint(mint + 1, mint, -5), "a negative window is 0");
        assert!(!near_mint(i64::MAX, i64::MIN, i64::MAX - 1), "no overflow");
        assert!(near_mint(i64::MIN, i64::MAX, 0), "no overflow");
    }
}
