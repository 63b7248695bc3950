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

use super::{Interned, MysqlStore, chunk_by_bytes, db_err, insert_err, placeholders};
use crate::day::Day;
use crate::events::{
    Counts, Cursor, EventBatch, EventQuery, EventRow, IpBytes, LinkInfo, MailingStats, Method, Reason, RollupApply, RollupState, StatKey,
    Verdict, WriteOutcome,
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

/// Events without ids (a pixel answered while the database was down, a
/// batch spooled before migration 0005) look each distinct link up once, per
/// link day, with its letter and URL: repeat clicks, scanner retries and
/// re-opened pixels share one lookup. v1 links by `UNIQUE (rnd, day)`
/// (followed by `<day> AND l.rnd IN (...)`), v2 links by primary key
/// (followed by `<day> AND l.id IN (...)`), answering their block, so a
/// wrong secret matches nothing.
macro_rules! link_info_sql {
    ($identity:literal, $table:literal) => {
        concat!(
            "SELECT ",
            $identity,
            ", ",
            letter_columns!(),
            " FROM ",
            $table,
            " l JOIN letters lt ON lt.id = l.letter_id AND lt.day = l.day \
             LEFT JOIN urls u ON u.id = l.url_id AND u.day = l.day WHERE l.day = "
        )
    };
}
const LINK_INFO_SQL: &str = link_info_sql!("l.rnd", "links");
const LINK_INFO_V2_SQL: &str = link_info_sql!("CONCAT(UNHEX(LPAD(HEX(l.id), 12, '0')), l.secret)", "links_v2");

/// One mailing's events: the filter needs every event's letter, so it runs
/// in the join, on the server, in one statement, rather than fetching every
/// other mailing's events to drop them here. The letter and URL by the
/// event's own ids; only an event without them joins its link.
const READ_MAILING_EVENTS_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    ", e.rnd, ",
    letter_columns!(),
    " FROM events e \
     LEFT JOIN user_agents ua ON ua.id = e.ua_id AND ua.day = e.day \
     LEFT JOIN links l ON e.letter_id IS NULL AND e.link_id IS NULL AND l.rnd = e.rnd AND l.day = e.link_day \
     LEFT JOIN links_v2 l2 ON e.letter_id IS NULL AND l2.id = e.link_id AND l2.day = e.link_day AND l2.secret = SUBSTRING(e.rnd, 7) \
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

/// A `LINK_INFO_SQL` row: `rnd`, letter id, `minted_at`, `click_links`, mailing, recipient, meta, tenant, url.
type LinkInfoRow = (Vec<u8>, u64, i64, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, u16, Option<Vec<u8>>);

/// A `LETTERS_BY_ID_SQL` row: id, `minted_at`, `click_links`, mailing, recipient, meta, tenant.
type LetterRow = (u64, i64, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, u16);

/// `stats_totals` columns: kind, url, human, bot, suspect, uniq.
type TotalsRow = (u8, Option<Vec<u8>>, i64, i64, i64, i64);

/// Bytes of SQL text one event row adds to a multi-row INSERT, generously.
const EVENT_ROW_SQL_BYTES: usize = 192;

fn stat_hashes(key: &StatKey) -> ([u8; 16], [u8; 16]) {
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
    );
    Ok(link_info(row).1)
}

