//! Bot, scanner and proxy classification of click and open events. This module
//! owns the stored enums ([`Verdict`], [`Reason`], [`Method`]) and their fixed
//! numbers, and the capture-time [`Classifier`] (user agent, HTTP method, link
//! kind). The rollup-time rules that may upgrade a reason later live in
//! `events::burst`. It is pure: no I/O, no clock, nothing is dropped.
//!
//! Known-bot user agents come from `events::bots`: the pattern list of the npm
//! package `isbot` (The Unlicense), vendored and refreshed by
//! `scripts/refresh-bot-lists`, plus two local patterns. This module carves
//! out what that list calls a bot but linktrack counts otherwise: mail
//! providers' image proxies on opens ([`IMAGE_PROXY_MARKERS`]) and the bare
//! `Mozilla/5.0` of Apple Mail Privacy Protection.

use std::fmt;

use crate::events::bots::BotList;
use crate::link::LinkKind;
use crate::sharded_lru::ShardedLru;

/// How an event is counted. Stored as its integer value; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verdict {
    /// Counted as a person.
    Human = 1,
    /// Counted as a machine.
    Bot = 2,
    /// Probably a machine, but not certainly: reported separately.
    Suspect = 3,
}

impl Verdict {
    /// Every verdict, in numeric order.
    pub const ALL: [Verdict; 3] = [Verdict::Human, Verdict::Bot, Verdict::Suspect];

    /// The stored number.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Verdict> {
        match v {
            1 => Some(Verdict::Human),
            2 => Some(Verdict::Bot),
            3 => Some(Verdict::Suspect),
            _ => None,
        }
    }

    /// `"human"`, `"bot"` or `"suspect"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Bot => "bot",
            Verdict::Suspect => "suspect",
        }
    }
}

/// Why an event got its verdict: exactly one per event, the strongest that
/// applies (see [`Reason::stronger`]). Stored as its integer value; never
/// renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Nothing suspicious.
    None = 0,
    /// The user agent is a known bot, crawler, link checker or scanner.
    BotUserAgent = 1,
    /// A `HEAD` request: browsers never send one when a person follows a link.
    HeadRequest = 2,
    /// One client hit most of a letter's click links within seconds.
    LetterBurst = 3,
    /// The hit came within seconds of the letter's mint.
    NearMint = 4,
    /// Apple Mail Privacy Protection prefetch (bare `Mozilla/5.0` user agent).
    PrivacyProxy = 5,
    /// A mail provider's image proxy fetching the pixel when the person opens.
    ImageProxy = 6,
    /// No user agent at all.
    EmptyUserAgent = 7,
}

impl Reason {
    /// Every reason, in numeric order.
    pub const ALL: [Reason; 8] = [
        Reason::None,
        Reason::BotUserAgent,
        Reason::HeadRequest,
        Reason::LetterBurst,
        Reason::NearMint,
        Reason::PrivacyProxy,
        Reason::ImageProxy,
        Reason::EmptyUserAgent,
    ];

