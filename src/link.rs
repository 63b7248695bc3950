//! The domain floor: what a link is, the letter it belongs to, a mint
//! batch and what storing it did, a resolved link, the rules a destination
//! URL and the letter fields must pass, and the one truncated digest the
//! crate uses. HTTP, the stores, the cache and events all speak these
//! types, so they live here, below all of them.
//!
//! This module imports only `day`, `tenant` and `token` from the crate: no store, no
//! events, no cache, no HTTP, no configuration (`scripts/check-layers`).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::day::Day;
use crate::tenant::TenantId;
use crate::token::{Random, Token, Version};

/// Longest destination URL a mint accepts, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest mailing id, in bytes (a mint's `mailing_id`, and the stats path segment).
pub const MAX_MAILING_ID_BYTES: usize = 255;
/// Longest recipient, in bytes.
pub const MAX_RECIPIENT_BYTES: usize = 320;
/// Longest `meta`, as compact JSON text, in bytes.
pub const MAX_META_BYTES: usize = 8192;

/// What a link points at. Stored as its integer value; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LinkKind {
    /// A tracked click: `/c/<token>` redirects to the minted URL.
    Click = 1,
    /// An open pixel: `/o/<token>` answers a 1x1 GIF.
    Open = 2,
}

impl LinkKind {
    pub fn from_u8(v: u8) -> Option<LinkKind> {
        match v {
            1 => Some(LinkKind::Click),
            2 => Some(LinkKind::Open),
            _ => None,
        }
    }
}

/// The letter a batch of links belongs to: recipient and mailing, stored
/// once per mint request, never once per link.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Whose letter it is: the tenant of the key that minted it.
    pub tenant: TenantId,
    pub mailing_id: String,
    pub recipient: String,
    /// Compact JSON text of the request's `meta`, if any.
    pub meta: Option<String>,
    /// Unix seconds of the mint.
    pub minted_at: i64,
    /// Click links in the letter (the burst rule compares hits against it).
    pub click_links: u32,
}

/// One link to store.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub kind: LinkKind,
    pub random: Random,
    pub token: Token,
    /// The destination; `None` for the open pixel.
    pub url: Option<Arc<str>>,
    /// Where the link sits in its letter ([`stored_position`]); [`NO_POSITION`] for the pixel.
    pub position: u16,
}

/// The stored position of a link that has none: the open pixel, and links
/// minted before positions were recorded.
pub const NO_POSITION: u16 = u16::MAX;

/// A link's position as stored: its 0-based order in the letter (request
/// order for `POST /v1/links`, document order for a rewrite), capped at
/// 65534 so it fits two bytes next to [`NO_POSITION`].
pub fn stored_position(position: usize) -> u16 {
    u16::try_from(position).unwrap_or(NO_POSITION).min(NO_POSITION - 1)
}

/// A stored position as the API shows it: `None` for [`NO_POSITION`].
pub fn shown_position(stored: u16) -> Option<u16> {
    (stored != NO_POSITION).then_some(stored)
}

/// Idempotency for one mint: scoped by API key, checked against the body.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency {
    /// SHA-256 of (API key, Idempotency-Key), truncated to 16 bytes.
    pub key_hash: [u8; 16],
    /// SHA-256 of the request body, truncated to 16 bytes.
    pub body_hash: [u8; 16],
}

/// One mint request, ready to store.
#[derive(Debug, Clone)]
pub struct MintBatch {
    pub day: Day,
    /// The token format of every link: v2 (what the service mints) stores
    /// each link under the id its token hides; v1 under its random bits.
    pub version: Version,
    pub letter: Letter,
    /// Links in request order; the pixel, if any, is last.
    pub links: Vec<NewLink>,
    pub idempotency: Option<Idempotency>,
}

/// What a mint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintOutcome {
    /// The batch was stored durably: each link's [`LinkIds`], in batch order.
    Stored(Vec<LinkIds>),
    /// The idempotency key was seen before with the same body: these are the
    /// tokens minted then, in request order (pixel last), and nothing new was stored.
    Replayed(Vec<String>),
}

/// Where a stored link's letter and URL rows are: their ids in the link's
/// own day, as its link row holds them. The event of a hit carries them, so
/// the rollup and the export read the letter and the URL by primary key
/// instead of looking the link up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkIds {
    pub letter_id: u64,
    /// `0` for the open pixel, which has no URL (as in the link row).
    pub url_id: u64,
}

/// A link found by its token: what the redirect needs to answer it, and
/// what its event needs to name the link's letter and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kind: LinkKind,
    /// The destination; `None` for the open pixel.
    pub url: Option<Arc<str>>,
    /// Read from the same link row as `kind`, at no extra cost.
    pub ids: LinkIds,
}

