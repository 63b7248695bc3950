//! Click and open events: what a hit records, how batches travel (queue →
//! writer → database, or → spool → replay), the export cursor, and the
//! rollup that turns events into per-mailing statistics.
//!
//! Layout, in two layers. The event data (this file, `classify`, `burst`,
//! `queue`, `spool`) sits below the store: the `Store` trait speaks these
//! types, and none of these files imports `crate::store`. The services
//! (`writer`, `rollup`, `export`) sit above it and drive a `Store`.
//! - `classify`: verdicts and reasons (stable integers) and the capture-time
//!   rules (pure, no I/O).
//! - `bots`: the known-bot user-agent list (vendored, compiled once).
//! - `burst`: letter-burst and near-mint detection for the rollup (pure).
//! - `queue`: the bounded in-memory queue the redirect path pushes into; it
//!   never waits.
//! - `writer`: drains the queue into batched multi-row INSERTs, spooling
//!   batches while the database is down and replaying them in order.
//! - `spool`: the append-only, checksummed on-disk spool.
//! - `export`: NDJSON/CSV rows and the cursor pager behind `GET /v1/events`
//!   and `linktrack export`.
//! - `rollup`: classifies settled events (bursts, near-mint), relabels them,
//!   and folds them into running totals.
//!
//! Every batch carries a random id that the store records in the same
//! transaction as its rows, so a batch replayed after an ambiguous failure
//! (committed, but the reply was lost) is recognised and not stored twice.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::day::Day;
use crate::link::{LinkIds, LinkKind};
use crate::tenant::TenantId;
use crate::token::{Random, Version};
use crate::{Error, Result};

pub mod bots;
pub mod burst;
pub mod classify;
pub mod export;
pub mod queue;
pub mod rollup;
pub mod series;
pub mod spool;
pub mod writer;

pub use classify::{Method, Reason, Verdict};

/// Longest user agent kept; longer ones are cut (at a char boundary when valid UTF-8).
pub const MAX_USER_AGENT: usize = 512;

/// One click or open, as captured on the redirect path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Unix milliseconds of the request.
    pub at_ms: i64,
    pub kind: LinkKind,
    pub method: Method,
    /// The link's identity: its token's day, format and 16-byte identity
    /// (v1 random part, v2 decrypted block: see `token::Random`).
    pub link_day: Day,
    pub version: Version,
    pub random: Random,
    /// The link's letter and URL, as the redirect's lookup (cache or store)
    /// found them; `None` when it found nothing (a pixel answered while the
    /// store was down, a batch spooled before events carried them), and the
    /// reads look the link up by its identity instead.
    pub link_ids: Option<LinkIds>,
    /// Client address after anonymisation: 4 bytes (IPv4) or 16 (IPv6).
    pub ip: IpBytes,
    /// Raw `User-Agent` bytes (at most [`MAX_USER_AGENT`]), empty when absent.
    pub user_agent: Vec<u8>,
    /// Capture-time reason; the rollup may replace it with a stronger one.
    pub reason: Reason,
}

/// An IP address as stored: 4 bytes for IPv4, 16 for IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpBytes {
    len: u8,
    bytes: [u8; 16],
}

impl IpBytes {
    pub fn new(ip: IpAddr) -> IpBytes {
        let mut bytes = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                IpBytes { len: 4, bytes }
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpBytes::new(IpAddr::V4(v4)),
                None => IpBytes { len: 16, bytes: v6.octets() },
            },
        }
    }

    pub fn from_slice(s: &[u8]) -> Option<IpBytes> {
        let mut bytes = [0u8; 16];
        match s.len() {
            4 | 16 => {
                bytes[..s.len()].copy_from_slice(s);
                Some(IpBytes { len: s.len() as u8, bytes })
            }
            _ => None,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// 16 bytes (IPv4 padded with zeros), for grouping keys.
    pub fn key(&self) -> [u8; 16] {
        self.bytes
    }

    pub fn addr(&self) -> IpAddr {
        if self.len == 4 { IpAddr::from([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]]) } else { IpAddr::from(self.bytes) }
    }
}

impl fmt::Debug for IpBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr())
    }
}

/// What to zero in client addresses before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpAnonymisation {
    /// Store addresses as received.
    None,
    /// Zero the last octet of IPv4 and the last 80 bits of IPv6.
    #[default]
    Truncate,
}

impl IpAnonymisation {
    /// The setting's names, as `FromStr` accepts them.
    pub const NAMES: [&str; 2] = ["none", "truncate"];

