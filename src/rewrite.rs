//! Whole-letter rewrite, the pure part: find a letter's clickable
//! destinations, decide which are tracked, and splice tracking URLs (and the
//! open pixel) into the original bytes. No I/O and no HTTP: `http::rewrite`
//! mints the links [`scan`] finds and calls [`render`] with their URLs.
//!
//! **Byte-exact by construction.** `lol_html` is used as a tokenizer only:
//! its handlers read each attribute's value and its byte range in the input
//! (`Attribute::value_source_location`), and nothing is ever modified through
//! it. A tag changed with `Element::set_attribute` is re-serialised by
//! `lol_html` from its parsed attributes (`name="value"`, so single-quoted
//! and unquoted values come out double-quoted; see the unit test
//! `lol_html_reserialises_a_modified_tag`), which would break the contract.
//! Instead [`render`] copies the input and replaces exactly the recorded
//! value ranges, so every other byte (doctype, comments, whitespace, entity
//! spelling, quoting, case) is the input's.
//!
//! **Where destinations are.** `href` of `<a>` and `<area>`; and, inside
//! Outlook conditional comments (`<!--[if mso]>…<![endif]-->`), which a
//! parser sees as one comment, the `href` of `<a>`, `<area>` and VML shapes
//! (`<v:roundrect>`, `<v:rect>`, `<v:oval>`, `<v:shape>`…, the "bulletproof
//! button" Outlook for Windows renders and clicks): the comment's text is
//! parsed again as HTML, with offsets shifted to the comment's place.
//! Not destinations: `<img src>`, `<link href>`, `<base href>`, `background`,
//! `<form action>` (forms do not work in mail clients). Not seen: links in
//! `<noscript>`, whose content `lol_html` parses as raw text (as a browser
//! with scripting on does; mail clients strip `<noscript>`), and a valueless
//! `data-linktrack`, which it gives no location for (so it is left in place).
//!
//! **Positions.** Every `href` at those places, tracked or not, gets a
//! position: its 0-based order in the document. Rejections name it.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;

use lol_html::html_content::{Comment, Element};
use lol_html::{HtmlRewriter, Settings, doc_comments, element};

use crate::link::normalize_url;

/// Why a letter is refused. Nothing is minted for a refused letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// An `href` a browser would run or render instead of follow.
    #[error("link {position} ({href:?}): {scheme} URLs are not allowed in a letter")]
    ForbiddenScheme { position: usize, href: String, scheme: &'static str },
    /// A template placeholder the builder did not substitute.
    #[error("link {position} ({href:?}): unsubstituted template placeholder {placeholder:?}")]
    Placeholder { position: usize, href: String, placeholder: &'static str },
    /// An `http(s)` URL the mint rules refuse (see `link::normalize_url`).
    #[error("link {position} ({href:?}): {reason}")]
    BadUrl { position: usize, href: String, reason: String },
    /// More trackable links than one mint takes.
    #[error("{found} trackable links; at most {max} per letter")]
    TooManyLinks { found: usize, max: usize },
    /// `lol_html` refused the input (for example a parsing ambiguity it cannot resolve).
    #[error("the HTML could not be parsed: {0}")]
    Parse(String),
}

impl RewriteError {
    /// The offending link's position, when one link is to blame.
    pub fn position(&self) -> Option<usize> {
        match self {
            RewriteError::ForbiddenScheme { position, .. }
            | RewriteError::Placeholder { position, .. }
            | RewriteError::BadUrl { position, .. } => Some(*position),
            RewriteError::TooManyLinks { .. } | RewriteError::Parse(_) => None,
        }
    }
}

/// What the caller chose about tracking.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Hosts left untracked, with their subdomains (ASCII, compared case-insensitively).
    pub exclude_domains: Vec<String>,
    /// Track unsubscribe links too. By default they are left untouched.
    pub track_unsubscribe: bool,
    /// Most links one letter may mint (the mint's own limit).
    pub max_links: usize,
}

/// Why a link was left as it was. Not stored; tests and logs read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untouched {
    Empty,
    Fragment,
    /// `mailto:`, `tel:`, `sms:` or another scheme that is not http(s).
    OtherScheme,
    Relative,
    ExcludedDomain,
    Unsubscribe,
    /// Marked `data-linktrack="off"`.
    Off,
}

