//! `GET /v1/mailings/<mailing_id>/stats` and `/series`: a mailing's
//! rolled-up clicks (every link, by URL and position) and opens, and the
//! same over time. Served from the running totals and the rollup's
//! quarter-hour slots; never counts raw events.

use std::fmt::Write as _;

use http::StatusCode;
use percent_encoding::percent_decode_str;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

use crate::events::export::rfc3339_ms;
use crate::events::series::{self, Bucket, Offset};
use crate::events::{Counts, MailingStats};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::link::MAX_MAILING_ID_BYTES as MAX_MAILING_ID;
use crate::store::Store;
use crate::tenant::TenantId;

/// Most buckets one series answer holds (hourly: about 416 days).
pub const MAX_BUCKETS: i64 = 10_000;

fn counts(c: &Counts) -> serde_json::Value {
    serde_json::json!({
        "total": c.total(),
        "human": c.human,
        "bot": c.bot,
        "suspect": c.suspect,
        "unique": c.unique,
        "unique_human": c.unique_human,
    })
}

fn verdicts(c: &Counts) -> serde_json::Value {
    serde_json::json!({ "total": c.total(), "human": c.human, "bot": c.bot, "suspect": c.suspect })
}

/// The mailing id of a percent-encoded path segment.
fn mailing_id(raw_id: &str) -> Result<String, ApiError> {
    let id = percent_decode_str(raw_id).decode_utf8().map_err(|_| ApiError::bad_request("mailing id is not valid UTF-8"))?;
    if id.is_empty() || id.len() > MAX_MAILING_ID {
        return Err(ApiError::bad_request(format!("mailing id must be 1 to {MAX_MAILING_ID} bytes")));
    }
    Ok(id.into_owned())
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no mailing with this id")
}

/// The stats document (also what `linktrack stats` prints from).
pub fn stats_json(id: &str, stats: &MailingStats) -> serde_json::Value {
    let links: Vec<serde_json::Value> =
        stats.links.iter().map(|l| serde_json::json!({ "url": l.url, "position": l.position, "clicks": counts(&l.clicks) })).collect();
    let mut clicks = Counts::default();
    for l in &stats.links {
        clicks.merge(&l.clicks);
    }
    serde_json::json!({
        "mailing_id": id,
        "links": links,
        "clicks": counts(&clicks),
        "recipients_human": stats.recipients_human,
        "opens": counts(&stats.opens),
        "as_of": rfc3339_ms(stats.as_of_ms),
    })
}

/// `raw_id` is the percent-encoded path segment.
/// Another tenant's mailing is a `404`, exactly like one that does not exist.
pub async fn mailing_stats<S: Store>(st: &AppState<S>, tenant: TenantId, raw_id: &str) -> Result<(StatusCode, String), ApiError> {
    let id = mailing_id(raw_id)?;
    Ok((StatusCode::OK, stats_document(&*st.store, tenant, &id).await?.to_string()))
}

/// A series request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub bucket: Bucket,
    pub tz: Offset,
    /// Unix seconds; `None`: from the mailing's first hit.
    pub from: Option<i64>,
    /// Unix seconds, exclusive; `None`: now.
    pub to: Option<i64>,
}

/// `from`/`to`: an RFC 3339 instant, or a date (`YYYY-MM-DD`, midnight in `tz`).
fn instant(name: &str, v: &str, tz: Offset) -> Result<i64, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let offset = UtcOffset::from_whole_seconds(tz.secs).map_err(|_| ApiError::bad_request("bad tz"))?;
    Date::parse(v, &format)
        .map(|d| d.midnight().assume_offset(offset).unix_timestamp())
        .map_err(|_| ApiError::bad_request(format!("`{name}` must be an RFC 3339 time (2026-12-01T10:00:00Z) or a date (2026-12-01)")))
}