    pub fn apply(self, ip: IpAddr) -> IpAddr {
        match (self, ip) {
            (IpAnonymisation::None, ip) => ip,
            (IpAnonymisation::Truncate, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::from([a, b, c, 0])
            }
            (IpAnonymisation::Truncate, IpAddr::V6(v6)) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return IpAnonymisation::Truncate.apply(IpAddr::V4(v4));
                }
                let mut o = v6.octets();
                o[6..].fill(0);
                IpAddr::from(o)
            }
        }
    }
}

impl FromStr for IpAnonymisation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "none" => Ok(IpAnonymisation::None),
            "truncate" => Ok(IpAnonymisation::Truncate),
            _ => Err(format!("ip anonymisation must be one of {}", IpAnonymisation::NAMES.join(", "))),
        }
    }
}

/// A batch of hits: the unit of writing, spooling and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    /// Random; the store remembers it with the rows, so a replay is recognised.
    pub id: [u8; 16],
    /// The day the batch was formed: a replay looks for the id from this day on.
    pub formed: Day,
    pub hits: Vec<Hit>,
}

/// What writing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The batch's rows were stored now.
    Stored,
    /// The batch had been stored before; nothing was written.
    AlreadyStored,
}

/// Spool encoding 3 adds each hit's letter and URL ids (a presence byte,
/// then both as little-endian u64 when present); 2 added the token format.
/// Batches spooled by older versions still decode: format 2 with no ids,
/// format 1 (v1 tokens only) with no ids and token format v1.
const BATCH_FORMAT: u8 = 3;
const BATCH_FORMAT_NO_IDS: u8 = 2;
const BATCH_FORMAT_V1_TOKENS: u8 = 1;

impl EventBatch {
    /// The spool encoding: a version byte, the id, the day, then each hit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.hits.len() * 64);
        out.push(BATCH_FORMAT);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.formed.0.to_le_bytes());
        out.extend_from_slice(&(self.hits.len() as u32).to_le_bytes());
        for h in &self.hits {
            out.extend_from_slice(&h.at_ms.to_le_bytes());
            out.extend_from_slice(&[h.kind as u8, h.method as u8, h.reason as u8, h.version as u8]);
            out.extend_from_slice(&h.link_day.0.to_le_bytes());
            out.extend_from_slice(&h.random.0);
            match h.link_ids {
                None => out.push(0),
                Some(ids) => {
                    out.push(1);
                    out.extend_from_slice(&ids.letter_id.to_le_bytes());
                    out.extend_from_slice(&ids.url_id.to_le_bytes());
                }
            }
            let ip = h.ip.as_slice();
            out.push(ip.len() as u8);
            out.extend_from_slice(ip);
            out.extend_from_slice(&(h.user_agent.len() as u16).to_le_bytes());
            out.extend_from_slice(&h.user_agent);
        }
        out
    }

    /// Decode [`EventBatch::encode`]'s output; anything else is an error, never a panic.
    pub fn decode(mut b: &[u8]) -> Result<EventBatch> {
        let bad = Error::MalformedBatch;
        let mut take = |n: usize| -> Result<&[u8]> {
            if b.len() < n {
                return Err(bad("truncated"));
            }
            let (head, rest) = b.split_at(n);
            b = rest;
            Ok(head)
        };
        let format = take(1)?[0];
        if ![BATCH_FORMAT, BATCH_FORMAT_NO_IDS, BATCH_FORMAT_V1_TOKENS].contains(&format) {
            return Err(bad("unknown format"));
        }
        let id: [u8; 16] = take(16)?.try_into().map_err(|_| bad("id"))?;
        let formed = Day(u16::from_le_bytes(take(2)?.try_into().map_err(|_| bad("day"))?));
        let n = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad("count"))?) as usize;
        let mut hits = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let at_ms = i64::from_le_bytes(take(8)?.try_into().map_err(|_| bad("time"))?);
            let e = take(if format == BATCH_FORMAT_V1_TOKENS { 3 } else { 4 })?;
            let kind = LinkKind::from_u8(e[0]).ok_or_else(|| bad("kind"))?;
            let method = Method::from_u8(e[1]).ok_or_else(|| bad("method"))?;
            let reason = Reason::from_u8(e[2]).ok_or_else(|| bad("reason"))?;
            let version = e.get(3).map_or(Some(Version::V1), |v| Version::from_u8(*v)).ok_or_else(|| bad("token version"))?;
            let link_day = Day(u16::from_le_bytes(take(2)?.try_into().map_err(|_| bad("link day"))?));
            let random = Random(take(16)?.try_into().map_err(|_| bad("random"))?);
            let link_ids = if format == BATCH_FORMAT { decode_link_ids(&mut take)? } else { None };
            let ip_len = usize::from(take(1)?[0]);
            let ip = IpBytes::from_slice(take(ip_len)?).ok_or_else(|| bad("ip"))?;
            let ua_len = usize::from(u16::from_le_bytes(take(2)?.try_into().map_err(|_| bad("ua length"))?));
            let user_agent = take(ua_len)?.to_vec();
            hits.push(Hit { at_ms, kind, method, link_day, version, random, link_ids, ip, user_agent, reason });
        }
        if !b.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(EventBatch { id, formed, hits })
    }
}

