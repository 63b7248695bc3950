//! Export rows: one event per NDJSON line or CSV record, each with its own
//! `cursor`, and everything a job needs without joins (URL, mailing,
//! recipient, meta). Shared by `GET /v1/events` and `linktrack export`.

use std::str::FromStr;
use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::{Cursor, EventQuery, EventRow};
use crate::link::LinkKind;
use crate::store::Store;
use crate::tenant::TenantId;
use crate::token::{KeyRing, Version, respell_v2};
use crate::{Error, Result};

/// Formats of the event export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

impl ExportFormat {
    /// The format names, as `FromStr` accepts them (`format=` and `--format`).
    pub const NAMES: [&str; 2] = ["ndjson", "csv"];
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ndjson" => Ok(ExportFormat::Ndjson),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(format!("format must be one of {}", ExportFormat::NAMES.join(", "))),
        }
    }
}

/// CSV columns, in order; NDJSON objects carry the same keys.
pub const COLUMNS: [&str; 16] = [
    "cursor",
    "at",
    "kind",
    "method",
    "verdict",
    "reason",
    "ip",
    "user_agent",
    "link_day",
    "url",
    "mailing_id",
    "recipient",
    "meta",
    "letter_id",
    "token",
    "position",
];

/// Rows read from the store per page.
pub const PAGE: usize = 1000;

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn kind_str(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Click => "click",
        LinkKind::Open => "open",
    }
}

/// The CSV header line.
pub fn csv_header() -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    w.into_inner().unwrap_or_default()
}

/// Append `rows` to `out` in `format` (without a CSV header).
/// A CSV cell a spreadsheet would run as a formula (it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP's CSV
/// injection guidance recommends; every other cell is written as is. User
/// agents come from whoever clicks, and minted fields from the API caller.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}").into() } else { cell.into() }
}

/// The token of an event's link, written again from its stored spelling:
/// `None` for v1 links, links minted before spellings were recorded, and
/// links whose minting key has left the ring (or with no ring at hand).
pub fn token_of(r: &EventRow, keys: Option<&KeyRing>) -> Option<String> {
    if r.version != Version::V2 {
        return None;
    }
    let spelling = r.link.as_ref()?.spelling?;
    respell_v2(keys?, r.link_day, &r.random, spelling).map(|t| t.as_str().to_owned())
}

/// One event as an NDJSON export row (and a webhook delivery's element).
pub fn row_json(r: &EventRow, keys: Option<&KeyRing>) -> serde_json::Value {
    let link = r.link.as_ref();
    let meta: serde_json::Value = link
        .and_then(|l| l.meta.as_deref())
        .map_or(serde_json::Value::Null, |m| serde_json::from_str(m).unwrap_or_else(|_| serde_json::Value::String(m.to_owned())));
    serde_json::json!({
        "cursor": r.cursor.encode(),
        "at": rfc3339_ms(r.at_ms),
        "kind": kind_str(r.kind),
        "method": r.method.as_str(),
        "verdict": r.verdict.as_str(),
        "reason": r.reason.as_str(),
        "ip": r.ip.addr().to_string(),
        "user_agent": r.user_agent,
        "link_day": r.link_day.to_string(),
        "url": link.and_then(|l| l.url.as_deref()),
        "mailing_id": link.map(|l| l.mailing_id.as_str()),
        "recipient": link.map(|l| l.recipient.as_str()),
        "meta": meta,
        "letter_id": link.map(|l| l.letter_id),
        "token": token_of(r, keys),
        "position": link.and_then(|l| l.position),
    })
}

/// Append `rows` to `out` in `format` (without a CSV header); `keys` name
/// each event's token ([`token_of`]).
pub fn write_rows(format: ExportFormat, rows: &[EventRow], keys: Option<&KeyRing>, out: &mut Vec<u8>) -> Result<()> {
    match format {
        ExportFormat::Ndjson => {
            for r in rows {
                serde_json::to_writer(&mut *out, &row_json(r, keys))?;
                out.push(b'\n');
            }
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::mem::take(out));
            for r in rows {
                let link = r.link.as_ref();
                let (day, ip) = (r.link_day.to_string(), r.ip.addr().to_string());
                let letter = link.map(|l| l.letter_id.to_string()).unwrap_or_default();
                let cursor = r.cursor.encode();
                let token = token_of(r, keys).unwrap_or_default();
                let position = link.and_then(|l| l.position).map(|p| p.to_string()).unwrap_or_default();
                let cells = [
                    cursor.as_str(),
                    &rfc3339_ms(r.at_ms),
                    kind_str(r.kind),
                    r.method.as_str(),
                    r.verdict.as_str(),
                    r.reason.as_str(),
                    &ip,
                    &r.user_agent,
                    &day,
                    link.and_then(|l| l.url.as_deref()).unwrap_or(""),
                    link.map_or("", |l| l.mailing_id.as_str()),
                    link.map_or("", |l| l.recipient.as_str()),
                    link.and_then(|l| l.meta.as_deref()).unwrap_or(""),
                    &letter,
                    &token,
                    &position,
                ];
                for cell in cells {
                    w.write_field(neutralise(cell).as_bytes()).map_err(|e| Error::Io(std::io::Error::other(e)))?;
                }
                w.write_record(None::<&[u8]>).map_err(|e| Error::Io(std::io::Error::other(e)))?;
            }
            *out = w.into_inner().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        }
    }
    Ok(())
}