/// Parse the series query string.
pub fn parse_series_query(query: Option<&str>) -> Result<SeriesQuery, ApiError> {
    let mut seen: Vec<String> = Vec::new();
    let mut raw: [Option<String>; 4] = Default::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if seen.iter().any(|s| *s == k) {
            return Err(ApiError::bad_request(format!("parameter `{k}` is given more than once")));
        }
        seen.push(k.clone().into_owned());
        let slot = match &*k {
            "bucket" => 0,
            "tz" => 1,
            "from" => 2,
            "to" => 3,
            other => return Err(ApiError::bad_request(format!("unknown parameter `{other}`"))),
        };
        raw[slot] = Some(v.into_owned()).filter(|v| !v.is_empty());
    }
    let [bucket, tz, from, to] = raw;
    let bucket = bucket.map_or(Ok(Bucket::Hour), |b| b.parse::<Bucket>()).map_err(ApiError::bad_request)?;
    let tz = tz.map_or(Ok(Offset::UTC), |t| Offset::parse(&t)).map_err(ApiError::bad_request)?;
    let from = from.map(|v| instant("from", &v, tz)).transpose()?;
    let to = to.map(|v| instant("to", &v, tz)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    Ok(SeriesQuery { bucket, tz, from, to })
}

/// The series document for `[from, to)`.
pub fn series_json(id: &str, q: &SeriesQuery, from: i64, to: i64, rows: &[crate::events::SeriesRow], as_of_ms: i64) -> serde_json::Value {
    let offset = UtcOffset::from_whole_seconds(q.tz.secs).unwrap_or(UtcOffset::UTC);
    let local = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t).ok().map(|d| d.to_offset(offset)).and_then(|d| d.format(&Rfc3339).ok()).unwrap_or_default()
    };
    let points: Vec<serde_json::Value> = series::buckets(rows, from, to, q.bucket, q.tz)
        .iter()
        .map(|p| serde_json::json!({ "start": local(p.start), "clicks": verdicts(&p.clicks), "opens": verdicts(&p.opens) }))
        .collect();
    serde_json::json!({
        "mailing_id": id,
        "bucket": q.bucket.as_str(),
        "tz": q.tz.to_string(),
        "from": local(series::bucket_start(from, q.bucket, q.tz)),
        "to": local(to),
        "buckets": points,
        "as_of": rfc3339_ms(as_of_ms),
    })
}

/// `GET /v1/mailings/<id>/series?bucket=hour|day&tz&from&to`.
pub async fn mailing_series<S: Store>(
    st: &AppState<S>,
    tenant: TenantId,
    raw_id: &str,
    query: Option<&str>,
) -> Result<(StatusCode, String), ApiError> {
    let id = mailing_id(raw_id)?;
    let q = parse_series_query(query)?;
    let doc = series_document(&*st.store, tenant, &id, &q, st.clock.now_ms()).await?;
    Ok((StatusCode::OK, doc.to_string()))
}

/// The series document of one of `tenant`'s mailings (`GET .../series`, `linktrack stats --series`).
pub async fn series_document<S: Store>(
    store: &S,
    tenant: TenantId,
    id: &str,
    q: &SeriesQuery,
    now_ms: i64,
) -> Result<serde_json::Value, ApiError> {
    let to = q.to.unwrap_or(now_ms.div_euclid(1000) + 1);
    // Without `from`, the series starts at the mailing's first hit: read from the start of time.
    let (first, last) = series::slot_range(q.from.unwrap_or(0), to);
    let rows = store.mailing_series(tenant, id, first, last).await?.ok_or_else(not_found)?;
    let from = q.from.unwrap_or_else(|| rows.first().map_or(to - 1, |r| i64::from(r.slot) * crate::events::SLOT_SECS));
    let n = series::bucket_count(from, to, q.bucket, q.tz);
    if n > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "{n} {} buckets; at most {MAX_BUCKETS}: narrow `from`/`to` or use bucket=day",
            q.bucket.as_str()
        )));
    }
    let as_of = store.rollup_state().await?.as_of_ms;
    Ok(series_json(id, q, from, to, &rows, as_of))
}