/// A hit's optional [`LinkIds`] in spool format 3: a presence byte, then both ids.
fn decode_link_ids<'a>(take: &mut impl FnMut(usize) -> Result<&'a [u8]>) -> Result<Option<LinkIds>> {
    let bad = Error::MalformedBatch;
    let id = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    match take(1)?[0] {
        0 => Ok(None),
        1 => {
            let b = take(16)?;
            Ok(Some(LinkIds { letter_id: id(&b[..8]), url_id: id(&b[8..]) }))
        }
        _ => Err(bad("link ids")),
    }
}

/// A position in the event stream: the event's partition day and its id.
/// Opaque to clients (`<day>-<id>` in base 10 is an implementation detail);
/// rows come strictly after it in (day, id) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub day: Day,
    pub id: u64,
}

impl Cursor {
    /// The start of the stream.
    pub const START: Cursor = Cursor { day: Day(0), id: 0 };

    pub fn encode(self) -> String {
        format!("{}-{}", self.day.0, self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (day, id) = s.split_once('-')?;
        let all_digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(day) || !all_digits(id) {
            return None;
        }
        Some(Cursor { day: Day(day.parse().ok()?), id: id.parse().ok()? })
    }
}

/// What the link of an event was, joined in by the store: the letter and
/// URL by the ids the event carries, else through the link the token names
/// (absent when the link's day has been dropped or the token was never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub letter_id: u64,
    /// The tenant of the letter: every read filters on it.
    pub tenant: TenantId,
    pub url: Option<String>,
    pub mailing_id: String,
    pub recipient: String,
    pub meta: Option<String>,
    /// Unix seconds of the letter's mint.
    pub minted_at: i64,
    /// Click links in the letter (0 for letters minted before this was recorded).
    pub letter_links: u32,
    /// The link's position in its letter; `None` for pixels, v1 links and
    /// links minted before positions were recorded.
    pub position: Option<u16>,
    /// How its token was spelled (v2 links minted since it was recorded),
    /// so an export can name the token ([`crate::token::respell_v2`]).
    pub spelling: Option<crate::token::Spelling>,
}

/// One stored event with everything an export row or the rollup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub cursor: Cursor,
    pub at_ms: i64,
    pub kind: LinkKind,
    pub method: Method,
    pub verdict: Verdict,
    pub reason: Reason,
    pub link_day: Day,
    pub version: Version,
    pub random: Random,
    /// The letter and URL ids the event was stored with; `None` when its hit
    /// did not know them and `link` was found through the link instead.
    pub link_ids: Option<LinkIds>,
    pub ip: IpBytes,
    pub user_agent: String,
    pub link: Option<LinkInfo>,
}

/// Which events to read.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub after: Cursor,
    pub limit: usize,
    /// Only events whose letter belongs to this mailing.
    pub mailing_id: Option<String>,
}

/// The statistics row a rollup delta adds to: one (mailing, URL, kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatKey {
    pub tenant: TenantId,
    pub mailing_id: String,
    /// `None` for opens.
    pub url: Option<String>,
    /// The link's position in its letter; `None` for opens and for links without one.
    pub position: Option<u16>,
    pub kind: LinkKind,
}

/// Totals rows a store remembers having registered ([`StatKey::of_mint`]),
/// as 64-bit fingerprints of their keys: about 50 bytes an entry, so the
/// default holds a quarter million links (some 13 MiB at most).
pub const REGISTRY_CACHE: usize = 262_144;