fn link_info(row: LinkInfoRow) -> (Vec<u8>, LinkInfo) {
    let (rnd, letter_id, minted_at, letter_links, mailing_id, recipient, meta, tenant, url) = row;
    (rnd, letter_info((letter_id, minted_at, letter_links, mailing_id, recipient, meta, tenant), text(url)))
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

/// Append `X'<hex>'`, a binary literal, to `sql`.
fn push_hex(sql: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    sql.push_str("X'");
    for b in bytes {
        sql.push(char::from(DIGITS[usize::from(b >> 4)]));
        sql.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    sql.push('\'');
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
    let (mut letter_ids, mut url_ids): (BTreeMap<Day, Vec<u64>>, BTreeMap<Day, Vec<u64>>) = Default::default();
    for r in page.iter() {
        if let Some(ids) = r.link_ids {
            letter_ids.entry(r.link_day).or_default().push(ids.letter_id);
            if ids.url_id != 0 {
                url_ids.entry(r.link_day).or_default().push(ids.url_id);
            }
        }
    }
    if !letter_ids.is_empty() {
        let letters: HashMap<(Day, u64), LetterRow> =
            by_primary_key::<LetterRow>(conn, LETTERS_BY_ID_SQL, letter_ids).await?.into_iter().map(|(d, l)| ((d, l.0), l)).collect();
        let urls: HashMap<(Day, u64), Vec<u8>> =
            by_primary_key::<(u64, Vec<u8>)>(conn, URLS_BY_ID_SQL, url_ids).await?.into_iter().map(|(d, (id, u))| ((d, id), u)).collect();
        for r in page.iter_mut() {
            if let Some(ids) = r.link_ids {
                let url = urls.get(&(r.link_day, ids.url_id)).map(|u| String::from_utf8_lossy(u).into_owned());
                r.link = letters.get(&(r.link_day, ids.letter_id)).map(|l| letter_info(l.clone(), url));
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
        // Relabels, grouped into one UPDATE per (day, verdict, reason).
        let mut groups: BTreeMap<(u16, u8, u8), Vec<u64>> = BTreeMap::new();
        for r in &a.relabels {
            groups.entry((r.event.day.0, r.verdict as u8, r.reason as u8)).or_default().push(r.event.id);
        }
        for ((day, verdict, reason), ids) in groups {
            for chunk in ids.chunks(1000) {
                let sql = format!("UPDATE events SET verdict = ?, reason = ? WHERE day = ? AND id IN ({})", placeholders(chunk.len(), "?"));
                let mut params = vec![Value::from(verdict), Value::from(reason), Value::from(day)];
                params.extend(chunk.iter().map(|id| Value::from(*id)));
                tx.exec_drop(sql, params).await.map_err(db_err)?;
            }
        }
        // Unique counts: links not in link_seen yet count once, and are added.
        let mut deltas: HashMap<&StatKey, Counts> = a.deltas.iter().map(|(k, c)| (k, *c)).collect();
        let mut by_day: BTreeMap<Day, Vec<&crate::events::FirstHit>> = BTreeMap::new();
        for f in &a.first_hits {
            by_day.entry(f.link_day).or_default().push(f);
        }
        for (day, hits) in by_day {
            for chunk in hits.chunks(1000) {
                let sql = format!("SELECT rnd FROM link_seen WHERE day = ? AND rnd IN ({})", placeholders(chunk.len(), "?"));
                let mut params = vec![Value::from(day.0)];
                params.extend(chunk.iter().map(|f| Value::from(&f.random.0[..])));
                let seen: HashSet<Vec<u8>> = tx.exec::<Vec<u8>, _, _>(sql, params).await.map_err(db_err)?.into_iter().collect();
                let new: Vec<_> = chunk.iter().filter(|f| !seen.contains(&f.random.0[..])).collect();
                if new.is_empty() {
                    continue;
                }
                let sql = format!("INSERT INTO link_seen (rnd, day) VALUES {}", placeholders(new.len(), "(?, ?)"));
                let mut params = Vec::with_capacity(new.len() * 2);
                for f in &new {
                    params.extend([Value::from(&f.random.0[..]), Value::from(day.0)]);
                    deltas.entry(&f.key).or_default().unique += 1;
                }
                tx.exec_drop(sql, params).await.map_err(|e| insert_err(e, day))?;
            }
        }
        let deltas: Vec<(&StatKey, Counts)> = deltas.into_iter().filter(|(_, c)| *c != Counts::default()).collect();
        for chunk in deltas.chunks(500) {
            let sql = format!(
                "INSERT INTO stats_totals (tenant, mailing_hash, kind, url_hash, mailing_id, url, human, bot, suspect, uniq) VALUES {} \
                 ON DUPLICATE KEY UPDATE human = human + VALUES(human), bot = bot + VALUES(bot), \
                 suspect = suspect + VALUES(suspect), uniq = uniq + VALUES(uniq)",
                placeholders(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            );
            let mut params = Vec::with_capacity(chunk.len() * 10);
            for (key, c) in chunk {
                let (mh, uh) = stat_hashes(key);
                params.extend([
                    Value::from(key.tenant.0),
                    Value::from(&mh[..]),
                    Value::from(key.kind as u8),
                    Value::from(&uh[..]),
                    Value::from(key.mailing_id.as_bytes()),
                    Value::from(key.url.as_deref().map(str::as_bytes)),
                    Value::from(c.human),
                    Value::from(c.bot),
                    Value::from(c.suspect),
                    Value::from(c.unique),
                ]);
            }
            tx.exec_drop(sql, params).await.map_err(db_err)?;
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
        let rows: Vec<TotalsRow> = conn
            .exec(
                "SELECT kind, url, human, bot, suspect, uniq FROM stats_totals WHERE tenant = ? AND mailing_hash = ?",
                (tenant.0, &hash[..]),
            )
            .await
            .map_err(db_err)?;
        if rows.is_empty() {
            // No hits yet: a mailing of this tenant has zeros, any other is unknown.
            let known: Option<u8> = conn
                .exec_first("SELECT 1 FROM mailings WHERE tenant = ? AND mailing_hash = ?", (tenant.0, &hash[..]))
                .await
                .map_err(db_err)?;
            if known.is_none() {
                return Ok(None);
            }
        }
        let as_of: Option<i64> = conn.query_first("SELECT as_of_ms FROM rollup_state WHERE id = 1").await.map_err(db_err)?;
        Ok(Some(MailingStats::from_rows(
            rows.into_iter().map(|(kind, url, human, bot, suspect, unique)| (kind, text(url), Counts { human, bot, suspect, unique })),
            as_of.unwrap_or(0),
        )))
    }
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
