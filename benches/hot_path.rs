//! Criterion benches for the hot paths: verifying a token (every redirect),
//! a cache hit (every warm redirect), classifying the hit's user agent
//! (every redirect), minting tokens (every mint) and URL validation (every
//! minted link).
//!
//! Run: `cargo bench --bench hot_path`. Results are written down in
//! `loadtests/RESULTS.md`; nothing here asserts a speed.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linktrack::cache::{CachedLink, LinkCache};
use linktrack::day::Day;
use linktrack::events::Method;
use linktrack::events::classify::Classifier;
use linktrack::link::{LinkIds, LinkKind, validate_url};
use linktrack::token::{self, KeyRing};

const KEYS: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn hot_path(c: &mut Criterion) {
    let keys = KeyRing::parse(KEYS).expect("keys");
    let today = Day(2517);
    let mut minted = Vec::new();
    token::generate(&keys, today, 10_000, &mut minted);
    let tok = minted[0].0;

    c.bench_function("token_parse_valid", |b| b.iter(|| token::parse(black_box(tok.as_str().as_bytes()), &keys, today)));
    // What the service mints now: the same checks plus one AES block decryption.
    let mut v2 = Vec::new();
    token::generate_v2(&keys, today, 1_000_000, 1, &mut v2);
    let tok_v2 = v2[0].0;
    c.bench_function("token_parse_valid_v2", |b| b.iter(|| token::parse(black_box(tok_v2.as_str().as_bytes()), &keys, today)));
    let mut forged = tok.as_str().as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    c.bench_function("token_parse_forged", |b| b.iter(|| token::parse(black_box(&forged), &keys, today)));

    let cache = LinkCache::new(64 << 20);
    let location = Bytes::from_static(b"https://shop.example/item/123?utm_source=mail&utm_campaign=spring");
    for (i, (_, random)) in minted.iter().enumerate() {
        let ids = LinkIds { letter_id: i as u64 / 10, url_id: 1 };
        cache.insert(today, *random, CachedLink { kind: LinkKind::Click, location: location.clone(), ids });
    }
    let mut i = 0usize;
    c.bench_function("cache_get_hit", |b| {
        b.iter(|| {
            i = (i + 1) % minted.len();
            cache.get(today, black_box(&minted[i].1))
        });
    });

    let classifier = Classifier::new();
    let browser = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    let bot = b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    c.bench_function("classify_browser_ua", |b| b.iter(|| classifier.at_capture(LinkKind::Click, Method::Get, black_box(browser))));
    c.bench_function("classify_bot_ua", |b| b.iter(|| classifier.at_capture(LinkKind::Click, Method::Get, black_box(bot))));
    c.bench_function("classify_no_ua", |b| b.iter(|| classifier.at_capture(LinkKind::Click, Method::Get, black_box(b""))));
    // The bot list itself: more distinct user agents than the classifier
    // remembers (16 Ki), cycled, so every call misses its memo and runs the
    // pattern match. Browser user agents (the common case, which must scan
    // the whole string) with a changing build number.
    let fresh: Vec<Vec<u8>> = (0..40_000)
        .map(|i| {
            format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.{i}.0 Safari/537.36")
                .into_bytes()
        })
        .collect();
    let mut j = 0usize;
    c.bench_function("classify_browser_ua_uncached", |b| {
        b.iter(|| {
            j = (j + 1) % fresh.len();
            classifier.at_capture(LinkKind::Click, Method::Get, black_box(&fresh[j]))
        });
    });

    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1000));
    let mut out = Vec::with_capacity(1000);
    group.bench_function("generate_1000_tokens", |b| {
        b.iter(|| {
            out.clear();
            token::generate(&keys, today, 1000, &mut out);
        });
    });
    group.bench_function("generate_1000_tokens_v2", |b| {
        b.iter(|| {
            out.clear();
            token::generate_v2(&keys, today, 1_000_000, 1000, &mut out);
        });
    });
    group.finish();

    // What every warm redirect records: its latency and status, and two cache lookups.
    let http_metrics = linktrack::http::metrics::HttpMetrics::new();
    c.bench_function("metrics_per_warm_redirect", |b| {
        b.iter(|| {
            http_metrics.cache(black_box("link"), true);
            http_metrics.observe(black_box("redirect"), 302, std::time::Duration::from_micros(40));
        });
    });

    c.bench_function("validate_url", |b| {
        b.iter(|| validate_url(black_box("https://shop.example/item/123?utm_source=mail&utm_campaign=spring")));
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