/// The in-process fingerprint of a totals row's key, for the registry cache.
/// A collision (2^-64 a pair) would only skip registering a row of zeros.
pub fn registry_fingerprint<K: std::hash::Hash>(key: &K) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

impl StatKey {
    /// The totals rows a mint registers: one per (URL, position) of the
    /// letter, and one for its pixel, so stats list links nobody clicked.
    pub fn of_mint(batch: &crate::link::MintBatch) -> impl Iterator<Item = StatKey> + '_ {
        let l = &batch.letter;
        batch.links.iter().map(move |link| StatKey {
            tenant: l.tenant,
            mailing_id: l.mailing_id.clone(),
            url: link.url.as_deref().map(str::to_owned),
            // v1 links store no position: their events count under none, so register them there.
            position: (link.kind == LinkKind::Click && batch.version == Version::V2)
                .then(|| crate::link::shown_position(link.position))
                .flatten(),
            kind: link.kind,
        })
    }

    /// The position column's value ([`crate::link::NO_POSITION`] for none).
    pub fn stored_position(&self) -> u16 {
        self.position.unwrap_or(crate::link::NO_POSITION)
    }
}

/// One time-series row a rollup delta adds to: a mailing's clicks or opens
/// hit in one quarter hour (UTC), so any whole-quarter-hour offset can be
/// bucketed exactly by day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub tenant: TenantId,
    pub mailing_id: String,
    pub kind: LinkKind,
    /// Unix seconds / [`SLOT_SECS`].
    pub slot: u32,
}

/// Width of a stored time-series slot, in seconds.
pub const SLOT_SECS: i64 = 900;

/// The slot an instant (Unix ms) falls in.
pub fn slot_of(at_ms: i64) -> u32 {
    u32::try_from(at_ms.div_euclid(SLOT_SECS * 1000)).unwrap_or(0)
}

/// A letter with a human click counted for the first time in a pass, if the
/// store has not seen one before: `recipients_human` of its mailing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterHit {
    pub link_day: Day,
    pub letter_id: u64,
    pub tenant: TenantId,
    pub mailing_id: String,
}

/// Counter increments for one [`StatKey`]. Signed: a re-label moves counts between verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub human: i64,
    pub bot: i64,
    pub suspect: i64,
    /// Distinct links (tokens) hit at least once, any verdict.
    pub unique: i64,
    /// Distinct links (tokens) hit at least once by a human event.
    pub unique_human: i64,
}

impl Counts {
    pub fn add_verdict(&mut self, v: Verdict, n: i64) {
        match v {
            Verdict::Human => self.human += n,
            Verdict::Bot => self.bot += n,
            Verdict::Suspect => self.suspect += n,
        }
    }

    pub fn total(&self) -> i64 {
        self.human + self.bot + self.suspect
    }

    pub fn merge(&mut self, o: &Counts) {
        self.human += o.human;
        self.bot += o.bot;
        self.suspect += o.suspect;
        self.unique += o.unique;
        self.unique_human += o.unique_human;
    }
}

/// An event whose stored verdict and reason change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relabel {
    pub event: Cursor,
    pub verdict: Verdict,
    pub reason: Reason,
}

/// A link hit for the first time in this pass, if the store has not seen it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstHit {
    pub link_day: Day,
    pub random: Random,
    pub key: StatKey,
    /// Whether one of this pass's events of the link was human.
    pub human: bool,
}

/// One rollup pass, applied atomically (or, across embedded files, idempotently).
#[derive(Debug, Clone, Default)]
pub struct RollupApply {
    /// The watermark this pass started from; the apply fails if it moved.
    pub from: Cursor,
    /// The new watermark: every event up to it is counted.
    pub to: Cursor,
    /// Events up to this instant (Unix ms) had settled when the pass ran.
    pub as_of_ms: i64,
    pub relabels: Vec<Relabel>,
    /// Verdict counts per key (not `unique`: the store derives it from `first_hits`).
    pub deltas: Vec<(StatKey, Counts)>,
    pub first_hits: Vec<FirstHit>,
    /// Verdict counts per time-series slot.
    pub series: Vec<(SeriesKey, Counts)>,
    /// Letters with a human click in this pass, each once.
    pub letters_human: Vec<LetterHit>,
}

/// The rollup's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupState {
    pub watermark: Cursor,
    pub as_of_ms: i64,
}

/// One link of a mailing in its stats: every (URL, position) minted for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    pub url: String,
    pub position: Option<u16>,
    pub clicks: Counts,
}