    /// The stored number.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Reason> {
        match v {
            0 => Some(Reason::None),
            1 => Some(Reason::BotUserAgent),
            2 => Some(Reason::HeadRequest),
            3 => Some(Reason::LetterBurst),
            4 => Some(Reason::NearMint),
            5 => Some(Reason::PrivacyProxy),
            6 => Some(Reason::ImageProxy),
            7 => Some(Reason::EmptyUserAgent),
            _ => None,
        }
    }

    /// The `snake_case` name used in reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::BotUserAgent => "bot_user_agent",
            Reason::HeadRequest => "head_request",
            Reason::LetterBurst => "letter_burst",
            Reason::NearMint => "near_mint",
            Reason::PrivacyProxy => "privacy_proxy",
            Reason::ImageProxy => "image_proxy",
            Reason::EmptyUserAgent => "empty_user_agent",
        }
    }

    /// The verdict this reason implies: `BotUserAgent`, `HeadRequest` and
    /// `LetterBurst` are bots; `PrivacyProxy` (Apple Mail Privacy Protection
    /// prefetch), `NearMint` and `EmptyUserAgent` are suspect; `ImageProxy`
    /// (e.g. Gmail's `GoogleImageProxy`, which fetches when the person opens:
    /// a real open, flagged but not counted as a bot) and `None` are human.
    pub fn verdict(self) -> Verdict {
        match self {
            Reason::BotUserAgent | Reason::HeadRequest | Reason::LetterBurst => Verdict::Bot,
            Reason::PrivacyProxy | Reason::NearMint | Reason::EmptyUserAgent => Verdict::Suspect,
            Reason::ImageProxy | Reason::None => Verdict::Human,
        }
    }

    /// Position in the precedence order, 0 strongest. Deliberately not the
    /// stored number, which only ever grows as reasons are added.
    fn rank(self) -> u8 {
        match self {
            Reason::BotUserAgent => 0,
            Reason::HeadRequest => 1,
            Reason::LetterBurst => 2,
            Reason::PrivacyProxy => 3,
            Reason::ImageProxy => 4,
            Reason::NearMint => 5,
            Reason::EmptyUserAgent => 6,
            Reason::None => 7,
        }
    }

    /// The reason that wins when both apply, in this order: `BotUserAgent` >
    /// `HeadRequest` > `LetterBurst` > `PrivacyProxy` > `ImageProxy` >
    /// `NearMint` > `EmptyUserAgent` > `None`. Commutative.
    #[must_use]
    pub fn stronger(self, other: Reason) -> Reason {
        if self.rank() <= other.rank() { self } else { other }
    }
}

/// The HTTP method of a hit. Stored as its integer value; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    Get = 1,
    Head = 2,
}

impl Method {
    /// Every method, in numeric order.
    pub const ALL: [Method; 2] = [Method::Get, Method::Head];

    /// The stored number.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Method> {
        match v {
            1 => Some(Method::Get),
            2 => Some(Method::Head),
            _ => None,
        }
    }

    /// `"GET"` or `"HEAD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// Substrings (ASCII case-insensitive) of mail-provider image proxies, which
/// fetch an open pixel on the reader's behalf when the reader opens the
/// message. The bot list flags all of them, so this check runs first.
///
/// - `GoogleImageProxy`, `ggpht.com`: Gmail, `... (via ggpht.com GoogleImageProxy)`
///   (Matomo Device Detector: "Gmail Image Proxy").
/// - `YahooMailProxy`: Yahoo Mail, `YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html`,
///   the URL being Yahoo's own help page about the proxy.
/// - `SeznamEmailProxy`: Seznam.cz webmail, `Mozilla/5.0 SeznamEmailProxy/1.0.5`
///   (Matomo Device Detector and `WhichBrowser` both name it "Seznam Email Proxy").
/// - `WPImageProxy`: Wirtualna Polska webmail, `... Gecko Firefox/11.0 (via WP.pl WPImageProxy)`,
///   logged beside the three above by an open-source shop's mail-open tracker
///   (the only source found; not named in Matomo).
///
/// For the last two, whether the proxy fetches at open time (like Gmail's) or
/// at delivery has not been verified.
pub const IMAGE_PROXY_MARKERS: [&[u8]; 5] = [b"googleimageproxy", b"ggpht.com", b"yahoomailproxy", b"seznamemailproxy", b"wpimageproxy"];

/// The whole user agent of an Apple Mail Privacy Protection prefetch.
///
/// This is a heuristic from what senders observe, not something Apple
/// documents: with "Protect Mail Activity" on, Apple Mail has Apple's relay
/// (the iCloud Private Relay egress network) download all remote content soon
/// after delivery, opened or not, and those fetches carry the bare user agent
/// `Mozilla/5.0` with no platform tokens. Real browsers and mail clients
/// always send platform tokens; Apple Mail's own, unproxied fetches send
/// `Mozilla/5.0 (Macintosh; ...) AppleWebKit/605.1.15 (KHTML, like Gecko)`
/// and stay `None`. A script or scanner that sends a bare `Mozilla/5.0` is
/// classed the same way, which is acceptable because the verdict is only
/// `Suspect`. A reliable test would also check the client address against
/// Apple's published egress ranges, which this module does not have. The bot
/// list flags this string too (isbot's pattern for a user agent that is only
/// a name and a version); this check overrides it, so it stays `Suspect`.
const APPLE_PRIVACY_PROXY_UA: &[u8] = b"Mozilla/5.0";

