//! Events in the embedded store (`schema/sqlite/0002_*.sql`).
//!
//! Event rows, their user agents and batch ids live in the file of the day
//! they are written; what an event points at is read from the file of the
//! token's day: its letter and URL by the rowids the event carries (day
//! schema 4), or, for an event stored without them, through its link. The rollup's totals, watermark and `seen_<day>` tables
//! live in the main file, so one pass commits them together. Re-labels go to
//! the day files first, then the main file commits: if the process dies in
//! between, the next pass re-reads the same events (now carrying their final
//! label) and produces the same totals, so the two files never disagree in a
//! way that counts an event twice.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::days::Days;
use super::db_err;
use crate::day::Day;
use crate::events::{
    Counts, Cursor, EventBatch, EventQuery, EventRow, IpBytes, LinkInfo, MailingStats, Method, Reason, Relabel, RollupApply, RollupState,
    SeriesRow, StatKey, Verdict,
};
use crate::link::{LinkIds, LinkKind, hash16, shown_position};
use crate::tenant::TenantId;
use crate::token::{Random, Sealed, Spelling, Version};
use crate::{Error, Result};

const READ_EVENTS_SQL: &str = "SELECT e.id, e.at_ms, e.link_day, e.rnd, e.kind, e.method, e.verdict, e.reason, e.ip, ua.ua, e.link_id, \
     e.letter_id, e.url_id FROM events e LEFT JOIN user_agents ua ON ua.id = e.ua_id WHERE e.id > ?1 ORDER BY e.id LIMIT ?2";

/// The letter of an event that carries its ids (day schema 4), by rowid in
/// the link's day file; the URL column is filled in from `URL_SQL`.
const LETTER_SQL: &str =
    "SELECT id, minted_at, click_links, mailing_id, recipient, meta, NULL, tenant, NULL, NULL FROM letters WHERE id = ?1";
/// The position and token spelling of a v2 link (day schema 6), by rowid.
const PLACING_SQL: &str = "SELECT pos, spell FROM links_v2 WHERE id = ?1";
/// Its URL, likewise.
const URL_SQL: &str = "SELECT url FROM urls WHERE id = ?1";

/// An event without ids looks its link up: a v1 link by its random bits.
const LINK_INFO_SQL: &str = "SELECT lt.id, lt.minted_at, lt.click_links, lt.mailing_id, lt.recipient, lt.meta, u.url, lt.tenant, NULL, NULL \
     FROM links l JOIN letters lt ON lt.id = l.letter_id LEFT JOIN urls u ON u.id = l.url_id WHERE l.rnd = ?1";

/// A v2 link by rowid, only if its secret matches the block's.
const LINK_INFO_V2_SQL: &str = "SELECT lt.id, lt.minted_at, lt.click_links, lt.mailing_id, lt.recipient, lt.meta, u.url, lt.tenant, l.pos, l.spell \
     FROM links_v2 l JOIN letters lt ON lt.id = l.letter_id LEFT JOIN urls u ON u.id = l.url_id WHERE l.id = ?1 AND l.secret = ?2";