/// Totals for one mailing, as the stats endpoint returns them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailingStats {
    /// Every link minted for the mailing, clicked or not, by position then URL.
    pub links: Vec<LinkStats>,
    pub opens: Counts,
    /// Distinct letters (one per recipient) with at least one human click.
    pub recipients_human: i64,
    pub as_of_ms: i64,
}

/// One stored totals row: kind, URL, stored position, counts.
pub type TotalsRow = (u8, Option<String>, u16, Counts);

impl MailingStats {
    /// Build from stored totals rows, in any order.
    pub fn from_rows(rows: impl Iterator<Item = TotalsRow>, recipients_human: i64, as_of_ms: i64) -> MailingStats {
        let mut out = MailingStats { recipients_human, as_of_ms, ..MailingStats::default() };
        for (kind, url, position, clicks) in rows {
            match (LinkKind::from_u8(kind), url) {
                (Some(LinkKind::Click), Some(url)) => {
                    out.links.push(LinkStats { url, position: crate::link::shown_position(position), clicks });
                }
                (Some(LinkKind::Open), _) => out.opens.merge(&clicks),
                _ => crate::log_limited!(warn, kind, "skipping a stats row of unknown shape"),
            }
        }
        // Links without a position (minted before positions were recorded) last.
        out.links.sort_by(|a, b| (a.position.is_none(), a.position, &a.url).cmp(&(b.position.is_none(), b.position, &b.url)));
        out
    }
}

/// A mailing's clicks and opens in one stored time-series slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeriesRow {
    pub slot: u32,
    pub clicks: Counts,
    pub opens: Counts,
}

