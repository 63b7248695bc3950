//! Events on MySQL: batched event inserts, the export read, and the rollup's
//! totals (`schema/mysql/0002_events.sql`).
//!
//! Event writers are serialised by locking the `locks` row `event_writer`
//! inside their transaction, so `AUTO_INCREMENT` ids become visible in commit
//! order and a reader that has seen id N will never later find a smaller
//! one. The lock is a row lock: it goes away with the transaction, even when
//! a connection dies mid-write. Rollup passes serialise on the
//! `rollup_state` row and compare the watermark, so of two replicas running
//! the same pass only one applies it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use mysql_async::prelude::Queryable;
use mysql_async::{Row, TxOpts, Value};

use super::literal::{self, Lit, push_hex};
use super::{Interned, MysqlStore, chunk_by_bytes, db_err, insert_err};
use crate::day::Day;
use crate::events::{
    Counts, Cursor, EventBatch, EventQuery, EventRow, IpBytes, LinkInfo, MailingStats, Method, Reason, RollupApply, RollupState, SeriesRow,
    StatKey, Verdict, WriteOutcome,
};
use crate::link::{LinkIds, LinkKind, hash16};
use crate::tenant::TenantId;
use crate::token::{Random, Sealed, Version};
use crate::{Error, Result};

/// The columns of an event row (with its user agent) and of its link's
/// letter and URL, in the order `event_row` and `link_columns` read them.
macro_rules! event_columns {
    () => {
        "e.id, e.day, e.at_ms, e.link_day, e.rnd, e.kind, e.method, e.verdict, e.reason, e.ip, ua.ua, e.link_id, e.letter_id, e.url_id"
    };
}
/// After the link's identity (v1 `rnd`; v2 the block, id then secret).
macro_rules! letter_columns {
    () => {
        "lt.id, lt.minted_at, lt.click_links, lt.mailing_id, lt.recipient, lt.meta, lt.tenant, u.url"
    };
}

/// The export/rollup read, in two steps. First a page of events after a
/// cursor, with the user agent joined in by primary key on the row's own day.
/// Rows are read from the cursor's day minus one onwards, with no upper day:
/// writers never write a day earlier than the newest already written
/// (migration 0003), and the day before also covers rows written before that
/// rule or inserted by hand with a skewed day.
const READ_EVENTS_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e \
     LEFT JOIN user_agents ua ON ua.id = e.ua_id AND ua.day = e.day \
     WHERE e.day >= ? AND e.id > ? ORDER BY e.id LIMIT ?"
);

/// Then the letters and URLs of the page's events that carry their ids
/// (migration 0005), each distinct one once, by primary key on the event's
/// link day (followed by `<day> AND id IN (...)`): the link row itself is
/// not read again.
const LETTERS_BY_ID_SQL: &str = "SELECT id, minted_at, click_links, mailing_id, recipient, meta, tenant FROM letters WHERE day = ";
const URLS_BY_ID_SQL: &str = "SELECT id, url FROM urls WHERE day = ";
/// The position and token spelling of v2 links, likewise (migration 0008).
const PLACING_BY_ID_SQL: &str = "SELECT id, pos, spell FROM links_v2 WHERE day = ";

/// Events without ids (a pixel answered while the database was down, a
/// batch spooled before migration 0005) look each distinct link up once, per
/// link day, with its letter and URL: repeat clicks, scanner retries and
/// re-opened pixels share one lookup. v1 links by `UNIQUE (rnd, day)`
/// (followed by `<day> AND l.rnd IN (...)`), v2 links by primary key
/// (followed by `<day> AND l.id IN (...)`), answering their block, so a
/// wrong secret matches nothing.
macro_rules! link_info_sql {
    ($identity:literal, $table:literal, $placing:literal) => {
        concat!(
            "SELECT ",
            $identity,
            ", ",
            letter_columns!(),
            ", ",
            $placing,
            " FROM ",
            $table,
            " l JOIN letters lt ON lt.id = l.letter_id AND lt.day = l.day \
             LEFT JOIN urls u ON u.id = l.url_id AND u.day = l.day WHERE l.day = "
        )
    };
}
const LINK_INFO_SQL: &str = link_info_sql!("l.rnd", "links", "NULL, NULL");
const LINK_INFO_V2_SQL: &str = link_info_sql!("CONCAT(UNHEX(LPAD(HEX(l.id), 12, '0')), l.secret)", "links_v2", "l.pos, l.spell");

