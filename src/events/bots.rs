//! The known-bot user-agent list: which user agents are crawlers, link
//! previewers, monitors, HTTP clients, archivers or scanners. It owns the
//! vendored pattern file and its compiled form; `classify` decides what a
//! match means for an event (image proxies and the Apple privacy prefetch
//! are carved out there).
//!
//! The patterns are those of the npm package `isbot` by Omri Lotan, The
//! Unlicense (a public-domain dedication), <https://github.com/omrilotan/isbot>,
//! vendored in `bot_patterns.txt` (its header names the version and every
//! pattern rewritten or dropped) and refreshed by `scripts/refresh-bot-lists`.
//! Rust's `regex` has no look-around, so that script rewrites isbot's six
//! look-around patterns into equivalent consuming groups and checks each
//! against JavaScript's engine. Two local patterns are added
//! ([`SUPPLEMENTARY_BOT_PATTERNS`]). Coverage is measured by
//! `tests/bot_coverage.rs` and written down in `docs/bots.md`.
//!
//! All patterns are compiled once into one [`RegexSet`] over bytes, ASCII
//! case-insensitive: one pass over the user agent, no lowercased copy, no
//! per-pattern loop, and no UTF-8 requirement.

use std::sync::LazyLock;

use regex::bytes::{RegexSet, RegexSetBuilder};

/// The vendored pattern file: `#` lines are its header, every other line one pattern.
const PATTERN_FILE: &str = include_str!("bot_patterns.txt");

/// Patterns added to isbot's list. Each names a real user agent; keep this
/// list short and cite every entry. Both are matched by isbot 5.2.3 already
/// (through its generic "name and version only" pattern) when they arrive
/// bare; these keep them matched when wrapped in a browser-like string.
///
/// - `barracuda sentinel`: Barracuda's email-protection service fetches links
///   as `Barracuda Sentinel (EE)`. Braze's bot-click filtering documentation
///   gives that exact string as a filtered example, and Matomo Device Detector
///   lists "Barracuda Sentinel" among its known bots.
/// - `microsoft office existence discovery`: Microsoft documents this user
///   agent ("Description of the Microsoft Office Existence Discovery
///   Protocol", Office developer blog, 2008): Office apps send it on a `HEAD`
///   probe of a URL before handing it to the browser. The person's own browser
///   hit follows separately, so the probe must not count. (Usually a `HEAD`,
///   so already a bot by method; the pattern makes the reason specific and
///   covers a `GET`.)
///
/// Deliberately not added: `ms-office` / `MSOffice`. Outlook for Windows
/// renders mail through Word and loads images with an Internet Explorer user
/// agent ending in `Microsoft Outlook 16.0.x; ms-office; MSOffice 16)`: those
/// are real opens. Mimecast and Proofpoint URL scanners are not here either:
/// no distinctive user agent could be substantiated (they mostly present
/// browser strings), so the burst and near-mint rules (`events::burst`) are
/// what catch them.
pub const SUPPLEMENTARY_BOT_PATTERNS: [&str; 2] = ["barracuda sentinel", "microsoft office existence discovery"];

/// The patterns of the vendored file, in order.
pub fn vendored_patterns() -> impl Iterator<Item = &'static str> {
    PATTERN_FILE.lines().filter(|l| !l.starts_with('#') && !l.is_empty())
}

/// Every pattern matched: the vendored ones, then the supplement (escaped, as literals).
fn all_patterns() -> Vec<String> {
    vendored_patterns().map(str::to_owned).chain(SUPPLEMENTARY_BOT_PATTERNS.iter().map(|p| regex::escape(p))).collect()
}

/// Compiled once per process: building the set takes milliseconds.
static COMPILED: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSetBuilder::new(all_patterns())
        .case_insensitive(true)
        .unicode(false)
        .build()
        // The file is vendored and `every_pattern_compiles` checks each line.
        .expect("bot_patterns.txt compiles in Rust's regex dialect")
});