impl SeriesRow {
    /// Build from stored rows `(slot, kind, counts)` in slot order.
    pub fn collect(rows: impl Iterator<Item = (u32, u8, Counts)>) -> Vec<SeriesRow> {
        let mut out: Vec<SeriesRow> = Vec::new();
        for (slot, kind, counts) in rows {
            if out.last().is_none_or(|r| r.slot != slot) {
                out.push(SeriesRow { slot, ..SeriesRow::default() });
            }
            let Some(row) = out.last_mut() else { continue };
            match LinkKind::from_u8(kind) {
                Some(LinkKind::Click) => row.clicks.merge(&counts),
                Some(LinkKind::Open) => row.opens.merge(&counts),
                None => crate::log_limited!(warn, kind, "skipping a series row of unknown kind"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ua: &[u8], ip: IpAddr) -> Hit {
        Hit {
            at_ms: 1_795_000_000_123,
            kind: LinkKind::Click,
            method: Method::Head,
            link_day: Day(2517),
            version: Version::V2,
            random: Random([7; 16]),
            link_ids: Some(LinkIds { letter_id: 0x0102_0304_0506_0708, url_id: 42 }),
            ip: IpBytes::new(ip),
            user_agent: ua.to_vec(),
            reason: Reason::HeadRequest,
        }
    }

    #[test]
    fn batch_encoding_round_trips_and_rejects_damage() {
        let batch = EventBatch {
            id: [9; 16],
            formed: Day(2518),
            hits: vec![
                hit(b"Mozilla/5.0", "192.0.2.1".parse().unwrap()),
                Hit { link_ids: None, ..hit(b"", "2001:db8::1".parse().unwrap()) },
            ],
        };
        let bytes = batch.encode();
        assert_eq!(EventBatch::decode(&bytes).unwrap(), batch);
        for cut in 0..bytes.len() {
            assert!(EventBatch::decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(EventBatch::decode(&extra).is_err());
    }

    /// A batch as an older version spooled it: `format`, then per hit a
    /// click of link day 2517 from 192.0.2.1, with a token format byte
    /// (`Some`, format 2) or without (`None`, format 1), and no link ids.
    fn legacy_batch(format: u8, hits: &[(Option<Version>, &[u8])]) -> Vec<u8> {
        let mut old = vec![format];
        old.extend_from_slice(&[9; 16]);
        old.extend_from_slice(&2518u16.to_le_bytes());
        old.extend_from_slice(&(hits.len() as u32).to_le_bytes());
        for (version, ua) in hits {
            old.extend_from_slice(&1_795_000_000_123i64.to_le_bytes());
            old.extend_from_slice(&[LinkKind::Click as u8, Method::Head as u8, Reason::HeadRequest as u8]);
            old.extend(version.map(|v| v as u8));
            old.extend_from_slice(&2517u16.to_le_bytes());
            old.extend_from_slice(&[7; 16]);
            old.extend_from_slice(&[4, 192, 0, 2, 1]);
            old.extend_from_slice(&(ua.len() as u16).to_le_bytes());
            old.extend_from_slice(ua);
        }
        old
    }

    fn legacy_hit(version: Version, ua: &[u8]) -> Hit {
        Hit { version, link_ids: None, ..hit(ua, "192.0.2.1".parse().unwrap()) }
    }

    /// A batch spooled by the version before token v2 (format 1, no version
    /// byte per hit) still decodes after the upgrade, as v1 links.
    #[test]
    fn format_1_spool_records_decode_as_v1_links() {
        let old = legacy_batch(1, &[(None, b"ua")]);
        let want = legacy_hit(Version::V1, b"ua");
        assert_eq!(EventBatch::decode(&old).unwrap(), EventBatch { id: [9; 16], formed: Day(2518), hits: vec![want] });
    }

    /// A batch spooled by the version before events carried link ids
    /// (format 2: a token format byte per hit, no ids) still decodes after
    /// the upgrade, with no ids, so its events are looked up by their token.
    #[test]
    fn format_2_spool_records_decode_without_link_ids() {
        let old = legacy_batch(2, &[(Some(Version::V2), b"ua"), (Some(Version::V1), b"")]);
        let decoded = EventBatch::decode(&old).unwrap();
        let want = vec![legacy_hit(Version::V2, b"ua"), legacy_hit(Version::V1, b"")];
        assert_eq!(decoded, EventBatch { id: [9; 16], formed: Day(2518), hits: want });
        // Written again (replayed into a new spool), it is format 3 and keeps its missing ids.
        let again = decoded.encode();
        assert_eq!(again[0], 3);
        assert_eq!(EventBatch::decode(&again).unwrap(), decoded);
    }

    #[test]
    fn a_bad_link_ids_marker_is_refused() {
        let batch = EventBatch { id: [9; 16], formed: Day(2518), hits: vec![hit(b"", "192.0.2.1".parse().unwrap())] };
        let mut bytes = batch.encode();
        // format, id, day, count, at_ms, four enum bytes, link day, random: then the marker.
        let marker = 1 + 16 + 2 + 4 + 8 + 4 + 2 + 16;
        assert_eq!(bytes[marker], 1);
        bytes[marker] = 2;
        assert!(EventBatch::decode(&bytes).is_err());
    }

    #[test]
    fn cursors_round_trip_and_order_by_day_then_id() {
        let c = Cursor { day: Day(2517), id: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "1", "-1", "1-", "a-1", "1-1-1", "99999999-1", "1-+1"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        assert!(Cursor { day: Day(1), id: 900 } < Cursor { day: Day(2), id: 1 });
    }

    #[test]
    fn anonymisation_zeroes_the_documented_bits() {
        let t = IpAnonymisation::Truncate;
        assert_eq!(t.apply("203.0.113.77".parse().unwrap()), "203.0.113.0".parse::<IpAddr>().unwrap());
        assert_eq!(t.apply("2001:db8:1:2:3:4:5:6".parse().unwrap()), "2001:db8:1::".parse::<IpAddr>().unwrap());
        assert_eq!(t.apply("::ffff:198.51.100.9".parse().unwrap()), "198.51.100.0".parse::<IpAddr>().unwrap());
        assert_eq!(IpAnonymisation::None.apply("203.0.113.77".parse().unwrap()), "203.0.113.77".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn anonymisation_parses_its_names() {
        assert_eq!(IpAnonymisation::NAMES.map(str::parse::<IpAnonymisation>), [Ok(IpAnonymisation::None), Ok(IpAnonymisation::Truncate)]);
        assert!("Truncate".parse::<IpAnonymisation>().is_err());
    }

    #[test]
    fn ip_bytes_keep_the_family() {
        let v4 = IpBytes::new("192.0.2.1".parse().unwrap());
        assert_eq!(v4.as_slice(), &[192, 0, 2, 1]);
        assert_eq!(IpBytes::new("::ffff:192.0.2.1".parse().unwrap()), v4);
        let v6 = IpBytes::new("2001:db8::1".parse().unwrap());
        assert_eq!(v6.as_slice().len(), 16);
        assert_eq!(IpBytes::from_slice(v6.as_slice()), Some(v6));
        assert_eq!(IpBytes::from_slice(&[1, 2, 3]), None);
    }
}