/// Pages through the events after a cursor, up to a limit.
#[derive(Debug)]
pub struct Pager<S> {
    store: Arc<S>,
    /// Only events of this tenant's letters; `None` for all (the CLI).
    tenant: Option<TenantId>,
    after: Cursor,
    left: u64,
    mailing_id: Option<String>,
    done: bool,
}

impl<S: Store> Pager<S> {
    pub fn new(store: Arc<S>, tenant: impl Into<Option<TenantId>>, after: Cursor, limit: u64, mailing_id: Option<String>) -> Pager<S> {
        Pager { store, tenant: tenant.into(), after, left: limit, mailing_id, done: limit == 0 }
    }

    /// The next page, or `None` when the limit is reached or there are no more events.
    ///
    /// With a tenant, events of other tenants' letters (and events whose
    /// link is gone, which no tenant can be shown to own) are skipped; pages
    /// that hold only those are read past, so an empty answer still means
    /// the end of the events.
    pub async fn next(&mut self) -> Result<Option<Vec<EventRow>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let limit = usize::try_from(self.left).unwrap_or(usize::MAX).min(PAGE);
            let q = EventQuery { after: self.after, limit, mailing_id: self.mailing_id.clone() };
            let mut rows = self.store.export_events(&q).await?;
            let full = rows.len() == limit;
            let Some(last) = rows.last() else {
                self.done = true;
                return Ok(None);
            };
            self.after = last.cursor;
            if let Some(tenant) = self.tenant {
                rows.retain(|r| r.link.as_ref().is_some_and(|l| l.tenant == tenant));
            }
            self.left -= rows.len() as u64;
            self.done = !full || self.left == 0;
            if !rows.is_empty() {
                return Ok(Some(rows));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;
    use crate::events::{IpBytes, LinkInfo, Method, Reason, Verdict};
    use crate::token::{Random, Version};

    fn row(user_agent: &str, mailing_id: &str, recipient: &str) -> EventRow {
        EventRow {
            cursor: Cursor { day: Day(2517), id: 7 },
            at_ms: 1_795_348_800_000,
            kind: LinkKind::Click,
            method: Method::Get,
            verdict: Verdict::Human,
            reason: Reason::None,
            link_day: Day(2517),
            version: Version::V2,
            random: Random([1; 16]),
            link_ids: Some(crate::link::LinkIds { letter_id: 3, url_id: 4 }),
            ip: IpBytes::new("198.51.100.7".parse().unwrap()),
            user_agent: user_agent.to_owned(),
            link: Some(LinkInfo {
                letter_id: 3,
                tenant: TenantId::DEFAULT,
                url: Some("https://a.example/".into()),
                mailing_id: mailing_id.to_owned(),
                recipient: recipient.to_owned(),
                meta: Some(r#"{"a":"-1"}"#.into()),
                minted_at: 0,
                letter_links: 1,
                position: Some(2),
                spelling: None,
            }),
        }
    }

    #[test]
    fn csv_cells_that_start_a_formula_are_neutralised() {
        let rows =
            [row("=cmd|'/C calc'!A0", "+SUM(A1)", "@alice"), row("-2+3", "\tx", "\rbob"), row("Mozilla/5.0", "spring", "a@b.example")];
        let mut out = Vec::new();
        write_rows(ExportFormat::Csv, &rows, None, &mut out).unwrap();
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(&out[..]);
        let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        let ua_mailing_recipient = |r: &csv::StringRecord| (r[7].to_owned(), r[10].to_owned(), r[11].to_owned());
        assert_eq!(ua_mailing_recipient(&records[0]), ("'=cmd|'/C calc'!A0".into(), "'+SUM(A1)".into(), "'@alice".into()));
        assert_eq!(ua_mailing_recipient(&records[1]), ("'-2+3".into(), "'\tx".into(), "'\rbob".into()));
        assert_eq!(ua_mailing_recipient(&records[2]), ("Mozilla/5.0".into(), "spring".into(), "a@b.example".into()));
        // NDJSON carries the values as they are: JSON has no formulas.
        let mut json = Vec::new();
        write_rows(ExportFormat::Ndjson, &rows[..1], None, &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!((v["user_agent"].as_str(), v["mailing_id"].as_str()), (Some("=cmd|'/C calc'!A0"), Some("+SUM(A1)")));
    }
}