/// One mailing's events: the filter needs every event's letter, so it runs
/// in the join, on the server, in one statement, rather than fetching every
/// other mailing's events to drop them here. The letter and URL by the
/// event's own ids; only an event without them joins its link.
const READ_MAILING_EVENTS_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    ", e.rnd, ",
    letter_columns!(),
    ", l2.pos, l2.spell FROM events e \
     LEFT JOIN user_agents ua ON ua.id = e.ua_id AND ua.day = e.day \
     LEFT JOIN links l ON e.letter_id IS NULL AND e.link_id IS NULL AND l.rnd = e.rnd AND l.day = e.link_day \
     LEFT JOIN links_v2 l2 ON l2.id = e.link_id AND l2.day = e.link_day AND l2.secret = SUBSTRING(e.rnd, 7) \
     JOIN letters lt ON lt.id = COALESCE(e.letter_id, l.letter_id, l2.letter_id) AND lt.day = e.link_day \
     LEFT JOIN urls u ON u.id = COALESCE(e.url_id, l.url_id, l2.url_id) AND u.day = e.link_day \
     WHERE e.day >= ? AND e.id > ? AND lt.mailing_id = ? ORDER BY e.id LIMIT ?"
);

/// The newest day event rows were written to (migration 0003).
macro_rules! event_day_sql {
    () => {
        "SELECT day FROM locks WHERE name = 'event_writer'"
    };
}
const EVENT_DAY_SQL: &str = event_day_sql!();

/// Random values or ids per link-info query.
const LINK_INFO_CHUNK: usize = 1000;

/// A `LINK_INFO_SQL` row: `rnd`, letter id, `minted_at`, `click_links`,
/// mailing, recipient, meta, tenant, url, then the link's position and
/// spelling ([`Placing`]), `NULL` for v1 links.
type LinkInfoRow = (Vec<u8>, u64, i64, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, u16, Option<Vec<u8>>, Option<u16>, Option<u16>);

/// Row ids wanted per day.
type IdsByDay = BTreeMap<Day, Vec<u64>>;

/// A link's stored position and token spelling (`links_v2.pos`, `spell`).
type Placing = (Option<u16>, Option<u16>);

/// Set a link's position and spelling from their stored values.
fn place(info: &mut LinkInfo, (pos, spell): Placing) {
    info.position = pos.and_then(crate::link::shown_position);
    info.spelling = spell.and_then(crate::token::Spelling::unpack);
}

/// A `LETTERS_BY_ID_SQL` row: id, `minted_at`, `click_links`, mailing, recipient, meta, tenant.
type LetterRow = (u64, i64, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, u16);

/// `stats_totals` columns: kind, url, pos, human, bot, suspect, uniq, `uniq_human`.
type TotalsRow = (u8, Option<Vec<u8>>, u16, i64, i64, i64, i64, i64);

/// Bytes of SQL text one event row adds to a multi-row INSERT, generously.
const EVENT_ROW_SQL_BYTES: usize = 192;

pub(super) fn stat_hashes(key: &StatKey) -> ([u8; 16], [u8; 16]) {
    let url = key.url.as_deref().map_or([0u8; 16], |u| hash16(&[u.as_bytes()]));
    (hash16(&[key.mailing_id.as_bytes()]), url)
}

