//! Measurement tool, not part of the service: what the redirect's link cache
//! costs in memory. It fills the service's own `LinkCache` (with the
//! service's default budget, `--cache-bytes` 256 MiB, unless told otherwise)
//! with N links shaped like real ones and reports the process's resident set
//! growth (`/proc/self/statm`), per cached link, next to the bytes the cache
//! accounts for itself and how many entries it kept.
//!
//! Shape: links as a send mints them. Letters of `--links-per-letter` (10)
//! click links to the URLs of one of 1000 mailings; each URL is a real-looking
//! shop link with UTM parameters, about 100 bytes (`--url-bytes` pads or cuts
//! it). Entries are inserted the way a cold resolve inserts them: one fresh
//! copy of the URL per link (`--share-per-letter` shares one copy across a
//! letter's links to the same URL, as the mint path does). Keys are random v2
//! blocks on one day.
//!
//! ```sh
//! cargo run --release --example cache_rss -- --entries 1000000
//! cargo run --release --example cache_rss -- --entries 1000000 --url-bytes 200
//! ```
//!
//! Prints `key=value` lines; `fits=yes` when all N links stayed cached and the
//! resident growth is at most the budget.

use std::time::Instant;

use bytes::Bytes;
use linktrack::cache::{CachedLink, LinkCache};
use linktrack::day::Day;
use linktrack::link::{LinkIds, LinkKind};
use linktrack::token::Random;
use rand::RngExt;

struct Args {
    entries: usize,
    budget: usize,
    url_bytes: usize,
    links_per_letter: usize,
    share_per_letter: bool,
}

fn parse_args() -> Args {
    let mut a = Args { entries: 1_000_000, budget: 256 << 20, url_bytes: 0, links_per_letter: 10, share_per_letter: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--entries" => a.entries = num("--entries"),
            "--cache-bytes" => a.budget = num("--cache-bytes"),
            "--url-bytes" => a.url_bytes = num("--url-bytes"),
            "--links-per-letter" => a.links_per_letter = num("--links-per-letter").max(1),
            "--share-per-letter" => a.share_per_letter = true,
            _ => {
                eprintln!("usage: cache_rss [--entries N] [--cache-bytes B] [--url-bytes N] [--links-per-letter N] [--share-per-letter]");
                std::process::exit(2)
            }
        }
    }
    a
}

/// Resident set size in bytes, from `/proc/self/statm` (pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A mailing's link number `i`: a shop URL with UTM parameters.
fn url(mailing: usize, i: usize, pad_to: usize) -> String {
    let mut u = format!(
        "https://shop.example-retailer.com/collections/autumn/products/item-{:06}?utm_source=newsletter&utm_medium=email&utm_campaign=m-{mailing}",
        mailing * 31 + i
    );
    if pad_to > 0 {
        while u.len() < pad_to {
            u.push_str("&x=1");
        }
        u.truncate(pad_to);
    }
    u
}

#[allow(clippy::cast_precision_loss, reason = "byte and entry counts far below 2^52")]
fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}

fn main() {
    let a = parse_args();
    let mut rng = rand::rng();
    let day = Day(2160);
    let before = rss_bytes();
    let cache = LinkCache::new(a.budget);
    let started = Instant::now();
    let mut url_total = 0usize;
    let mut inserted = 0usize;
    let mut letter = 0usize;
    while inserted < a.entries {
        let mailing = letter % 1000;
        let shared: Vec<Bytes> = (0..a.links_per_letter).map(|i| Bytes::copy_from_slice(url(mailing, i, a.url_bytes).as_bytes())).collect();
        for location in &shared {
            if inserted == a.entries {
                break;
            }
            let location = if a.share_per_letter { location.clone() } else { Bytes::copy_from_slice(location) };
            url_total += location.len();
            let random = Random(rng.random());
            cache.insert(
                day,
                random,
                CachedLink { kind: LinkKind::Click, location, ids: LinkIds { letter_id: letter as u64, url_id: inserted as u64 } },
            );
            inserted += 1;
        }
        letter += 1;
    }
    let after = rss_bytes();
    let kept = cache.len();
    let grown = after.saturating_sub(before);
    println!("entries_inserted={inserted}");
    println!("entries_kept={kept}");
    println!("budget_bytes={}", a.budget);
    println!("accounted_bytes={}", cache.bytes());
    println!("mean_url_bytes={:.1}", ratio(url_total, inserted));
    println!("rss_before={before} rss_after={after} rss_growth={grown}");
    println!("rss_growth_mib={:.1}", ratio(grown, 1 << 20));
    println!("rss_per_cached_link={:.1}", ratio(grown, kept));
    println!("fill_secs={:.2}", started.elapsed().as_secs_f64());
    println!("fits={}", if kept == inserted && grown <= a.budget { "yes" } else { "no" });
}
