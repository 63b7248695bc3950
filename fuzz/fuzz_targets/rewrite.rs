//! Fuzz the whole-letter rewriter with arbitrary bytes as HTML (lossily
//! decoded as UTF-8, as the API only takes JSON strings): `scan` and
//! `render` never panic, and the output is the input with exactly the
//! tracked `href` values replaced, the `data-linktrack` attributes cut out
//! and the pixel inserted, byte for byte everywhere else. Every replaced
//! range must be an attribute value that decodes to its link's URL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use linktrack::rewrite::{Rules, render, scan};

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let rules = Rules { exclude_domains: vec!["skip.example".into()], track_unsubscribe: data.len() % 2 == 0, max_links: 1000 };
    let Ok(found) = scan(&html, &rules) else { return };
    let tracking: Vec<String> = (0..found.links.len()).map(|i| format!("https://t.example/c/T{i}")).collect();
    let pixel = "https://t.example/o/P";
    let out = render(&html, &found, &tracking, Some(pixel));

    // The expected output, built from the ranges alone.
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (link, t) in found.links.iter().zip(&tracking) {
        let r = link.value_range();
        let raw = &html[r.clone()];
        let decoded = htmlize::unescape_attribute(raw);
        assert_eq!(decoded.trim_matches(|c: char| c <= ' '), link.url, "range {r:?} is not the link's value");
        if link.quoted() {
            let q = html.as_bytes()[r.start - 1];
            assert!(q == b'"' || q == b'\'');
            assert_eq!(html.as_bytes().get(r.end), Some(&q), "quoted value does not end at its quote");
        }
        edits.push((r, t.clone()));
    }
    for r in found.removals() {
        assert!(html[r.clone()].trim_start().get(..14).is_some_and(|n| n.eq_ignore_ascii_case("data-linktrack")), "removal {r:?}");
        edits.push((r.clone(), String::new()));
    }
    let at = found.pixel_at();
    edits.push((at..at, linktrack::rewrite::pixel_tag(pixel)));
    edits.sort_by_key(|(r, _)| r.start);
    let mut want = String::new();
    let mut pos = 0;
    for (r, text) in edits {
        if r.start < pos {
            // render skips an overlapping edit the same way.
            continue;
        }
        want.push_str(&html[pos..r.start]);
        want.push_str(&text);
        pos = r.end;
    }
    want.push_str(&html[pos..]);
    assert_eq!(out, want);
});