/// A link that will be tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trackable {
    /// Order in the document among all destinations.
    pub position: usize,
    /// The destination with entities decoded, as written (what the response shows).
    pub url: String,
    /// The form the mint stores ([`normalize_url`]).
    pub stored: String,
    /// The raw attribute value's bytes in the input.
    value: Range<usize>,
    /// Whether the value sits between quotes (else it is unquoted).
    quoted: bool,
}

impl Trackable {
    /// The raw attribute value's bytes in the input (what [`render`] replaces).
    pub fn value_range(&self) -> Range<usize> {
        self.value.clone()
    }

    /// Whether the value sits between quotes.
    pub fn quoted(&self) -> bool {
        self.quoted
    }
}

/// What [`scan`] found in a letter: the links to track, in document order,
/// and the edits that do not need a minted URL.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub links: Vec<Trackable>,
    /// Every destination left alone, with its position and why.
    pub untouched: Vec<(usize, Untouched)>,
    /// `data-linktrack` attributes to cut out, whitespace before them included.
    removals: Vec<Range<usize>>,
    /// Where the pixel goes: before `</body>`, or the end of the input.
    pixel_at: usize,
}

/// One `href` met while parsing, before positions are known.
struct Candidate {
    value: Range<usize>,
    raw: String,
    quoted: bool,
    off: bool,
    unsubscribe_marker: bool,
}

#[derive(Default)]
struct Found {
    candidates: Vec<Candidate>,
    removals: Vec<Range<usize>>,
}

/// Find the letter's destinations and classify them. Fails on the first
/// forbidden link in document order; nothing is half-done.
pub fn scan(html: &str, rules: &Rules) -> Result<Scan, RewriteError> {
    let found = RefCell::new(Found::default());
    let body_end = Rc::new(Cell::new(None::<usize>));
    {
        let body_end = body_end.clone();
        let found_ref = &found;
        let mut rewriter = HtmlRewriter::new(
            Settings {
                element_content_handlers: vec![
                    element!("a, area", move |el| {
                        record(el, 0, html, &mut found_ref.borrow_mut());
                        Ok(())
                    }),
                    element!("body", move |el| {
                        let body_end = body_end.clone();
                        // A `<body/>` cannot have content: then the pixel goes at the end.
                        let _ = el.on_end_tag(lol_html::end_tag!(move |end| {
                            body_end.set(Some(end.source_location().bytes().start));
                            Ok(())
                        }));
                        Ok(())
                    }),
                ],
                document_content_handlers: vec![doc_comments!(move |c| { conditional_comment(c, html, &mut found_ref.borrow_mut()) })],
                ..Settings::new()
            },
            |_: &[u8]| {},
        );
        rewriter.write(html.as_bytes()).map_err(|e| RewriteError::Parse(e.to_string()))?;
        rewriter.end().map_err(|e| RewriteError::Parse(e.to_string()))?;
    }
    let mut found = found.into_inner();
    found.candidates.sort_by_key(|c| c.value.start);
    found.removals.sort_by_key(|r| r.start);
    let mut out = Scan { pixel_at: body_end.get().unwrap_or(html.len()), removals: found.removals, ..Scan::default() };
    for (position, c) in found.candidates.into_iter().enumerate() {
        match classify(&c, rules).map_err(|e| e.at(position, &c.raw))? {
            Ok(url) => {
                let stored = normalize_url(&url).map_err(|reason| RewriteError::BadUrl { position, href: c.raw.clone(), reason })?;
                out.links.push(Trackable { position, url, stored, value: c.value, quoted: c.quoted });
            }
            Err(why) => out.untouched.push((position, why)),
        }
    }
    if out.links.len() > rules.max_links {
        return Err(RewriteError::TooManyLinks { found: out.links.len(), max: rules.max_links });
    }
    Ok(out)
}