/// The form of a destination URL that is stored and sent in `Location`, or
/// why it is refused. A URL of printable ASCII is kept exactly as sent
/// (senders sign query strings; `'` or a missing `/` must not change). One
/// with other characters is stored in the WHATWG serialisation of the `url`
/// crate: an IDN host in punycode, non-ASCII characters in path, query and
/// fragment percent-encoded. Either way a redirect sends printable ASCII
/// that the minting client chose, never bytes a browser could read two ways
/// (`U+2028`, `U+202E`). URLs with userinfo
/// (`https://good.example@evil.example/`, a phishing pattern) are refused.
pub fn normalize_url(url: &str) -> Result<String, String> {
    validate_url(url)?;
    let parsed = url::Url::parse(url).map_err(|e| format!("url is not absolute: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not contain a user name or password (user@host)".into());
    }
    if url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Ok(url.to_owned());
    }
    let out = String::from(parsed);
    if out.len() > MAX_URL_BYTES {
        return Err(format!("url is {} bytes once percent-encoded; the limit is {MAX_URL_BYTES}", out.len()));
    }
    Ok(out)
}

/// Why a destination URL is refused, or `Ok` (see [`normalize_url`] for the form that is stored).
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("url is empty".into());
    }
    if url.len() > MAX_URL_BYTES {
        return Err(format!("url is {} bytes; the limit is {MAX_URL_BYTES}", url.len()));
    }
    if let Some(b) = url.bytes().find(|b| *b <= b' ' || *b == 0x7f) {
        return Err(format!("url contains a control or whitespace character (0x{b:02x})"));
    }
    if url.contains('\\') {
        return Err("url contains a backslash".into());
    }
    // The raw text must carry an authority: parsers "repair" `https:///host` and
    // `https:host` into `https://host/`, but only the repaired form is a real URL.
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err("url must start with http:// or https://".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("url has no host".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("url is not absolute: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url scheme must be http or https, not {:?}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url has no host".into());
    }
    Ok(())
}

/// First 16 bytes of SHA-256(url): the per-day dedup key of stored URLs, in every backend.
pub fn url_hash(url: &str) -> [u8; 16] {
    first16(&Sha256::digest(url.as_bytes()))
}

/// The first 16 bytes of SHA-256 over length-prefixed `parts`: the one
/// truncated digest the crate uses (URL dedup keys, idempotency keys).
pub fn hash16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    first16(&h.finalize())
}

fn first16(digest: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(validate_url("https://example.com/a?b=c#d").is_ok());
        assert!(validate_url("http://example.com").is_ok());
        assert!(validate_url("HTTPS://Example.com/Path").is_ok());
        for bad in [
            "javascript:alert(1)",
            "/relative/path",
            "example.com/no-scheme",
            "https://example.com/\r\nSet-Cookie: x",
            "https://exa mple.com/",
            "ftp://example.com/file",
            "https:///nohost",
            "https:nohost.example/",
            "https:\\\\evil.example/",
            "HTTPS://",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(validate_url(&long).unwrap_err().contains("limit"));
    }

    #[test]
    fn ascii_urls_are_kept_and_others_normalised() {
        let cases = [
            ("HTTPS://Example.COM/Path?q='1'", "HTTPS://Example.COM/Path?q='1'"),
            ("https://bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
            ("https://a.example/x\u{2028}y?z=\u{202e}", "https://a.example/x%E2%80%A8y?z=%E2%80%AE"),
            ("https://a.example/\u{85}", "https://a.example/%C2%85"),
            ("http://a.example", "http://a.example"),
            ("https://a.example:443/a/../b", "https://a.example:443/a/../b"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_url(input).as_deref(), Ok(want), "{input:?}");
        }
        for userinfo in ["https://good.example@evil.example/", "https://user:pw@a.example/", "https://:pw@a.example/"] {
            assert!(normalize_url(userinfo).unwrap_err().contains("user name"), "{userinfo:?}");
        }
        let expands = format!("https://a.example/{}", "é".repeat(700));
        assert!(normalize_url(&expands).unwrap_err().contains("percent-encoded"));
    }

    proptest::proptest! {
        /// Whatever a client sends, what can reach `Location` is printable
        /// ASCII (so a valid header value) with no userinfo, and already normal.
        #[test]
        fn normalized_urls_are_safe_and_stable(path in "\\PC{0,40}", host in "[a-zA-Z0-9ä-]{1,12}") {
            let input = format!("https://{host}.example/{path}");
            if let Ok(out) = normalize_url(&input) {
                proptest::prop_assert!(out.bytes().all(|b| (0x21..0x7f).contains(&b)), "{out:?}");
                let parsed = url::Url::parse(&out).unwrap();
                proptest::prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
                proptest::prop_assert_eq!(normalize_url(&out), Ok(out.clone()));
            }
        }
    }

    #[test]
    fn link_kinds_are_fixed_numbers() {
        assert_eq!(LinkKind::Click as u8, 1);
        assert_eq!(LinkKind::Open as u8, 2);
        assert_eq!(LinkKind::from_u8(1), Some(LinkKind::Click));
        assert_eq!(LinkKind::from_u8(2), Some(LinkKind::Open));
        assert_eq!(LinkKind::from_u8(0), None);
    }
}