fn text(v: Option<Vec<u8>>) -> Option<String> {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn event_row(mut r: Row) -> Result<EventRow> {
    let bad = |what: &str| Error::Database(format!("events row: bad {what}"));
    let mut take = |i: usize| r.take::<Value, usize>(i).ok_or_else(|| bad("column"));
    let id: u64 = mysql_async::from_value_opt(take(0)?).map_err(|_| bad("id"))?;
    let day: u16 = mysql_async::from_value_opt(take(1)?).map_err(|_| bad("day"))?;
    let at_ms: i64 = mysql_async::from_value_opt(take(2)?).map_err(|_| bad("at_ms"))?;
    let link_day: u16 = mysql_async::from_value_opt(take(3)?).map_err(|_| bad("link_day"))?;
    let rnd: Vec<u8> = mysql_async::from_value_opt(take(4)?).map_err(|_| bad("rnd"))?;
    let kind: u8 = mysql_async::from_value_opt(take(5)?).map_err(|_| bad("kind"))?;
    let method: u8 = mysql_async::from_value_opt(take(6)?).map_err(|_| bad("method"))?;
    let verdict: u8 = mysql_async::from_value_opt(take(7)?).map_err(|_| bad("verdict"))?;
    let reason: u8 = mysql_async::from_value_opt(take(8)?).map_err(|_| bad("reason"))?;
    let ip: Vec<u8> = mysql_async::from_value_opt(take(9)?).map_err(|_| bad("ip"))?;
    let ua: Option<Vec<u8>> = mysql_async::from_value_opt(take(10)?).map_err(|_| bad("ua"))?;
    let link_id: Option<u64> = mysql_async::from_value_opt(take(11)?).map_err(|_| bad("link_id"))?;
    let letter_id: Option<u64> = mysql_async::from_value_opt(take(12)?).map_err(|_| bad("letter_id"))?;
    let url_id: Option<u64> = mysql_async::from_value_opt(take(13)?).map_err(|_| bad("url_id"))?;
    Ok(EventRow {
        cursor: Cursor { day: Day(day), id },
        at_ms,
        kind: LinkKind::from_u8(kind).ok_or_else(|| bad("kind"))?,
        method: Method::from_u8(method).ok_or_else(|| bad("method"))?,
        verdict: Verdict::from_u8(verdict).ok_or_else(|| bad("verdict"))?,
        reason: Reason::from_u8(reason).ok_or_else(|| bad("reason"))?,
        link_day: Day(link_day),
        version: if link_id.is_some() { Version::V2 } else { Version::V1 },
        random: Random(rnd.try_into().map_err(|_| bad("rnd"))?),
        link_ids: letter_id.zip(url_id).map(|(letter_id, url_id)| LinkIds { letter_id, url_id }),
        ip: IpBytes::from_slice(&ip).ok_or_else(|| bad("ip"))?,
        user_agent: text(ua).unwrap_or_default(),
        link: None,
    })
}

/// The `link_columns!()` that follow the event columns of a row.
fn link_columns(r: &mut Row) -> Result<LinkInfo> {
    let bad = || Error::Database("events row: bad link columns".into());
    let row: LinkInfoRow = (
        r.take_opt(14).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(15).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(16).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(17).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(18).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(19).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(20).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(21).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(22).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(23).ok_or_else(bad)?.map_err(|_| bad())?,
        r.take_opt(24).ok_or_else(bad)?.map_err(|_| bad())?,
    );
    Ok(link_info(row).1)
}

fn link_info(row: LinkInfoRow) -> (Vec<u8>, LinkInfo) {
    let (rnd, letter_id, minted_at, letter_links, mailing_id, recipient, meta, tenant, url, pos, spell) = row;
    let mut info = letter_info((letter_id, minted_at, letter_links, mailing_id, recipient, meta, tenant), text(url));
    place(&mut info, (pos, spell));
    (rnd, info)
}

fn letter_info(row: LetterRow, url: Option<String>) -> LinkInfo {
    let (letter_id, minted_at, letter_links, mailing_id, recipient, meta, tenant) = row;
    LinkInfo {
        letter_id,
        tenant: TenantId(tenant),
        minted_at,
        letter_links,
        mailing_id: String::from_utf8_lossy(&mailing_id).into_owned(),
        recipient: String::from_utf8_lossy(&recipient).into_owned(),
        meta: text(meta),
        url,
        position: None,
        spelling: None,
    }
}

/// The interning hash of each hit's user agent, computed once per distinct
/// user agent of the batch (a batch of thousands holds a few dozen).
fn ua_hashes(hits: &[crate::events::Hit]) -> Vec<[u8; 16]> {
    let mut memo: HashMap<&[u8], [u8; 16]> = HashMap::new();
    hits.iter().map(|h| *memo.entry(h.user_agent.as_slice()).or_insert_with(|| hash16(&[&h.user_agent]))).collect()
}

/// Append one event row's `(...)` of the batch insert to `sql`, written
/// straight into the statement: no temporary string per value.
fn push_event_values(sql: &mut String, h: &crate::events::Hit, day: Day, ua_id: u64) {
    let _ = write!(sql, "({},{},{},", day.0, h.at_ms, h.link_day.0);
    let _ = match h.version {
        Version::V1 => write!(sql, "NULL,"),
        Version::V2 => write!(sql, "{},", Sealed::from_block(&h.random).id),
    };
    push_hex(sql, &h.random.0);
    let _ = write!(sql, ",{},{},{},{},", h.kind as u8, h.method as u8, h.reason.verdict() as u8, h.reason as u8);
    push_hex(sql, h.ip.as_slice());
    let _ = match h.link_ids {
        Some(ids) => write!(sql, ",{ua_id},{},{})", ids.letter_id, ids.url_id),
        None => write!(sql, ",{ua_id},NULL,NULL)"),
    };
}

/// The rows of `select` (text ending in `day = `) for the distinct ids
/// wanted on each day, by primary key: one query per day and chunk of ids.
async fn by_primary_key<T>(conn: &mut mysql_async::Conn, select: &str, wanted: BTreeMap<Day, Vec<u64>>) -> Result<Vec<(Day, T)>>
where
    T: mysql_async::prelude::FromRow + Send + 'static,
{
    let mut out = Vec::new();
    for (day, mut ids) in wanted {
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(LINK_INFO_CHUNK) {
            // Plain text of numbers, like the event insert: a prepared statement
            // per IN-list length would churn the statement cache.
            let mut sql = format!("{select}{} AND id IN (", day.0);
            for (i, id) in chunk.iter().enumerate() {
                let _ = write!(sql, "{}{id}", if i == 0 { "" } else { "," });
            }
            sql.push(')');
            let rows: Vec<T> = conn.query(sql).await.map_err(db_err)?;
            out.extend(rows.into_iter().map(|r| (day, r)));
        }
    }
    Ok(out)
}

/// Fill in each row's link, letter and URL. Rows that carry their ids read
/// the letter and the URL by primary key, each distinct one once: a query
/// per link day for the letters and one for the URLs (per chunk of ids).
/// The others look their link up ([`join_by_identity`]).
async fn join_links(conn: &mut mysql_async::Conn, page: &mut [EventRow]) -> Result<()> {
    let (mut letter_ids, mut url_ids, mut link_ids): (IdsByDay, IdsByDay, IdsByDay) = Default::default();
    for r in page.iter() {
        if let Some(ids) = r.link_ids {
            letter_ids.entry(r.link_day).or_default().push(ids.letter_id);
            if ids.url_id != 0 {
                url_ids.entry(r.link_day).or_default().push(ids.url_id);
            }
            if r.version == Version::V2 {
                link_ids.entry(r.link_day).or_default().push(Sealed::from_block(&r.random).id);
            }
        }
    }
    if !letter_ids.is_empty() {
        let letters: HashMap<(Day, u64), LetterRow> =
            by_primary_key::<LetterRow>(conn, LETTERS_BY_ID_SQL, letter_ids).await?.into_iter().map(|(d, l)| ((d, l.0), l)).collect();
        let urls: HashMap<(Day, u64), Vec<u8>> =
            by_primary_key::<(u64, Vec<u8>)>(conn, URLS_BY_ID_SQL, url_ids).await?.into_iter().map(|(d, (id, u))| ((d, id), u)).collect();
        let placings: HashMap<(Day, u64), Placing> = by_primary_key::<(u64, u16, u16)>(conn, PLACING_BY_ID_SQL, link_ids)
            .await?
            .into_iter()
            .map(|(d, (id, pos, spell))| ((d, id), (Some(pos), Some(spell))))
            .collect();
        for r in page.iter_mut() {
            if let Some(ids) = r.link_ids {
                let url = urls.get(&(r.link_day, ids.url_id)).map(|u| String::from_utf8_lossy(u).into_owned());
                r.link = letters.get(&(r.link_day, ids.letter_id)).map(|l| letter_info(l.clone(), url));
                if let (Some(link), Version::V2) = (r.link.as_mut(), r.version) {
                    place(link, placings.get(&(r.link_day, Sealed::from_block(&r.random).id)).copied().unwrap_or_default());
                }
            }
        }
    }
    join_by_identity(conn, page).await
}

/// Fill in the link, letter and URL of the rows without ids, through their
/// link: one query per link day, token format and chunk of distinct links.
async fn join_by_identity(conn: &mut mysql_async::Conn, page: &mut [EventRow]) -> Result<()> {
    let mut by_day: BTreeMap<(Day, Version), Vec<Random>> = BTreeMap::new();
    for r in page.iter().filter(|r| r.link_ids.is_none()) {
        by_day.entry((r.link_day, r.version)).or_default().push(r.random);
    }
    if by_day.is_empty() {
        return Ok(());
    }
    let mut found: HashMap<(Day, Version, Random), LinkInfo> = HashMap::new();
    for ((day, version), mut randoms) in by_day {
        randoms.sort_unstable();
        randoms.dedup();
        for chunk in randoms.chunks(LINK_INFO_CHUNK) {
            // Plain text with hex literals and numbers, like the event insert:
            // a prepared statement per IN-list length would churn the statement cache.
            let mut sql = match version {
                Version::V1 => format!("{LINK_INFO_SQL}{} AND l.rnd IN (", day.0),
                Version::V2 => format!("{LINK_INFO_V2_SQL}{} AND l.id IN (", day.0),
            };
            for (i, r) in chunk.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = match version {
                    Version::V1 => write!(sql, "{sep}X'{}'", hex::encode(r.0)),
                    Version::V2 => write!(sql, "{sep}{}", Sealed::from_block(r).id),
                };
            }
            sql.push(')');
            let rows: Vec<LinkInfoRow> = conn.query(sql).await.map_err(db_err)?;
            for (rnd, info) in rows.into_iter().map(link_info) {
                let rnd = Random(rnd.try_into().map_err(|_| Error::Database("links row: bad rnd".into()))?);
                found.insert((day, version, rnd), info);
            }
        }
    }
    for r in page.iter_mut().filter(|r| r.link_ids.is_none()) {
        r.link = found.get(&(r.link_day, r.version, r.random)).cloned();
    }
    Ok(())
}