/// Record an `<a>`/`<area>`/VML element's `href` and its `data-linktrack`;
/// `base` shifts offsets of a re-parsed comment back into the letter.
fn record(el: &Element<'_, '_>, base: usize, html: &str, found: &mut Found) {
    let mut candidate = None;
    let (mut off, mut unsubscribe_marker) = (false, false);
    for attr in el.attributes() {
        // The name as written, not `attr.name()`, which decodes through encoding_rs and drops a
        // leading U+FEFF (`\u{feff}href` is not `href` to a browser; found by the fuzz target).
        // A valueless attribute has no location: there is nothing to read or remove.
        let Some(name_loc) = attr.name_source_location() else { continue };
        let name = html[name_loc.bytes().start + base..name_loc.bytes().end + base].to_ascii_lowercase();
        if name == "href" && candidate.is_none() {
            // The first `href` wins, as in a browser; a value lol_html invented has no location and is skipped.
            let Some(loc) = attr.value_source_location() else { continue };
            let value = loc.bytes().start + base..loc.bytes().end + base;
            let quoted = value.start > 0 && matches!(html.as_bytes()[value.start - 1], b'"' | b'\'');
            // The raw text from the input, not `attr.value()`: that decodes through encoding_rs,
            // which drops a leading U+FEFF a browser would keep (found by the fuzz target).
            let raw = html[value.clone()].to_owned();
            candidate = Some(Candidate { value, raw, quoted, off: false, unsubscribe_marker: false });
        } else if name == "data-linktrack" {
            let v = attr.value();
            let v = v.trim();
            off |= v.eq_ignore_ascii_case("off");
            unsubscribe_marker |= v.eq_ignore_ascii_case("unsubscribe");
            let end = attr.value_source_location().map_or(name_loc.bytes().end, |v| v.bytes().end);
            found.removals.push(attribute_span(html, name_loc.bytes().start + base, end + base));
        }
    }
    if let Some(mut c) = candidate {
        c.off = off;
        c.unsubscribe_marker = unsubscribe_marker;
        found.candidates.push(c);
    }
}