/// Row ids are `INTEGER` (i64) in SQLite and never negative.
fn sql_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn row_id(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Whether a batch with this id was stored in this day file.
pub fn batch_seen(c: &Connection, id: &[u8; 16]) -> Result<bool> {
    c.prepare_cached("SELECT 1 FROM event_batches WHERE id = ?1").and_then(|mut s| s.exists([&id[..]])).map_err(db_err)
}

/// Whether this day file holds any event.
pub fn has_events(c: &Connection) -> Result<bool> {
    c.prepare_cached("SELECT 1 FROM events LIMIT 1").and_then(|mut s| s.exists([])).map_err(db_err)
}

/// Store a batch in this (today's) day file, in one transaction.
pub fn write_events(c: &mut Connection, batch: &EventBatch) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    {
        let mut find = tx.prepare_cached("SELECT id FROM user_agents WHERE hash = ?1").map_err(db_err)?;
        let mut add = tx.prepare_cached("INSERT INTO user_agents (hash, ua) VALUES (?1, ?2)").map_err(db_err)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (at_ms, link_day, rnd, kind, method, verdict, reason, ip, ua_id, link_id, letter_id, url_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(db_err)?;
        let mut ua_ids: HashMap<[u8; 16], i64> = HashMap::new();
        for h in &batch.hits {
            let hash = hash16(&[&h.user_agent]);
            let ua_id = if let Some(id) = ua_ids.get(&hash) {
                *id
            } else {
                let id = if let Some(id) = find.query_row([&hash[..]], |r| r.get(0)).optional().map_err(db_err)? {
                    id
                } else {
                    add.execute(params![&hash[..], &h.user_agent]).map_err(db_err)?;
                    tx.last_insert_rowid()
                };
                ua_ids.insert(hash, id);
                id
            };
            insert
                .execute(params![
                    h.at_ms,
                    h.link_day.0,
                    &h.random.0[..],
                    h.kind as u8,
                    h.method as u8,
                    h.reason.verdict() as u8,
                    h.reason as u8,
                    h.ip.as_slice(),
                    ua_id,
                    link_id(h.version, &h.random),
                    h.link_ids.map(|ids| sql_id(ids.letter_id)),
                    h.link_ids.map(|ids| sql_id(ids.url_id))
                ])
                .map_err(db_err)?;
        }
    }
    tx.execute("INSERT INTO event_batches (id) VALUES (?1)", [&batch.id[..]]).map_err(db_err)?;
    tx.commit().map_err(db_err)
}

/// An event row before its link is joined in.
struct RawEvent {
    id: u64,
    at_ms: i64,
    link_day: Day,
    random: Random,
    kind: u8,
    method: u8,
    verdict: u8,
    reason: u8,
    ip: Vec<u8>,
    ua: Option<Vec<u8>>,
    link_id: Option<i64>,
    link_ids: Option<LinkIds>,
}

impl RawEvent {
    fn version(&self) -> Version {
        if self.link_id.is_some() { Version::V2 } else { Version::V1 }
    }
}

/// `events.link_id`: the id a v2 block hides; NULL for v1 links.
fn link_id(version: Version, random: &Random) -> Option<i64> {
    match version {
        Version::V1 => None,
        Version::V2 => Some(sql_id(Sealed::from_block(random).id)),
    }
}

fn read_raw(c: &Connection, after_id: u64, limit: usize) -> Result<Vec<RawEvent>> {
    let mut stmt = c.prepare_cached(READ_EVENTS_SQL).map_err(db_err)?;
    let rows = stmt
        .query_map(params![sql_id(after_id), sql_id(limit as u64)], |r| {
            Ok(RawEvent {
                id: row_id(r.get(0)?),
                at_ms: r.get(1)?,
                link_day: Day(r.get(2)?),
                random: Random(r.get(3)?),
                kind: r.get(4)?,
                method: r.get(5)?,
                verdict: r.get(6)?,
                reason: r.get(7)?,
                ip: r.get(8)?,
                ua: r.get(9)?,
                link_id: r.get(10)?,
                link_ids: match (r.get::<_, Option<i64>>(11)?, r.get::<_, Option<i64>>(12)?) {
                    (Some(letter_id), Some(url_id)) => Some(LinkIds { letter_id: row_id(letter_id), url_id: row_id(url_id) }),
                    _ => None,
                },
            })
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

/// A letter's columns and its URL as `LinkInfo`.
fn read_link_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkInfo> {
    Ok(LinkInfo {
        letter_id: row_id(r.get(0)?),
        minted_at: r.get(1)?,
        letter_links: r.get(2)?,
        mailing_id: r.get(3)?,
        recipient: r.get(4)?,
        meta: r.get(5)?,
        url: r.get(6)?,
        tenant: TenantId(r.get(7)?),
        position: r.get::<_, Option<u16>>(8)?.and_then(shown_position),
        spelling: r.get::<_, Option<u16>>(9)?.and_then(Spelling::unpack),
    })
}

fn link_info(c: &Connection, version: Version, random: &Random) -> Result<Option<LinkInfo>> {
    match version {
        Version::V1 => c.prepare_cached(LINK_INFO_SQL).and_then(|mut s| s.query_row([&random.0[..]], read_link_info).optional()),
        Version::V2 => {
            let sealed = Sealed::from_block(random);
            c.prepare_cached(LINK_INFO_V2_SQL)
                .and_then(|mut s| s.query_row(params![sql_id(sealed.id), &sealed.secret[..]], read_link_info).optional())
        }
    }
    .map_err(db_err)
}

/// `map[key]`, computed by `f` the first time.
fn memo<K: std::hash::Hash + Eq, V: Clone>(map: &mut HashMap<K, V>, key: K, f: impl FnOnce() -> Result<V>) -> Result<V> {
    Ok(match map.entry(key) {
        Entry::Occupied(e) => e.get().clone(),
        Entry::Vacant(e) => e.insert(f()?).clone(),
    })
}

/// The lookups of one page's events in one link day's file, each distinct
/// letter, URL and link read once: repeat clicks, scanner retries and
/// re-opened pixels share them.
struct Lookups<'c> {
    c: &'c Connection,
    /// By letter id, without a URL.
    letters: HashMap<u64, Option<LinkInfo>>,
    urls: HashMap<u64, Option<String>>,
    links: HashMap<(Version, Random), Option<LinkInfo>>,
    /// v2 links' (position, spelling) by id.
    placings: HashMap<u64, Option<(u16, u16)>>,
}

impl<'c> Lookups<'c> {
    fn new(c: &'c Connection) -> Lookups<'c> {
        Lookups { c, letters: HashMap::new(), urls: HashMap::new(), links: HashMap::new(), placings: HashMap::new() }
    }

    /// The link of `raw`: its letter and URL by the ids it carries, else through its link.
    fn link(&mut self, raw: &RawEvent) -> Result<Option<LinkInfo>> {
        let c = self.c;
        let Some(ids) = raw.link_ids else {
            return memo(&mut self.links, (raw.version(), raw.random), || link_info(c, raw.version(), &raw.random));
        };
        let Some(letter) = memo(&mut self.letters, ids.letter_id, || {
            c.prepare_cached(LETTER_SQL).and_then(|mut s| s.query_row([sql_id(ids.letter_id)], read_link_info).optional()).map_err(db_err)
        })?
        else {
            return Ok(None);
        };
        let url = if ids.url_id == 0 {
            None
        } else {
            memo(&mut self.urls, ids.url_id, || {
                c.prepare_cached(URL_SQL).and_then(|mut s| s.query_row([sql_id(ids.url_id)], |r| r.get(0)).optional()).map_err(db_err)
            })?
        };
        let mut info = LinkInfo { url, ..letter };
        if raw.version() == Version::V2 {
            let id = Sealed::from_block(&raw.random).id;
            let placing = memo(&mut self.placings, id, || {
                c.prepare_cached(PLACING_SQL)
                    .and_then(|mut s| s.query_row([sql_id(id)], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(db_err)
            })?;
            if let Some((pos, spell)) = placing {
                info.position = shown_position(pos);
                info.spelling = Spelling::unpack(spell);
            }
        }
        Ok(Some(info))
    }
}

fn finish(raw: RawEvent, day: Day, link: Option<LinkInfo>) -> Result<EventRow> {
    let bad = |what: &str| Error::Database(format!("events row: bad {what}"));
    Ok(EventRow {
        cursor: Cursor { day, id: raw.id },
        at_ms: raw.at_ms,
        kind: LinkKind::from_u8(raw.kind).ok_or_else(|| bad("kind"))?,
        method: Method::from_u8(raw.method).ok_or_else(|| bad("method"))?,
        verdict: Verdict::from_u8(raw.verdict).ok_or_else(|| bad("verdict"))?,
        reason: Reason::from_u8(raw.reason).ok_or_else(|| bad("reason"))?,
        link_day: raw.link_day,
        version: raw.version(),
        random: raw.random,
        link_ids: raw.link_ids,
        ip: IpBytes::from_slice(&raw.ip).ok_or_else(|| bad("ip"))?,
        user_agent: raw.ua.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default(),
        link,
    })
}

/// Events to read per page (of one day file) to fill the rest of `q` when it already
/// holds `have` rows. Filtered by mailing, pages stay large however few rows
/// are missing (the read trims the surplus), so a selective filter does not
/// degrade into many tiny reads.
fn page_size(q: &EventQuery, have: usize) -> usize {
    let want = q.limit.saturating_sub(have).max(1);
    if q.mailing_id.is_some() { want.max(FILTERED_PAGE) } else { want }
}

/// Smallest page a mailing-filtered read asks for.
const FILTERED_PAGE: usize = 1000;

impl Days {
    /// Events after `q.after` in (day file, id) order, links joined in from their own day files.
    pub fn read_events(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        let (days, _) = self.layout.scan()?;
        let mut out = Vec::with_capacity(q.limit.min(4096));
        // Every day from the cursor's on: the writer never writes a day
        // earlier than one it already wrote, so no earlier file gains rows.
        for day in days.into_iter().filter(|d| *d >= q.after.day) {
            let mut after_id = if day == q.after.day { q.after.id } else { 0 };
            loop {
                let want = page_size(q, out.len());
                let page = self.read(day, |c| read_raw(c, after_id, want))?.unwrap_or_default();
                let Some(last) = page.last() else { break };
                after_id = last.id;
                let full = page.len() == want;
                // One pooled connection per link day for the page's lookups.
                let mut by_link_day: BTreeMap<Day, Vec<usize>> = BTreeMap::new();
                for (i, r) in page.iter().enumerate() {
                    by_link_day.entry(r.link_day).or_default().push(i);
                }
                let mut links: Vec<Option<LinkInfo>> = vec![None; page.len()];
                for (link_day, idx) in by_link_day {
                    let found = self.read(link_day, |c| {
                        let mut lookups = Lookups::new(c);
                        idx.iter().map(|i| lookups.link(&page[*i])).collect::<Result<Vec<_>>>()
                    })?;
                    for (i, info) in idx.iter().zip(found.unwrap_or_default()) {
                        links[*i] = info;
                    }
                }
                for (raw, link) in page.into_iter().zip(links) {
                    if let Some(m) = &q.mailing_id
                        && link.as_ref().is_none_or(|l| &l.mailing_id != m)
                    {
                        continue;
                    }
                    out.push(finish(raw, day, link)?);
                }
                if out.len() >= q.limit {
                    out.truncate(q.limit);
                    return Ok(out);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(out)
    }
}

pub fn rollup_state(main: &Connection) -> Result<RollupState> {
    let row: Option<(u16, u64, i64)> = main
        .query_row("SELECT cursor_day, cursor_id, as_of_ms FROM rollup_state WHERE id = 1", [], |r| {
            Ok((r.get(0)?, row_id(r.get(1)?), r.get(2)?))
        })
        .optional()
        .map_err(db_err)?;
    let (day, id, as_of_ms) = row.ok_or_else(|| Error::Schema("rollup_state has no row; run `linktrack migrate`".into()))?;
    Ok(RollupState { watermark: Cursor { day: Day(day), id }, as_of_ms })
}

/// Re-label events of one day file, in one transaction.
pub fn relabel(c: &mut Connection, relabels: &[&Relabel]) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    {
        let mut stmt = tx.prepare_cached("UPDATE events SET verdict = ?1, reason = ?2 WHERE id = ?3").map_err(db_err)?;
        for r in relabels {
            stmt.execute(params![r.verdict as u8, r.reason as u8, sql_id(r.event.id)]).map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)
}

fn seen_table(day: Day) -> String {
    format!("seen_{}", day.0)
}

fn human_letters_table(day: Day) -> String {
    format!("hletters_{}", day.0)
}

/// Migration 0006: the `seen_<day>` tables made before it gain `human`.
/// Their links start at 0: the next human hit of one counts it.
pub fn add_seen_human(main: &Connection) -> Result<()> {
    for name in day_tables(main, "seen")? {
        main.execute_batch(&format!("ALTER TABLE {name} ADD COLUMN human INTEGER NOT NULL DEFAULT 0")).map_err(db_err)?;
    }
    Ok(())
}

/// A `stats_totals` primary key, in its column order.
pub type RegistryKey = (u16, [u8; 16], u8, [u8; 16], u16);

/// The primary key of a key's `stats_totals` row.
pub fn registry_key(k: &StatKey) -> RegistryKey {
    let url_hash = k.url.as_deref().map_or([0u8; 16], |u| hash16(&[u.as_bytes()]));
    (k.tenant.0, hash16(&[k.mailing_id.as_bytes()]), k.kind as u8, url_hash, k.stored_position())
}

const TOTALS_UPSERT_SQL: &str = "INSERT INTO stats_totals (tenant, mailing_hash, kind, url_hash, pos, mailing_id, url, human, bot, suspect, uniq, \
     uniq_human) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (tenant, mailing_hash, kind, url_hash, pos) DO UPDATE SET \
     human = human + excluded.human, bot = bot + excluded.bot, suspect = suspect + excluded.suspect, uniq = uniq + excluded.uniq, \
     uniq_human = uniq_human + excluded.uniq_human";

fn add_totals(tx: &Connection, key: &StatKey, c: &Counts) -> Result<()> {
    let (tenant, mailing_hash, kind, url_hash, pos) = registry_key(key);
    tx.prepare_cached(TOTALS_UPSERT_SQL)
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                &mailing_hash[..],
                kind,
                &url_hash[..],
                pos,
                key.mailing_id,
                key.url,
                c.human,
                c.bot,
                c.suspect,
                c.unique,
                c.unique_human
            ])
        })
        .map_err(db_err)?;
    Ok(())
}

/// Give each key a totals row of zeros if it has none (a mint's links).
pub fn register_links(main: &Connection, keys: &[StatKey]) -> Result<()> {
    keys.iter().try_for_each(|k| add_totals(main, k, &Counts::default()))
}

/// The main-file half of a rollup pass: unique counts, totals and the watermark, in one transaction.
pub fn apply_main(main: &mut Connection, a: &RollupApply) -> Result<bool> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    if rollup_state(&tx)?.watermark != a.from {
        return Ok(false);
    }
    let mut deltas: HashMap<&StatKey, Counts> = a.deltas.iter().map(|(k, c)| (k, *c)).collect();
    for f in &a.first_hits {
        let table = seen_table(f.link_day);
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (rnd BLOB NOT NULL PRIMARY KEY, human INTEGER NOT NULL DEFAULT 0) STRICT, WITHOUT ROWID"
        ))
        .map_err(db_err)?;
        let was: Option<i64> = tx
            .prepare_cached(&format!("SELECT human FROM {table} WHERE rnd = ?1"))
            .and_then(|mut s| s.query_row([&f.random.0[..]], |r| r.get(0)).optional())
            .map_err(db_err)?;
        let d = deltas.entry(&f.key).or_default();
        match was {
            None => {
                tx.prepare_cached(&format!("INSERT INTO {table} (rnd, human) VALUES (?1, ?2)"))
                    .and_then(|mut s| s.execute(params![&f.random.0[..], i64::from(f.human)]))
                    .map_err(db_err)?;
                d.unique += 1;
                d.unique_human += i64::from(f.human);
            }
            Some(0) if f.human => {
                tx.prepare_cached(&format!("UPDATE {table} SET human = 1 WHERE rnd = ?1"))
                    .and_then(|mut s| s.execute([&f.random.0[..]]))
                    .map_err(db_err)?;
                d.unique_human += 1;
            }
            Some(_) => {}
        }
    }
    for l in &a.letters_human {
        let table = human_letters_table(l.link_day);
        tx.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {table} (letter_id INTEGER PRIMARY KEY) STRICT")).map_err(db_err)?;
        let added = tx
            .prepare_cached(&format!("INSERT OR IGNORE INTO {table} (letter_id) VALUES (?1)"))
            .and_then(|mut s| s.execute([sql_id(l.letter_id)]))
            .map_err(db_err)?;
        if added == 1 {
            tx.prepare_cached("UPDATE mailings SET recipients_human = recipients_human + 1 WHERE tenant = ?1 AND mailing_hash = ?2")
                .and_then(|mut s| s.execute(params![l.tenant.0, &hash16(&[l.mailing_id.as_bytes()])[..]]))
                .map_err(db_err)?;
        }
    }
    for (key, c) in deltas.into_iter().filter(|(_, c)| *c != Counts::default()) {
        add_totals(&tx, key, &c)?;
    }
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO stats_series (tenant, mailing_hash, slot, kind, human, bot, suspect) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (tenant, mailing_hash, slot, kind) DO UPDATE SET \
                 human = human + excluded.human, bot = bot + excluded.bot, suspect = suspect + excluded.suspect",
            )
            .map_err(db_err)?;
        for (key, c) in &a.series {
            upsert
                .execute(params![
                    key.tenant.0,
                    &hash16(&[key.mailing_id.as_bytes()])[..],
                    key.slot,
                    key.kind as u8,
                    c.human,
                    c.bot,
                    c.suspect
                ])
                .map_err(db_err)?;
        }
    }
    tx.execute(
        "UPDATE rollup_state SET cursor_day = ?1, cursor_id = ?2, as_of_ms = ?3 WHERE id = 1",
        params![a.to.day.0, sql_id(a.to.id), a.as_of_ms],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(true)
}

/// Whether `tenant` minted for this mailing: its `recipients_human`, or `None`.
fn mailing_known(main: &Connection, tenant: TenantId, hash: &[u8; 16]) -> Result<Option<i64>> {
    main.prepare_cached("SELECT recipients_human FROM mailings WHERE tenant = ?1 AND mailing_hash = ?2")
        .and_then(|mut s| s.query_row(params![tenant.0, &hash[..]], |r| r.get(0)).optional())
        .map_err(db_err)
}

/// One of `tenant`'s mailings; `None` when the tenant never minted for it.
pub fn mailing_stats(main: &Connection, tenant: TenantId, mailing_id: &str) -> Result<Option<MailingStats>> {
    let hash = hash16(&[mailing_id.as_bytes()]);
    let Some(recipients_human) = mailing_known(main, tenant, &hash)? else { return Ok(None) };
    let mut stmt = main
        .prepare_cached(
            "SELECT kind, url, pos, human, bot, suspect, uniq, uniq_human FROM stats_totals WHERE tenant = ?1 AND mailing_hash = ?2",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![tenant.0, &hash[..]], |r| {
            Ok((
                r.get::<_, u8>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, u16>(2)?,
                Counts { human: r.get(3)?, bot: r.get(4)?, suspect: r.get(5)?, unique: r.get(6)?, unique_human: r.get(7)? },
            ))
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    Ok(Some(MailingStats::from_rows(rows.into_iter(), recipients_human, rollup_state(main)?.as_of_ms)))
}

/// The stored series slots `from..=to` of one of `tenant`'s mailings.
pub fn mailing_series(main: &Connection, tenant: TenantId, mailing_id: &str, from: u32, to: u32) -> Result<Option<Vec<SeriesRow>>> {
    let hash = hash16(&[mailing_id.as_bytes()]);
    if mailing_known(main, tenant, &hash)?.is_none() {
        return Ok(None);
    }
    let mut stmt = main
        .prepare_cached(
            "SELECT slot, kind, human, bot, suspect FROM stats_series WHERE tenant = ?1 AND mailing_hash = ?2 AND slot BETWEEN ?3 AND ?4 \
             ORDER BY slot, kind",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![tenant.0, &hash[..], from, to], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u8>(1)?,
                Counts { human: r.get(2)?, bot: r.get(3)?, suspect: r.get(4)?, ..Counts::default() },
            ))
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    Ok(Some(SeriesRow::collect(rows.into_iter())))
}

/// The names of the main file's `<prefix>_<day>` tables.
fn day_tables(main: &Connection, prefix: &str) -> Result<Vec<String>> {
    main.prepare(&format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '{prefix}\\_%' ESCAPE '\\'"))
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db_err)
}

/// Drop the `seen_<day>` and `hletters_<day>` tables of days before `keep_from`; returns how many.
pub fn drop_seen_before(main: &Connection, keep_from: Day) -> Result<usize> {
    let mut dropped = 0;
    for prefix in ["seen", "hletters"] {
        for name in day_tables(main, prefix)? {
            let Some(day) = name.strip_prefix(prefix).and_then(|d| d.strip_prefix('_')).and_then(|d| d.parse::<u16>().ok()) else {
                continue;
            };
            if Day(day) < keep_from {
                main.execute_batch(&format!("DROP TABLE {name}")).map_err(db_err)?;
                dropped += 1;
            }
        }
    }
    Ok(dropped)
}