/// The `stats_totals` row of one key's delta, in column order, as literals;
/// `hashes` are the key's [`stat_hashes`].
pub(super) fn totals_row<'a>(key: &'a StatKey, c: &Counts, hashes: &'a ([u8; 16], [u8; 16])) -> [Lit<'a>; 12] {
    [
        Lit::from(key.tenant.0),
        Lit::from(&hashes.0[..]),
        Lit::from(key.kind as u8),
        Lit::from(&hashes.1[..]),
        Lit::from(key.stored_position()),
        Lit::from(key.mailing_id.as_bytes()),
        Lit::from(key.url.as_deref().map(str::as_bytes)),
        Lit::from(c.human),
        Lit::from(c.bot),
        Lit::from(c.suspect),
        Lit::from(c.unique),
        Lit::from(c.unique_human),
    ]
}

/// The rollup's upsert of totals rows (adds the deltas).
fn totals_upsert_sql(rows: &[[Lit<'_>; 12]]) -> String {
    format!(
        "INSERT INTO stats_totals (tenant, mailing_hash, kind, url_hash, pos, mailing_id, url, human, bot, suspect, uniq, uniq_human) \
         VALUES {} ON DUPLICATE KEY UPDATE human = human + VALUES(human), bot = bot + VALUES(bot), \
         suspect = suspect + VALUES(suspect), uniq = uniq + VALUES(uniq), uniq_human = uniq_human + VALUES(uniq_human)",
        literal::tuples(rows.iter().copied())
    )
}

/// The mint's registration of totals rows (zeros; an existing row is left as it is).
pub(super) fn totals_register_sql(rows: &[[Lit<'_>; 12]]) -> String {
    format!(
        "INSERT INTO stats_totals (tenant, mailing_hash, kind, url_hash, pos, mailing_id, url, human, bot, suspect, uniq, uniq_human) \
         VALUES {} ON DUPLICATE KEY UPDATE tenant = tenant",
        literal::tuples(rows.iter().copied())
    )
}

/// Unique counts: a link not in `link_seen` yet counts once into `uniq`
/// and is added; into `uniq_human` too, or later, the first time a pass
/// sees a human event of it.
async fn count_first_hits<'k>(
    tx: &mut mysql_async::Transaction<'_>,
    a: &'k RollupApply,
    deltas: &mut HashMap<&'k StatKey, Counts>,
) -> Result<()> {
    let mut by_day: BTreeMap<Day, Vec<&crate::events::FirstHit>> = BTreeMap::new();
    for f in &a.first_hits {
        by_day.entry(f.link_day).or_default().push(f);
    }
    for (day, hits) in by_day {
        for chunk in hits.chunks(1000) {
            let rnds = literal::list(chunk.iter().map(|f| Lit::from(&f.random.0[..])));
            #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
            let sql = format!("SELECT rnd, human FROM link_seen WHERE day = {} AND rnd IN ({})", day.0, rnds);
            let seen: HashMap<Vec<u8>, u8> = tx.query::<(Vec<u8>, u8), _>(sql).await.map_err(db_err)?.into_iter().collect();
            let new: Vec<_> = chunk.iter().filter(|f| !seen.contains_key(&f.random.0[..])).collect();
            let now_human: Vec<_> = chunk.iter().filter(|f| f.human && seen.get(&f.random.0[..]) == Some(&0)).collect();
            if !new.is_empty() {
                for f in &new {
                    let d = deltas.entry(&f.key).or_default();
                    d.unique += 1;
                    d.unique_human += i64::from(f.human);
                }
                let rows =
                    literal::tuples(new.iter().map(|f| [Lit::from(&f.random.0[..]), Lit::from(day.0), Lit::from(u8::from(f.human))]));
                #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
                let sql = format!("INSERT INTO link_seen (rnd, day, human) VALUES {}", rows);
                tx.query_drop(sql).await.map_err(|e| insert_err(e, day))?;
            }
            if !now_human.is_empty() {
                for f in &now_human {
                    deltas.entry(&f.key).or_default().unique_human += 1;
                }
                let rnds = literal::list(now_human.iter().map(|f| Lit::from(&f.random.0[..])));
                #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
                let sql = format!("UPDATE link_seen SET human = 1 WHERE day = {} AND rnd IN ({})", day.0, rnds);
                tx.query_drop(sql).await.map_err(db_err)?;
            }
        }
    }
    Ok(())
}

/// `recipients_human`: each letter's first human click, flagged on the
/// letter row (so counted once across passes), adds one to its mailing.
async fn count_letters_human(tx: &mut mysql_async::Transaction<'_>, a: &RollupApply) -> Result<()> {
    let mut by_day: BTreeMap<Day, Vec<&crate::events::LetterHit>> = BTreeMap::new();
    for l in &a.letters_human {
        by_day.entry(l.link_day).or_default().push(l);
    }
    let mut per_mailing: BTreeMap<(u16, [u8; 16]), i64> = BTreeMap::new();
    for (day, letters) in by_day {
        for chunk in letters.chunks(1000) {
            let ids = literal::list(chunk.iter().map(|l| Lit::from(l.letter_id)));
            #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
            let sql = format!("SELECT id FROM letters WHERE day = {} AND id IN ({}) AND human_click = 0", day.0, ids);
            let fresh: HashSet<u64> = tx.query::<u64, _>(sql).await.map_err(db_err)?.into_iter().collect();
            if fresh.is_empty() {
                continue;
            }
            let ids = literal::list(fresh.iter().map(|id| Lit::from(*id)));
            #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
            let sql = format!("UPDATE letters SET human_click = 1 WHERE day = {} AND id IN ({})", day.0, ids);
            tx.query_drop(sql).await.map_err(db_err)?;
            for l in chunk.iter().filter(|l| fresh.contains(&l.letter_id)) {
                *per_mailing.entry((l.tenant.0, hash16(&[l.mailing_id.as_bytes()]))).or_default() += 1;
            }
        }
    }
    for ((tenant, hash), n) in per_mailing {
        tx.exec_drop(
            "UPDATE mailings SET recipients_human = recipients_human + ? WHERE tenant = ? AND mailing_hash = ?",
            (n, tenant, &hash[..]),
        )
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

impl MysqlStore {
    /// Store `batch` in the day max(`today`, the newest day written so far),
    /// decided under the `event_writer` lock so days never go backwards in id
    /// order. The user agents are interned for that day before the lock is
    /// taken; if another writer moved the day on in between (midnight), the
    /// transaction is rolled back and the batch tried again on the new day.
    pub(super) async fn write_events_inner(&self, batch: &EventBatch, today: Day) -> Result<WriteOutcome> {
        let mut conn = self.conn().await?;
        let hashes = ua_hashes(&batch.hits);
        let newest: Option<u16> = conn.query_first(EVENT_DAY_SQL).await.map_err(db_err)?;
        let newest = Day(newest.unwrap_or(0));
        if newest > today.plus(1) {
            // Days never go backwards, so this replica follows; but a clock that far ahead is a fault to fix.
            tracing::warn!(today = %today, newest = %newest, "events were written for a later day: a replica's clock is ahead");
        }
        let mut day = today.max(newest);
        loop {
            let uas = hashes.iter().zip(&batch.hits).map(|(hash, h)| (*hash, h.user_agent.as_slice()));
            let ua_ids = self.intern(&mut conn, Interned::UserAgents, day, uas).await?;
            let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
            let locked: Option<u16> = tx.query_first(concat!(event_day_sql!(), " FOR UPDATE")).await.map_err(db_err)?;
            let locked = Day(locked.ok_or_else(|| Error::Schema("locks has no event_writer row; run `linktrack migrate`".into()))?);
            if locked > day {
                tx.rollback().await.map_err(db_err)?;
                day = locked;
                continue;
            }
            if locked < day {
                tx.exec_drop("UPDATE locks SET day = ? WHERE name = 'event_writer'", (day.0,)).await.map_err(db_err)?;
            }
            return self.write_locked(tx, batch, day, &hashes, &ua_ids).await;
        }
    }

    /// The rest of [`Self::write_events_inner`], holding the writer lock: skip a
    /// batch stored before, else insert its rows and its id, and commit.
    async fn write_locked(
        &self,
        mut tx: mysql_async::Transaction<'_>,
        batch: &EventBatch,
        today: Day,
        hashes: &[[u8; 16]],
        ua_ids: &HashMap<[u8; 16], u64>,
    ) -> Result<WriteOutcome> {
        let seen: Option<u8> = tx
            .exec_first(
                "SELECT 1 FROM event_batches WHERE id = ? AND day BETWEEN ? AND ?",
                (&batch.id[..], batch.formed.min(today).0, today.0),
            )
            .await
            .map_err(db_err)?;
        if seen.is_some() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(WriteOutcome::AlreadyStored);
        }
        // Plain text, not a prepared statement: every batch has a different row
        // count, so a prepared form would be re-prepared each time. Every value
        // is a number or a hex literal, so nothing needs escaping.
        for range in chunk_by_bytes(batch.hits.iter().map(|_| EVENT_ROW_SQL_BYTES), self.packet_budget) {
            let mut sql = String::with_capacity(128 + range.len() * EVENT_ROW_SQL_BYTES);
            sql.push_str(
                "INSERT INTO events (day, at_ms, link_day, link_id, rnd, kind, method, verdict, reason, ip, ua_id, letter_id, url_id) VALUES ",
            );
            for (i, (h, hash)) in batch.hits[range.clone()].iter().zip(&hashes[range]).enumerate() {
                let ua_id = *ua_ids.get(hash).ok_or_else(|| Error::Database("user agent id missing".into()))?;
                if i > 0 {
                    sql.push(',');
                }
                push_event_values(&mut sql, h, today, ua_id);
            }
            tx.query_drop(sql).await.map_err(|e| insert_err(e, today))?;
        }
        tx.exec_drop("INSERT INTO event_batches (id, day) VALUES (?, ?)", (&batch.id[..], today.0))
            .await
            .map_err(|e| insert_err(e, today))?;
        tx.commit().await.map_err(db_err)?;
        Ok(WriteOutcome::Stored)
    }

    pub(super) async fn read_events_inner(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        let mut conn = self.read_conn().await?;
        let (from, after, limit) = (q.after.day.minus(1).0, q.after.id, q.limit as u64);
        if let Some(m) = &q.mailing_id {
            let rows: Vec<Row> = conn.exec(READ_MAILING_EVENTS_SQL, (from, after, m.as_bytes(), limit)).await.map_err(db_err)?;
            return rows
                .into_iter()
                .map(|mut r| {
                    let link = link_columns(&mut r)?;
                    Ok(EventRow { link: Some(link), ..event_row(r)? })
                })
                .collect();
        }
        let rows: Vec<Row> = conn.exec(READ_EVENTS_SQL, (from, after, limit)).await.map_err(db_err)?;
        let mut page = rows.into_iter().map(event_row).collect::<Result<Vec<_>>>()?;
        join_links(&mut conn, &mut page).await?;
        Ok(page)
    }

    pub(super) async fn rollup_state_inner(&self) -> Result<RollupState> {
        let mut conn = self.conn().await?;
        let row: Option<(u16, u64, i64)> =
            conn.query_first("SELECT cursor_day, cursor_id, as_of_ms FROM rollup_state WHERE id = 1").await.map_err(db_err)?;
        let (day, id, as_of_ms) = row.ok_or_else(|| Error::Schema("rollup_state has no row; run `linktrack migrate`".into()))?;
        Ok(RollupState { watermark: Cursor { day: Day(day), id }, as_of_ms })
    }

    pub(super) async fn apply_rollup_inner(&self, a: &RollupApply) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(db_err)?;
        let now: Option<(u16, u64)> =
            tx.query_first("SELECT cursor_day, cursor_id FROM rollup_state WHERE id = 1 FOR UPDATE").await.map_err(db_err)?;
        if now != Some((a.from.day.0, a.from.id)) {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        // Every statement below has as many rows as the pass: text, not prepared (see `literal`).
        // Relabels, grouped into one UPDATE per (day, verdict, reason).
        let mut groups: BTreeMap<(u16, u8, u8), Vec<u64>> = BTreeMap::new();
        for r in &a.relabels {
            groups.entry((r.event.day.0, r.verdict as u8, r.reason as u8)).or_default().push(r.event.id);
        }
        for ((day, verdict, reason), ids) in groups {
            for chunk in ids.chunks(1000) {
                let ids = literal::list(chunk.iter().map(|id| Lit::from(*id)));
                #[allow(clippy::uninlined_format_args, reason = "scripts/sql-routing reads a positional {} as a value")]
                let sql = format!("UPDATE events SET verdict = {}, reason = {} WHERE day = {} AND id IN ({})", verdict, reason, day, ids);
                tx.query_drop(sql).await.map_err(db_err)?;
            }
        }
        let mut deltas: HashMap<&StatKey, Counts> = a.deltas.iter().map(|(k, c)| (k, *c)).collect();
        count_first_hits(&mut tx, a, &mut deltas).await?;
        count_letters_human(&mut tx, a).await?;
        let mut deltas: Vec<(&StatKey, Counts)> = deltas.into_iter().filter(|(_, c)| *c != Counts::default()).collect();
        // In key order, like the mint's registration, so two transactions never wait on each other's rows crosswise.
        deltas.sort_by_key(|(k, _)| super::registry_key(k));
        let hashes: Vec<([u8; 16], [u8; 16])> = deltas.iter().map(|(key, _)| stat_hashes(key)).collect();
        let rows: Vec<[Lit<'_>; 12]> = deltas.iter().zip(&hashes).map(|((key, c), hashes)| totals_row(key, c, hashes)).collect();
        // A mailing id and URL can be kilobytes of hex: chunk by size as well as by count.
        for range in chunk_by_bytes(rows.iter().map(|r| literal::row_len(&r[..])), self.packet_budget) {
            for chunk in rows[range].chunks(500) {
                tx.query_drop(totals_upsert_sql(chunk)).await.map_err(db_err)?;
            }
        }
        let mailing_hashes: Vec<[u8; 16]> = a.series.iter().map(|(key, _)| hash16(&[key.mailing_id.as_bytes()])).collect();
        let rows: Vec<[Lit<'_>; 7]> = a
            .series
            .iter()
            .zip(&mailing_hashes)
            .map(|((key, c), mh)| {
                [
                    Lit::from(key.tenant.0),
                    Lit::from(&mh[..]),
                    Lit::from(key.slot),
                    Lit::from(key.kind as u8),
                    Lit::from(c.human),
                    Lit::from(c.bot),
                    Lit::from(c.suspect),
                ]
            })
            .collect();
        for chunk in rows.chunks(1000) {
            let sql = format!(
                "INSERT INTO stats_series (tenant, mailing_hash, slot, kind, human, bot, suspect) VALUES {} \
                 ON DUPLICATE KEY UPDATE human = human + VALUES(human), bot = bot + VALUES(bot), suspect = suspect + VALUES(suspect)",
                literal::tuples(chunk.iter().copied())
            );
            tx.query_drop(sql).await.map_err(db_err)?;
        }
        tx.exec_drop("UPDATE rollup_state SET cursor_day = ?, cursor_id = ?, as_of_ms = ? WHERE id = 1", (a.to.day.0, a.to.id, a.as_of_ms))
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    pub(super) async fn mailing_stats_inner(&self, tenant: TenantId, mailing_id: &str) -> Result<Option<MailingStats>> {
        let mut conn = self.read_conn().await?;
        let hash = hash16(&[mailing_id.as_bytes()]);
        let Some(recipients_human) = mailing_known(&mut conn, tenant, &hash).await? else { return Ok(None) };
        let rows: Vec<TotalsRow> = conn
            .exec(
                "SELECT kind, url, pos, human, bot, suspect, uniq, uniq_human FROM stats_totals WHERE tenant = ? AND mailing_hash = ?",
                (tenant.0, &hash[..]),
            )
            .await
            .map_err(db_err)?;
        let as_of: Option<i64> = conn.query_first("SELECT as_of_ms FROM rollup_state WHERE id = 1").await.map_err(db_err)?;
        Ok(Some(MailingStats::from_rows(
            rows.into_iter().map(|(kind, url, pos, human, bot, suspect, unique, unique_human)| {
                (kind, text(url), pos, Counts { human, bot, suspect, unique, unique_human })
            }),
            recipients_human,
            as_of.unwrap_or(0),
        )))
    }

    pub(super) async fn mailing_series_inner(
        &self,
        tenant: TenantId,
        mailing_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Option<Vec<SeriesRow>>> {
        let mut conn = self.read_conn().await?;
        let hash = hash16(&[mailing_id.as_bytes()]);
        if mailing_known(&mut conn, tenant, &hash).await?.is_none() {
            return Ok(None);
        }
        let rows: Vec<(u32, u8, i64, i64, i64)> = conn
            .exec(
                "SELECT slot, kind, human, bot, suspect FROM stats_series WHERE tenant = ? AND mailing_hash = ? AND slot BETWEEN ? AND ? \
                 ORDER BY slot, kind",
                (tenant.0, &hash[..], from, to),
            )
            .await
            .map_err(db_err)?;
        Ok(Some(SeriesRow::collect(
            rows.into_iter().map(|(slot, kind, human, bot, suspect)| (slot, kind, Counts { human, bot, suspect, ..Counts::default() })),
        )))
    }
}

/// Whether `tenant` minted for this mailing: its `recipients_human`, or `None`.
async fn mailing_known(conn: &mut mysql_async::Conn, tenant: TenantId, hash: &[u8; 16]) -> Result<Option<i64>> {
    conn.exec_first("SELECT recipients_human FROM mailings WHERE tenant = ? AND mailing_hash = ?", (tenant.0, &hash[..]))
        .await
        .map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_values_are_the_columns_in_order() {
        let mut random = [0u8; 16];
        random[15] = 0xab;
        let mut hit = crate::events::Hit {
            at_ms: 1_795_348_800_001,
            kind: LinkKind::Click,
            method: Method::Head,
            link_day: Day(2161),
            version: Version::V1,
            random: Random(random),
            link_ids: None,
            ip: IpBytes::new("192.0.2.7".parse().unwrap()),
            user_agent: Vec::new(),
            reason: Reason::HeadRequest,
        };
        let mut sql = String::new();
        push_event_values(&mut sql, &hit, Day(2162), 9);
        let (verdict, reason) = (Reason::HeadRequest.verdict() as u8, Reason::HeadRequest as u8);
        let ip = hex::encode(hit.ip.as_slice());
        assert_eq!(sql, format!("(2162,1795348800001,2161,NULL,X'{}',1,2,{verdict},{reason},X'{ip}',9,NULL,NULL)", hex::encode(random)));
        hit.link_ids = Some(crate::link::LinkIds { letter_id: 41, url_id: 42 });
        sql.clear();
        push_event_values(&mut sql, &hit, Day(2162), 9);
        assert!(sql.ends_with(",9,41,42)"), "{sql}");
        hit.version = Version::V2;
        sql.clear();
        push_event_values(&mut sql, &hit, Day(2162), 9);
        let id = Sealed::from_block(&hit.random).id;
        assert!(sql.starts_with(&format!("(2162,1795348800001,2161,{id},X'")), "{sql}");
    }

    #[test]
    fn binary_literals_match_hex_encode() {
        let mut sql = String::new();
        let bytes: Vec<u8> = (0..=255).collect();
        push_hex(&mut sql, &bytes);
        assert_eq!(sql, format!("X'{}'", hex::encode(&bytes)));
    }
}