/// The compiled list. Cheap to clone (the compiled program is shared).
#[derive(Clone)]
pub struct BotList {
    set: RegexSet,
}

impl std::fmt::Debug for BotList {
    // The derived form would print every pattern.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotList").field("patterns", &self.set.len()).finish()
    }
}

impl Default for BotList {
    fn default() -> Self {
        BotList::new()
    }
}

impl BotList {
    /// The vendored list plus the supplement; compiled on first use in the process.
    pub fn new() -> BotList {
        BotList { set: COMPILED.clone() }
    }

    /// Number of patterns (vendored plus supplement).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Never true: the list is vendored and tested non-empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether any pattern matches anywhere in `user_agent`, ignoring ASCII
    /// case. Takes bytes: a user agent that is not UTF-8 needs no conversion.
    pub fn is_bot(&self, user_agent: &[u8]) -> bool {
        self.set.is_match(user_agent)
    }

    /// The patterns that match `user_agent`, for diagnostics (slower than [`BotList::is_bot`]).
    pub fn matching(&self, user_agent: &[u8]) -> Vec<&str> {
        self.set.matches(user_agent).iter().map(|i| self.set.patterns()[i].as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use regex::bytes::RegexBuilder;

    use super::*;

    #[test]
    fn every_pattern_compiles() {
        let bad: Vec<String> =
            all_patterns().into_iter().filter(|p| RegexBuilder::new(p).case_insensitive(true).unicode(false).build().is_err()).collect();
        assert!(bad.is_empty(), "patterns Rust's regex rejects: {bad:?}");
    }

    /// The header states how many patterns the file holds; the file must agree.
    #[test]
    fn header_counts_match_the_file() {
        let header = PATTERN_FILE.lines().find(|l| l.contains("patterns in the source")).expect("count line in the header");
        // "# 206 patterns in the source, 206 here:"
        let here: usize = header.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).expect("count");
        assert_eq!(vendored_patterns().count(), here, "{header}");
        assert!(here > 150, "the vendored list looks truncated: {here} patterns");
        assert!(PATTERN_FILE.contains("Licence: The Unlicense"), "the header names the licence");
        assert_eq!(BotList::new().len(), here + SUPPLEMENTARY_BOT_PATTERNS.len());
    }

    /// Each of the six rewritten look-around patterns, on both sides of its
    /// exception, appended to a browser string no other pattern matches. The
    /// expected answers are those of isbot 5.2.3's own `isbot()` in Node.js.
    #[test]
    fn rewritten_look_arounds_keep_their_exceptions() {
        const BROWSER: &str = "Mozilla/5.0 (Linux; Android 12; K) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36";
        let bots = BotList::new();
        assert!(!bots.is_bot(BROWSER.as_bytes()));
        for (tail, bot) in [
            (" scan", true),
            (" camscan", false),
            (" robot", true),
            (" cubot", false),
            (" http", true),
            (" libhttp", false),
            (" java", true),
            (" java;", false),
            (" news", true),
            (" newssapphire", false),
            (" google", true),
            (" googlewv", false),
            (" google/google", false),
            (" channel/google", false),
        ] {
            let ua = format!("{BROWSER}{tail}");
            assert_eq!(bots.is_bot(ua.as_bytes()), bot, "{ua}: {:?}", bots.matching(ua.as_bytes()));
        }
    }

    #[test]
    fn matching_names_the_patterns() {
        let bots = BotList::new();
        // isbot catches curl through its generic "a name and a version only" pattern.
        assert!(!bots.matching(b"curl/8.5.0").is_empty());
        assert!(bots.matching(b"Barracuda Sentinel (EE)").contains(&"barracuda sentinel"));
        assert!(bots.matching(b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36").is_empty());
    }

    #[test]
    fn debug_is_short() {
        assert_eq!(format!("{:?}", BotList::new()), format!("BotList {{ patterns: {} }}", BotList::new().len()));
    }
}
