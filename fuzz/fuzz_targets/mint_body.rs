//! Fuzz the mint body as `POST /v1/links` reads it (`http::mint::parse`:
//! JSON, then the field and URL rules). It never panics; a refusal is a
//! `400` (not JSON) or `422` (a rule); and whatever it accepts is what may
//! be stored: every URL is already in its normalised form (normalising it
//! again changes nothing), ASCII without controls or userinfo, and the
//! letter fields keep their limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use linktrack::http::mint;
use linktrack::link::{self, MAX_MAILING_ID_BYTES, MAX_META_BYTES, MAX_RECIPIENT_BYTES};

/// A small link limit, so the fuzzer reaches it.
const MAX_LINKS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let parsed = match mint::parse(data, MAX_LINKS) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e.status.as_u16(), 400 | 422), "refused with {}: {}", e.status, e.message);
            return;
        }
    };
    let req = &parsed.req;
    assert!(!req.mailing_id.trim().is_empty() && req.mailing_id.len() <= MAX_MAILING_ID_BYTES);
    assert!(!req.mailing_id.chars().any(char::is_control));
    assert!(!req.recipient.is_empty() && req.recipient.len() <= MAX_RECIPIENT_BYTES);
    assert!(req.links.len() <= MAX_LINKS && (req.pixel || !req.links.is_empty()));
    assert_eq!(parsed.urls.len(), req.links.len());
    for url in &parsed.urls {
        assert_eq!(link::normalize_url(url).as_deref(), Ok(url.as_str()), "stored form is not a fixed point");
        assert!(url.is_ascii() && !url.bytes().any(|b| b.is_ascii_control()), "{url:?}");
        let u = url::Url::parse(url).expect("stored URL parses");
        assert!(u.username().is_empty() && u.password().is_none(), "userinfo kept: {url:?}");
    }
    if let Some(meta) = &parsed.meta {
        assert!(meta.len() <= MAX_META_BYTES);
        let v: serde_json::Value = serde_json::from_str(meta).expect("meta is JSON");
        assert!(v.is_object());
    }
});