/// The capture-time classifier. Build once and share (the bot list is
/// compiled once per process; each classifier has its own memo);
/// [`Classifier::at_capture`] takes `&self`.
pub struct Classifier {
    bots: BotList,
    /// What recent user agents were, by a keyed hash of their bytes: the
    /// same few thousand strings arrive on almost every hit, and a hash and
    /// a lookup cost less than a pass of the bot list over the whole string.
    seen: UaMemo,
}

/// What a user agent alone says, before kind and method are considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UaClass {
    /// A mail provider's image proxy.
    proxy: bool,
    /// On the bot list.
    known_bot: bool,
}

/// User agents remembered (the same few thousand strings cover almost every hit).
const UA_MEMO_ENTRIES: usize = 16 * 1024;

/// [`UaClass`] by user-agent hash. Keys are 64-bit `SipHash` values under a
/// per-process random key, so two different user agents share an entry with
/// probability about 2^-64 per pair.
struct UaMemo {
    hasher: std::hash::RandomState,
    seen: ShardedLru<u64, UaClass>,
}

impl UaMemo {
    fn new() -> UaMemo {
        UaMemo { hasher: std::hash::RandomState::new(), seen: ShardedLru::new(UA_MEMO_ENTRIES) }
    }

    fn get_or(&self, ua: &[u8], classify: impl FnOnce() -> UaClass) -> UaClass {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(ua);
        let spread = key as usize;
        if let Some(c) = self.seen.get(spread, &key) {
            return c;
        }
        // Classified outside the lock: two threads may both classify a new user agent once.
        let c = classify();
        self.seen.put(spread, key, c);
        c
    }
}

impl fmt::Debug for Classifier {
    // The derived form would print the memo.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    pub fn new() -> Classifier {
        Classifier { bots: BotList::new(), seen: UaMemo::new() }
    }

    /// The reason the request alone shows, the strongest that applies:
    ///
    /// 1. `BotUserAgent`: a known bot user agent ([`BotList`]), whatever the
    ///    method, except the bare `Mozilla/5.0` of Apple's privacy prefetch.
    ///    An image proxy's user agent is not a bot on an open, but is on a
    ///    click: a proxy fetching a click link is a machine, not a person
    ///    following it.
    /// 2. `HeadRequest`: any other `HEAD`.
    /// 3. `ImageProxy`: a mail provider's image proxy fetching an open pixel.
    /// 4. `PrivacyProxy`: the bare `Mozilla/5.0` of Apple Mail Privacy Protection.
    /// 5. `EmptyUserAgent`: no user agent, or only whitespace. Pass `b""` when
    ///    the header is missing.
    /// 6. `None` otherwise.
    ///
    /// Cost: a hash of the user agent and a lookup in a small sharded LRU
    /// (about 0.1 µs). A user agent not seen recently also takes a few byte
    /// scans and one pass of the bot list's `RegexSet` over its bytes (no
    /// allocation, no case conversion; a user agent that is not UTF-8 is
    /// matched as it is). The figures are in `docs/bots.md`.
    pub fn at_capture(&self, kind: LinkKind, method: Method, user_agent: &[u8]) -> Reason {
        let ua = user_agent.trim_ascii();
        let UaClass { proxy, known_bot } = if ua.is_empty() {
            UaClass { proxy: false, known_bot: false }
        } else {
            self.seen.get_or(ua, || UaClass {
                proxy: IMAGE_PROXY_MARKERS.iter().any(|m| contains_ignore_ascii_case(ua, m)),
                known_bot: ua != APPLE_PRIVACY_PROXY_UA && self.bots.is_bot(ua),
            })
        };
        let bot = if proxy { kind == LinkKind::Click } else { known_bot };
        if bot {
            Reason::BotUserAgent
        } else if method == Method::Head {
            Reason::HeadRequest
        } else if proxy {
            Reason::ImageProxy
        } else if ua == APPLE_PRIVACY_PROXY_UA {
            Reason::PrivacyProxy
        } else if ua.is_empty() {
            Reason::EmptyUserAgent
        } else {
            Reason::None
        }
    }
}

