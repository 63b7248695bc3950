//! `GET /v1/events?after=<cursor>&limit=<n>&format=ndjson|csv[&mailing_id=...]`:
//! the raw event export, streamed page by page. Every row carries its own
//! `cursor`; a job resumes by passing the last cursor it processed, and
//! rerunning from a cursor yields the same following rows (events are only
//! appended after it).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Either, StreamBody};
use hyper::body::Frame;

use crate::events::Cursor;
use crate::events::export::{ExportFormat, Pager, csv_header, write_rows};
use crate::http::AppState;
use crate::http::error::{ApiError, Body};
use crate::store::Store;
use crate::tenant::TenantId;

/// Rows returned when the request names no `limit`.
const DEFAULT_LIMIT: u64 = 1000;

/// The parsed query string.
#[derive(Debug)]
pub struct ExportQuery {
    pub after: Cursor,
    pub limit: u64,
    pub format: ExportFormat,
    pub mailing_id: Option<String>,
}

/// Parse the export's query string (the fuzz target `export_cursor` drives it).
pub fn parse_query(query: Option<&str>, max_limit: usize) -> Result<ExportQuery, ApiError> {
    let mut q = ExportQuery { after: Cursor::START, limit: DEFAULT_LIMIT, format: ExportFormat::Ndjson, mailing_id: None };
    let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        // A repeated parameter is ambiguous (first or last?): say so rather than pick one.
        if seen.contains(&k) {
            return Err(ApiError::bad_request(format!("parameter `{k}` is given more than once")));
        }
        seen.push(k.clone());
        match &*k {
            "after" if v.is_empty() => {}
            "after" => {
                q.after = Cursor::decode(&v)
                    .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", "`after` is not a cursor from this export"))?;
            }
            "limit" => {
                q.limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max_limit as u64).contains(n))
                    .ok_or_else(|| ApiError::invalid(format!("`limit` must be an integer from 1 to {max_limit}")))?;
            }
            "format" => {
                q.format = v.parse().map_err(|_| ApiError::bad_request("`format` must be ndjson or csv"))?;
            }
            "mailing_id" if !v.is_empty() => q.mailing_id = Some(v.into_owned()),
            "mailing_id" => {}
            other => return Err(ApiError::bad_request(format!("unknown parameter `{other}`"))),
        }
    }
    Ok(q)
}

/// Start the export: the first page is read before the response starts, so a
/// store failure is still a clean `503`; later pages stream, and a failure
/// there aborts the body (the client sees a truncated transfer, not a clean end).
/// Only `tenant`'s events are exported.
pub async fn events<S: Store>(st: &Arc<AppState<S>>, tenant: TenantId, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let q = parse_query(query, st.export_max_limit)?;
    let mut pager = Pager::new(st.store.clone(), tenant, q.after, q.limit, q.mailing_id);
    let first = pager.next().await?;
    let format = q.format;
    let mut head = if format == ExportFormat::Csv { csv_header() } else { Vec::new() };
    // The ring as it stands now, for the whole export: tokens are written again from it.
    let keys: Arc<crate::token::KeyRing> = Arc::clone(&st.keys.load());
    if let Some(rows) = &first {
        write_rows(format, rows, Some(&keys), &mut head)?;
    }
    let rest = futures_util::stream::unfold((pager, first.is_some()), move |(mut pager, more)| {
        let keys = keys.clone();
        async move {
            if !more {
                return None;
            }
            match pager.next().await {
                Ok(Some(rows)) => {
                    let mut buf = Vec::new();
                    match write_rows(format, &rows, Some(&keys), &mut buf) {
                        Ok(()) => Some((Ok(Frame::data(Bytes::from(buf))), (pager, true))),
                        Err(e) => Some((Err(std::io::Error::other(e.to_string())), (pager, false))),
                    }
                }
                Ok(None) => None,
                Err(e) => {
                    crate::log_limited!(warn, error = %e, "event export aborted mid-stream");
                    Some((Err(std::io::Error::other(e.to_string())), (pager, false)))
                }
            }
        }
    });
    let head = futures_util::stream::iter([Ok(Frame::data(Bytes::from(head)))]);
    let body = StreamBody::new(futures_util::StreamExt::chain(head, rest));
    let mut response = Response::new(Either::Right(BodyExt::boxed_unsync(body)));
    *response.status_mut() = StatusCode::OK;
    let content_type = match format {
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;

    #[test]
    fn query_parsing_is_strict() {
        let q = parse_query(Some("after=2517-9&limit=50&format=csv&mailing_id=m%201"), 100).unwrap();
        assert_eq!(q.after, Cursor { day: Day(2517), id: 9 });
        assert_eq!((q.limit, q.format, q.mailing_id.as_deref()), (50, ExportFormat::Csv, Some("m 1")));
        let q = parse_query(None, 100).unwrap();
        assert_eq!((q.after, q.limit, q.format), (Cursor::START, DEFAULT_LIMIT, ExportFormat::Ndjson));
        for bad in ["after=xyz", "limit=0", "limit=101", "limit=-1", "format=xml", "offset=5"] {
            assert!(parse_query(Some(bad), 100).is_err(), "{bad}");
        }
        assert_eq!(parse_query(Some("after=zz"), 100).unwrap_err().code, "bad_cursor");
    }
}