/// The stats document of one of `tenant`'s mailings (`GET .../stats`, `linktrack stats`).
pub async fn stats_document<S: Store>(store: &S, tenant: TenantId, id: &str) -> Result<serde_json::Value, ApiError> {
    let stats = store.mailing_stats(tenant, id).await?.ok_or_else(not_found)?;
    Ok(stats_json(id, &stats))
}

/// The stats (and series) documents as text tables, for a terminal.
pub fn render_tables(stats: &serde_json::Value, series: Option<&serde_json::Value>) -> String {
    use comfy_table::presets::UTF8_FULL_CONDENSED;
    use comfy_table::{CellAlignment, Table};
    let n = |v: &serde_json::Value| v.as_i64().map_or_else(|| "-".to_owned(), |n| n.to_string());
    let numeric = |t: &mut Table, from: usize| {
        for i in from..t.column_count() {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    };
    let mut out = format!(
        "mailing {}, counted up to {} (UTC)\n",
        stats["mailing_id"].as_str().unwrap_or("?"),
        stats["as_of"].as_str().unwrap_or("?")
    );
    let mut links = Table::new();
    links.load_preset(UTF8_FULL_CONDENSED).set_header(["position", "url", "total", "human", "bot", "suspect", "unique", "unique humans"]);
    let row = |t: &mut Table, first: [String; 2], c: &serde_json::Value| {
        let counts = ["total", "human", "bot", "suspect", "unique", "unique_human"].map(|k| n(&c[k]));
        t.add_row(first.into_iter().chain(counts));
    };
    for l in stats["links"].as_array().into_iter().flatten() {
        row(&mut links, [n(&l["position"]), l["url"].as_str().unwrap_or("").to_owned()], &l["clicks"]);
    }
    row(&mut links, [String::new(), "all links".into()], &stats["clicks"]);
    row(&mut links, [String::new(), "opens".into()], &stats["opens"]);
    numeric(&mut links, 2);
    out.push_str(&links.to_string());
    let _ = write!(
        out,
        "\nrecipients with a human click: {}; with a human open: {}\n",
        n(&stats["recipients_human"]),
        n(&stats["opens"]["unique_human"])
    );
    if let Some(series) = series {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            format!("{} ({})", series["bucket"].as_str().unwrap_or("bucket"), series["tz"].as_str().unwrap_or("")),
            "clicks human".into(),
            "clicks bot".into(),
            "clicks suspect".into(),
            "opens human".into(),
            "opens bot".into(),
            "opens suspect".into(),
        ]);
        for b in series["buckets"].as_array().into_iter().flatten() {
            let start = b["start"].as_str().unwrap_or("").to_owned();
            let cells = [&b["clicks"], &b["opens"]].into_iter().flat_map(|c| [n(&c["human"]), n(&c["bot"]), n(&c["suspect"])]);
            t.add_row(std::iter::once(start).chain(cells));
        }
        numeric(&mut t, 1);
        out.push('\n');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_queries_parse_and_refuse_what_they_cannot_mean() {
        let q = parse_series_query(Some("bucket=day&tz=%2B05:30&from=2026-12-01&to=2026-12-03T00:00:00Z")).unwrap();
        assert_eq!(q.bucket, Bucket::Day);
        assert_eq!(q.tz.secs, 5 * 3600 + 1800);
        assert_eq!(q.from, Some(1_796_083_200 - 5 * 3600 - 1800), "a date is midnight in tz");
        assert_eq!(q.to, Some(1_796_083_200 + 2 * 86_400));
        assert_eq!(parse_series_query(None).unwrap(), SeriesQuery { bucket: Bucket::Hour, tz: Offset::UTC, from: None, to: None });
        for bad in ["bucket=week", "tz=+02:10", "from=yesterday", "from=2026-12-02&to=2026-12-01", "bucket=day&bucket=hour", "x=1"] {
            let e = parse_series_query(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