/// Whether `needle` (lowercase ASCII) occurs in `hay`, ignoring ASCII case.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    // Real user agents, as sent by the named software.
    const CHROME_WIN: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1";
    const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
    const EDGE_WIN: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
    const SAMSUNG_INTERNET: &str = "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36";
    const OUTLOOK_DESKTOP: &str = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)";
    /// Outlook for Windows loading images through its Word/IE renderer: carries `ms-office`.
    const OUTLOOK_IE_RENDERER: &str = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; .NET CLR 2.0.50727; .NET CLR 3.0.30729; .NET CLR 3.5.30729; Microsoft Outlook 16.0.5422; ms-office; MSOffice 16)";
    const THUNDERBIRD: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1";
    /// Apple Mail without Privacy Protection: `AppleWebKit` with no `Safari/` token.
    const APPLE_MAIL_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";
    const ANDROID_WEBVIEW: &str = "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36";

    const BROWSERS: [&str; 10] = [
        CHROME_WIN,
        SAFARI_IOS,
        FIREFOX_LINUX,
        EDGE_WIN,
        SAMSUNG_INTERNET,
        OUTLOOK_DESKTOP,
        OUTLOOK_IE_RENDERER,
        THUNDERBIRD,
        APPLE_MAIL_MAC,
        ANDROID_WEBVIEW,
    ];

    const BOTS: [&str; 22] = [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "W3C-checklink/5.0.0 libwww-perl/6.72",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; urlscan.io-bot/1.0; +https://urlscan.io/about)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        "Wget/1.21.4",
        // What the independent check missed: chat link previewers, uptime
        // monitors, HTTP clients and archivers (each from crawler-user-agents).
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/0.3.4479 N",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "okhttp/2.5.0",
        "axios/0.18.0",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; heritrix/3.1.1-SNAPSHOT-20120116.200628 +http://www.archive.org/details/archive.org_bot)",
        // The supplementary patterns.
        "Barracuda Sentinel (EE)",
        "Microsoft Office Existence Discovery",
    ];

    const GMAIL_PROXY: &str = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    const YAHOO_PROXY: &str = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html";
    const SEZNAM_PROXY: &str = "Mozilla/5.0 SeznamEmailProxy/1.0.5";
    const WP_PROXY: &str = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via WP.pl WPImageProxy)";
    const APPLE_MPP: &str = "Mozilla/5.0";

    /// Compiling the regex takes milliseconds: share one across tests.
    static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(Classifier::new);

    fn capture(kind: LinkKind, method: Method, ua: &str) -> Reason {
        CLASSIFIER.at_capture(kind, method, ua.as_bytes())
    }

    #[test]
    fn real_browsers_and_mail_clients_are_none() {
        let c = &*CLASSIFIER;
        for ua in BROWSERS {
            for kind in [LinkKind::Click, LinkKind::Open] {
                assert_eq!(c.at_capture(kind, Method::Get, ua.as_bytes()), Reason::None, "{ua}");
            }
        }
    }

    #[test]
    fn real_bots_scanners_and_checkers_are_bot_user_agent() {
        let c = &*CLASSIFIER;
        for ua in BOTS {
            for kind in [LinkKind::Click, LinkKind::Open] {
                for method in Method::ALL {
                    assert_eq!(c.at_capture(kind, method, ua.as_bytes()), Reason::BotUserAgent, "{ua} {method:?}");
                }
            }
        }
    }

    #[test]
    fn supplementary_patterns_match_case_insensitively() {
        let c = &*CLASSIFIER;
        assert_eq!(c.at_capture(LinkKind::Click, Method::Get, b"barracuda SENTINEL"), Reason::BotUserAgent);
        assert_eq!(c.at_capture(LinkKind::Click, Method::Get, b"Mozilla/5.0 (compatible; Barracuda Sentinel)"), Reason::BotUserAgent);
    }

    #[test]
    fn mail_provider_image_proxies_on_opens_are_image_proxy_not_bot() {
        // The bot list itself calls every one of these proxies a bot: the override matters.
        let plain = BotList::new();
        for ua in [GMAIL_PROXY, YAHOO_PROXY, SEZNAM_PROXY, WP_PROXY] {
            assert!(plain.is_bot(ua.as_bytes()), "{ua}");
        }
        for ua in [GMAIL_PROXY, YAHOO_PROXY, SEZNAM_PROXY, WP_PROXY, "Mozilla/5.0 (via GGPHT.COM googleimageproxy)"] {
            assert_eq!(capture(LinkKind::Open, Method::Get, ua), Reason::ImageProxy, "{ua}");
        }
        assert_eq!(Reason::ImageProxy.verdict(), Verdict::Human);
    }

    #[test]
    fn image_proxy_on_a_click_link_is_a_bot() {
        for ua in [GMAIL_PROXY, YAHOO_PROXY, SEZNAM_PROXY, WP_PROXY] {
            assert_eq!(capture(LinkKind::Click, Method::Get, ua), Reason::BotUserAgent, "{ua}");
        }
    }

    #[test]
    fn apple_privacy_protection_bare_mozilla_is_privacy_proxy() {
        // The bot list calls the bare string a bot: the override matters.
        assert!(BotList::new().is_bot(APPLE_MPP.as_bytes()));
        for kind in [LinkKind::Open, LinkKind::Click] {
            assert_eq!(capture(kind, Method::Get, APPLE_MPP), Reason::PrivacyProxy);
            assert_eq!(capture(kind, Method::Get, " Mozilla/5.0\t"), Reason::PrivacyProxy);
        }
        // Anything more than the bare token is not the prefetch signature. (The
        // bot list calls these two truncated strings bots, which is its business;
        // they must not be taken for the prefetch.)
        assert_ne!(capture(LinkKind::Open, Method::Get, "Mozilla/5.0 (Macintosh)"), Reason::PrivacyProxy);
        assert_ne!(capture(LinkKind::Open, Method::Get, "Mozilla/5.01"), Reason::PrivacyProxy);
        assert_eq!(capture(LinkKind::Open, Method::Get, APPLE_MAIL_MAC), Reason::None);
        assert_eq!(Reason::PrivacyProxy.verdict(), Verdict::Suspect);
    }

    #[test]
    fn empty_or_blank_user_agent_is_empty_user_agent() {
        for ua in ["", " ", "\t \t"] {
            assert_eq!(capture(LinkKind::Open, Method::Get, ua), Reason::EmptyUserAgent, "{ua:?}");
            assert_eq!(capture(LinkKind::Click, Method::Get, ua), Reason::EmptyUserAgent, "{ua:?}");
        }
    }

    #[test]
    fn head_requests() {
        for ua in [CHROME_WIN, SAFARI_IOS, "", APPLE_MPP] {
            assert_eq!(capture(LinkKind::Click, Method::Head, ua), Reason::HeadRequest, "{ua}");
        }
        // A proxy is not a bot on an open, so HEAD decides.
        assert_eq!(capture(LinkKind::Open, Method::Head, GMAIL_PROXY), Reason::HeadRequest);
        // A known bot keeps the more specific reason.
        assert_eq!(capture(LinkKind::Click, Method::Head, "curl/8.5.0"), Reason::BotUserAgent);
        assert_eq!(capture(LinkKind::Click, Method::Head, "Microsoft Office Existence Discovery"), Reason::BotUserAgent);
    }

    #[test]
    fn non_utf8_user_agents_are_still_classified() {
        let mut browser = CHROME_WIN.as_bytes().to_vec();
        browser.extend_from_slice(b" \xff\xfe");
        assert!(std::str::from_utf8(&browser).is_err());
        assert_eq!(CLASSIFIER.at_capture(LinkKind::Click, Method::Get, &browser), Reason::None);
        let mut bot = b"curl/8.5.0 ".to_vec();
        bot.extend_from_slice(b"\xc3\x28");
        assert!(std::str::from_utf8(&bot).is_err());
        assert_eq!(CLASSIFIER.at_capture(LinkKind::Click, Method::Get, &bot), Reason::BotUserAgent);
    }

    #[test]
    fn remembered_user_agents_get_the_same_reasons_as_new_ones() {
        let uas: Vec<&str> =
            BROWSERS.iter().chain(&BOTS).copied().chain([GMAIL_PROXY, YAHOO_PROXY, SEZNAM_PROXY, WP_PROXY, APPLE_MPP, "", "  "]).collect();
        let warm = Classifier::new();
        // Every (kind, method) twice, opens first: a proxy is a bot on a click only,
        // so what is remembered must not carry one kind's verdict over to the other.
        for round in 0..2 {
            for kind in [LinkKind::Open, LinkKind::Click] {
                for method in [Method::Get, Method::Head] {
                    for ua in &uas {
                        let fresh = Classifier::new().at_capture(kind, method, ua.as_bytes());
                        assert_eq!(warm.at_capture(kind, method, ua.as_bytes()), fresh, "round {round}, {kind:?} {method:?} {ua:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn classifier_debug_is_short() {
        assert_eq!(format!("{:?}", Classifier::default()), "Classifier { .. }");
    }

    #[test]
    fn stored_numbers_are_fixed() {
        assert_eq!(Verdict::Human.as_u8(), 1);
        assert_eq!(Verdict::Bot.as_u8(), 2);
        assert_eq!(Verdict::Suspect.as_u8(), 3);
        assert_eq!(Method::Get.as_u8(), 1);
        assert_eq!(Method::Head.as_u8(), 2);
        assert_eq!(Reason::None.as_u8(), 0);
        assert_eq!(Reason::BotUserAgent.as_u8(), 1);
        assert_eq!(Reason::HeadRequest.as_u8(), 2);
        assert_eq!(Reason::LetterBurst.as_u8(), 3);
        assert_eq!(Reason::NearMint.as_u8(), 4);
        assert_eq!(Reason::PrivacyProxy.as_u8(), 5);
        assert_eq!(Reason::ImageProxy.as_u8(), 6);
        assert_eq!(Reason::EmptyUserAgent.as_u8(), 7);
        let all: Vec<u8> = Reason::ALL.iter().map(|r| r.as_u8()).collect();
        assert_eq!(all, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn enums_round_trip_and_reject_unknown_numbers() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_u8(r.as_u8()), Some(r));
        }
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_u8(v.as_u8()), Some(v));
        }
        for m in Method::ALL {
            assert_eq!(Method::from_u8(m.as_u8()), Some(m));
        }
        for n in 0..=u8::MAX {
            assert_eq!(Reason::from_u8(n).is_some(), n <= 7, "{n}");
            assert_eq!(Verdict::from_u8(n).is_some(), (1..=3).contains(&n), "{n}");
            assert_eq!(Method::from_u8(n).is_some(), (1..=2).contains(&n), "{n}");
        }
    }

    #[test]
    fn names_are_fixed() {
        let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["none", "bot_user_agent", "head_request", "letter_burst", "near_mint", "privacy_proxy", "image_proxy", "empty_user_agent"]
        );
        assert_eq!(Verdict::ALL.map(Verdict::as_str), ["human", "bot", "suspect"]);
        assert_eq!(Method::ALL.map(Method::as_str), ["GET", "HEAD"]);
    }

    #[test]
    fn reasons_imply_their_verdicts() {
        use Reason as R;
        use Verdict as V;
        let expected = [
            (R::None, V::Human),
            (R::BotUserAgent, V::Bot),
            (R::HeadRequest, V::Bot),
            (R::LetterBurst, V::Bot),
            (R::NearMint, V::Suspect),
            (R::PrivacyProxy, V::Suspect),
            (R::ImageProxy, V::Human),
            (R::EmptyUserAgent, V::Suspect),
        ];
        for (r, v) in expected {
            assert_eq!(r.verdict(), v, "{r:?}");
        }
    }

    #[test]
    fn stronger_follows_the_precedence_table_and_commutes() {
        use Reason as R;
        let order =
            [R::BotUserAgent, R::HeadRequest, R::LetterBurst, R::PrivacyProxy, R::ImageProxy, R::NearMint, R::EmptyUserAgent, R::None];
        for (i, &a) in order.iter().enumerate() {
            for (j, &b) in order.iter().enumerate() {
                let want = if i <= j { a } else { b };
                assert_eq!(a.stronger(b), want, "{a:?} vs {b:?}");
                assert_eq!(b.stronger(a), want, "{b:?} vs {a:?}");
            }
        }
    }
}