/// The bytes of one attribute, from the whitespace before its name to the
/// end of its value and closing quote.
fn attribute_span(html: &str, name_start: usize, value_end: usize) -> Range<usize> {
    let b = html.as_bytes();
    let mut start = name_start;
    while start > 0 && b[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    let mut end = value_end;
    if end < b.len() && matches!(b[end], b'"' | b'\'') {
        end += 1;
    }
    start..end
}

/// Parse the inside of an Outlook conditional comment as HTML and record its links.
fn conditional_comment(c: &mut Comment<'_>, html: &str, found: &mut Found) -> lol_html::HandlerResult {
    let loc = c.source_location().bytes();
    let Some(raw) = html.get(loc.clone()) else { return Ok(()) };
    let Some(inner) = raw.strip_prefix("<!--").and_then(|r| r.strip_suffix("-->").or(Some(r))) else { return Ok(()) };
    if !inner.trim_start().starts_with("[if") {
        return Ok(());
    }
    let base = loc.start + 4;
    let inner_found = RefCell::new(Found::default());
    {
        let mut rewriter = HtmlRewriter::new(
            Settings {
                element_content_handlers: vec![element!("*", |el| {
                    let tag = el.tag_name();
                    if tag == "a" || tag == "area" || tag.starts_with("v:") {
                        record(el, base, html, &mut inner_found.borrow_mut());
                    }
                    Ok(())
                })],
                ..Settings::new()
            },
            |_: &[u8]| {},
        );
        rewriter.write(inner.as_bytes())?;
        rewriter.end()?;
    }
    let inner_found = inner_found.into_inner();
    found.candidates.extend(inner_found.candidates);
    found.removals.extend(inner_found.removals);
    Ok(())
}

/// A refusal before its position is known.
enum Refusal {
    Scheme(&'static str),
    Placeholder(&'static str),
}

impl Refusal {
    fn at(self, position: usize, href: &str) -> RewriteError {
        let href = href.to_owned();
        match self {
            Refusal::Scheme(scheme) => RewriteError::ForbiddenScheme { position, href, scheme },
            Refusal::Placeholder(placeholder) => RewriteError::Placeholder { position, href, placeholder },
        }
    }
}

/// The placeholder syntaxes of common template languages: Handlebars/Liquid/Jinja, Mailchimp, `ExactTarget`.
const PLACEHOLDERS: [(&str, &str, &str); 3] = [("{{", "}}", "{{…}}"), ("*|", "|*", "*|…|*"), ("%%", "%%", "%%…%%")];

/// Tracked (`Ok(Ok(decoded url))`), untouched (`Ok(Err(why))`) or refused.
fn classify(c: &Candidate, rules: &Rules) -> Result<Result<String, Untouched>, Refusal> {
    let decoded = htmlize::unescape_attribute(c.raw.as_str());
    // What a URL parser does first: strip leading and trailing C0 controls and spaces.
    let url = decoded.trim_matches(|ch: char| ch <= ' ');
    for (open, close, name) in PLACEHOLDERS {
        if let Some(i) = url.find(open)
            && url[i + open.len()..].contains(close)
        {
            return Err(Refusal::Placeholder(name));
        }
    }
    // A browser ignores tabs and newlines anywhere in a URL: `java\tscript:` is `javascript:`.
    let squeezed: String = url.chars().filter(|ch| !matches!(ch, '\t' | '\n' | '\r')).take(16).collect::<String>().to_ascii_lowercase();
    for scheme in ["javascript:", "vbscript:", "data:"] {
        if squeezed.starts_with(scheme) {
            return Err(Refusal::Scheme(scheme));
        }
    }
    let why = if c.off {
        Untouched::Off
    } else if url.is_empty() {
        Untouched::Empty
    } else if url.starts_with('#') {
        Untouched::Fragment
    } else if !(squeezed.starts_with("http://") || squeezed.starts_with("https://")) {
        if scheme_of(url).is_some() { Untouched::OtherScheme } else { Untouched::Relative }
    } else if host_of(url).is_some_and(|h| excluded(&h, &rules.exclude_domains)) {
        Untouched::ExcludedDomain
    } else if !rules.track_unsubscribe && (c.unsubscribe_marker || is_unsubscribe(url)) {
        Untouched::Unsubscribe
    } else {
        return Ok(Ok(url.to_owned()));
    };
    Ok(Err(why))
}

/// The scheme of an absolute URL (`mailto`, `tel`…), if it has one.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).then_some(scheme)
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_ascii_lowercase)
}

fn excluded(host: &str, domains: &[String]) -> bool {
    domains.iter().any(|d| {
        let d = d.trim().trim_end_matches('.');
        !d.is_empty()
            && (host.eq_ignore_ascii_case(d)
                || (host.len() > d.len()
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.'
                    && host[host.len() - d.len()..].eq_ignore_ascii_case(d)))
    })
}

/// An unsubscribe or opt-out link, by its URL (`unsubscribe`, `optout`,
/// `opt-out`, `opt_out` anywhere, case-insensitively), or marked
/// `data-linktrack="unsubscribe"` (see [`record`]).
pub fn is_unsubscribe(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["unsubscribe", "optout", "opt-out", "opt_out"].iter().any(|w| lower.contains(w))
}

/// The pixel tag: invisible, no border, no space taken.
pub fn pixel_tag(src: &str) -> String {
    format!(
        "<img src=\"{}\" alt=\"\" width=\"1\" height=\"1\" border=\"0\" style=\"display:block;width:1px;height:1px;border:0;margin:0;padding:0;overflow:hidden;max-height:1px;\" />",
        htmlize::escape_attribute(src)
    )
}

/// The rewritten letter: the input with each tracked link's value replaced
/// by its tracking URL (`tracking[i]` for `scan.links[i]`), the
/// `data-linktrack` attributes removed and, if given, the pixel inserted.
pub fn render(html: &str, scan: &Scan, tracking: &[String], pixel_src: Option<&str>) -> String {
    enum Edit<'a> {
        Replace(&'a str, bool),
        Remove,
        Insert(String),
    }
    let mut edits: Vec<(Range<usize>, Edit<'_>)> = Vec::with_capacity(scan.links.len() + scan.removals.len() + 1);
    for (link, t) in scan.links.iter().zip(tracking) {
        edits.push((link.value.clone(), Edit::Replace(t, link.quoted)));
    }
    edits.extend(scan.removals.iter().map(|r| (r.clone(), Edit::Remove)));
    if let Some(src) = pixel_src {
        edits.push((scan.pixel_at..scan.pixel_at, Edit::Insert(pixel_tag(src))));
    }
    // Stable: an insertion at the same offset as a removal keeps its order.
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = tracking.iter().map(String::len).sum::<usize>() + 512;
    let mut out = String::with_capacity(html.len() + extra);
    let mut at = 0;
    for (range, edit) in edits {
        if range.start < at {
            // Overlapping edits cannot come from one parse; skip rather than corrupt.
            continue;
        }
        out.push_str(&html[at..range.start]);
        match edit {
            Edit::Replace(t, true) => out.push_str(&htmlize::escape_all_quotes(t)),
            Edit::Replace(t, false) => out.push_str(t),
            Edit::Remove => {}
            Edit::Insert(s) => out.push_str(&s),
        }
        at = range.end;
    }
    out.push_str(&html[at..]);
    out
}

impl Scan {
    /// The `data-linktrack` attributes [`render`] cuts out, in order.
    pub fn removals(&self) -> &[Range<usize>] {
        &self.removals
    }

    /// Where [`render`] inserts the pixel.
    pub fn pixel_at(&self) -> usize {
        self.pixel_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { exclude_domains: vec!["internal.example".into()], track_unsubscribe: false, max_links: 1000 }
    }

    fn tracked(html: &str) -> Vec<String> {
        scan(html, &rules()).unwrap().links.into_iter().map(|l| l.url).collect()
    }

    #[test]
    fn lol_html_reserialises_a_modified_tag() {
        // Why the rewriter splices bytes itself instead of calling set_attribute.
        let out = lol_html::rewrite_str(
            "<A HREF='x' class=b>t</A>",
            lol_html::RewriteStrSettings {
                element_content_handlers: vec![element!("a", |el| {
                    el.set_attribute("href", "y")?;
                    Ok(())
                })],
                ..lol_html::RewriteStrSettings::new()
            },
        )
        .unwrap();
        assert_ne!(out, "<A HREF='y' class=b>t</A>");
    }

    #[test]
    fn every_byte_outside_values_is_kept() {
        let html = "<!DOCTYPE html>\n<HTML><body>\n<A HREF='https://a.example/?x=1&amp;y=2' Class=b>é</A> <a href=https://b.example/p>b</a>\n<!-- c --></body></HTML>";
        let s = scan(html, &rules()).unwrap();
        assert_eq!(s.links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(), ["https://a.example/?x=1&y=2", "https://b.example/p"]);
        let out = render(html, &s, &["T1".into(), "T2".into()], None);
        assert_eq!(out, "<!DOCTYPE html>\n<HTML><body>\n<A HREF='T1' Class=b>é</A> <a href=T2>b</a>\n<!-- c --></body></HTML>");
    }

    #[test]
    fn untouched_links() {
        use Untouched::{Empty, ExcludedDomain, Fragment, Off, OtherScheme, Relative, Unsubscribe};
        let html = r##"<a href="mailto:x@y">m</a><a href="tel:1">t</a><a href="SMS:1">s</a><a href="#top">f</a><a href="">e</a>
            <a href="/rel">r</a><a>no href</a><a href="https://internal.example/x">i</a><a href="https://www.internal.example/x">w</a>
            <a href="https://news.example/unsubscribe?u=1">u</a><a href="https://a.example/" data-linktrack="off">off</a>
            <a href="https://a.example/p" data-linktrack="unsubscribe">u2</a>"##;
        let s = scan(html, &rules()).unwrap();
        assert!(s.links.is_empty(), "{:?}", s.links);
        let whys: Vec<_> = s.untouched.iter().map(|(_, w)| *w).collect();
        assert_eq!(
            whys,
            [
                OtherScheme,
                OtherScheme,
                OtherScheme,
                Fragment,
                Empty,
                Relative,
                ExcludedDomain,
                ExcludedDomain,
                Unsubscribe,
                Off,
                Unsubscribe
            ]
        );
        let out = render(html, &s, &[], None);
        assert!(!out.contains("data-linktrack"), "{out}");
        assert!(out.contains(r#"<a href="https://a.example/">off</a>"#), "{out}");
    }

    #[test]
    fn unsubscribe_can_be_tracked() {
        let r = Rules { track_unsubscribe: true, ..rules() };
        assert_eq!(scan(r#"<a href="https://n.example/Unsubscribe">u</a>"#, &r).unwrap().links.len(), 1);
    }

    #[test]
    fn rejections_name_link_and_position() {
        let cases = [
            (r#"<a href="https://ok.example/">a</a><a href=" JavaScript:alert(1)">x</a>"#, 1, "javascript:"),
            (r#"<a href="java&#x09;script:alert(1)">x</a>"#, 0, "javascript:"),
            (r#"<area href="vbscript:x">"#, 0, "vbscript:"),
            (r#"<a href="data:text/html,hi">x</a>"#, 0, "data:"),
        ];
        for (html, pos, scheme) in cases {
            let err = scan(html, &rules()).unwrap_err();
            assert_eq!(err.position(), Some(pos), "{html}");
            assert!(err.to_string().contains(scheme), "{err}");
        }
        for (href, ph) in [("https://x.example/?u={{ user.id }}", "{{…}}"), ("*|UNSUB|*", "*|…|*"), ("https://x.example/%%id%%", "%%…%%")]
        {
            let err = scan(&format!(r#"<p><a href="https://fine.example/">f</a> <a href="{href}">x</a>"#), &rules()).unwrap_err();
            assert_eq!(err, RewriteError::Placeholder { position: 1, href: href.into(), placeholder: ph });
        }
    }

    #[test]
    fn vml_in_conditional_comments_is_tracked() {
        let html = r#"<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://b.example/go?a=1&amp;b=2" style="height:40px"><w:anchorlock/><center>Go</center></v:roundrect><![endif]--><a href="https://b.example/go?a=1&amp;b=2">Go</a><!-- [if x] plain --><!-- <a href="https://c.example/">not in a conditional</a> -->"#;
        let s = scan(html, &rules()).unwrap();
        assert_eq!(s.links.len(), 2);
        assert!(s.links.iter().all(|l| l.url == "https://b.example/go?a=1&b=2"));
        let out = render(html, &s, &["https://t.example/c/A".into(), "https://t.example/c/B".into()], None);
        assert!(
            out.starts_with(r#"<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://t.example/c/A" style"#),
            "{out}"
        );
        assert!(out.contains(r#"<a href="https://t.example/c/B">Go</a>"#));
        assert!(out.contains("https://c.example/"));
    }

    #[test]
    fn entities_decoded_for_minting_as_a_browser_does() {
        // `&copy=` in an attribute is not a character reference (no semicolon, then `=`).
        assert_eq!(tracked(r#"<a href="https://a.example/?a=1&copy=2&amp;b=&#51;">x</a>"#), ["https://a.example/?a=1&copy=2&b=3"]);
    }

    #[test]
    fn pixel_goes_before_body_end_or_at_the_end() {
        let s = scan("<html><body><p>x</p></body></html>", &rules()).unwrap();
        let out = render("<html><body><p>x</p></body></html>", &s, &[], Some("https://t.example/o/P"));
        assert!(out.starts_with(r#"<html><body><p>x</p><img src="https://t.example/o/P" alt="" width="1" height="1" border="0""#), "{out}");
        assert!(out.ends_with("/></body></html>"));
        let s = scan("<p>x</p>", &rules()).unwrap();
        assert!(render("<p>x</p>", &s, &[], Some("P")).starts_with("<p>x</p><img src=\"P\""));
    }

    #[test]
    fn same_url_twice_is_two_links_and_limit_applies() {
        let html = r#"<a href="https://a.example/">1</a><a href="https://a.example/">2</a>"#;
        assert_eq!(tracked(html).len(), 2);
        let r = Rules { max_links: 1, ..rules() };
        assert_eq!(scan(html, &r).unwrap_err(), RewriteError::TooManyLinks { found: 2, max: 1 });
    }

    #[test]
    fn odd_markup() {
        let r = rules();
        // An attribute without a value (kept: lol_html does not locate it), an href without one,
        // a duplicate href (the first wins, as in a browser).
        let html = r#"<a data-linktrack href="https://a.example/1">1</a><a href>2</a><a href=>3</a><a href="https://a.example/4" href="https://b.example/">4</a>"#;
        let s = scan(html, &r).unwrap();
        assert_eq!(s.links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(), ["https://a.example/1", "https://a.example/4"]);
        let out = render(html, &s, &["T1".into(), "T4".into()], None);
        assert_eq!(out, r#"<a data-linktrack href="T1">1</a><a href>2</a><a href=>3</a><a href="T4" href="https://b.example/">4</a>"#);
        // A link in <svg> is a link. <noscript> content is raw text to lol_html (a browser with
        // scripting on), so a link there is neither tracked nor changed. A <body/> gets the pixel at the end.
        let html = r#"<body/><svg><a href="https://svg.example/">s</a></svg><noscript><a href="https://ns.example/">n</a></noscript>"#;
        let s = scan(html, &r).unwrap();
        assert_eq!(s.links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(), ["https://svg.example/"]);
        let out = render(html, &s, &["A".into()], Some("P"));
        assert!(
            out.starts_with(r#"<body/><svg><a href="A">s</a></svg><noscript><a href="https://ns.example/">n</a></noscript><img src="P""#),
            "{out}"
        );
        // A leading U+FEFF makes the href relative for a browser, and an attribute name another one: left alone.
        assert!(scan("<a href=\u{feff}https://bom.example/>b</a>", &r).unwrap().links.is_empty());
        let html = "<a \u{feff}data-linktrack=off \u{feff}href=\"https://x.example/\" href=\"https://y.example/\">b</a>";
        let s = scan(html, &r).unwrap();
        assert!(s.removals().is_empty());
        assert_eq!(s.links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(), ["https://y.example/"]);
        // An unterminated conditional comment and an empty document.
        assert!(scan("<!--[if mso]><v:rect href=\"https://v.example/\">", &r).unwrap().links.len() <= 1);
        assert!(scan("", &r).unwrap().links.is_empty());
    }
}
