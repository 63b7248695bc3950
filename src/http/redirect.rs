//! `GET|HEAD /c/<token>` (302 to the minted URL) and `/o/<token>` (1x1 GIF).
//!
//! The order is the whole point: the token's MAC is verified first, so
//! forged, garbage and malformed tokens cost no cache or database work; the
//! token's day then rejects expired links (fallback or 404) with no query;
//! only then the cache, the negative cache, and finally one single-partition
//! store lookup.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::Error;
use crate::cache::CachedLink;
use crate::events::{Hit, IpBytes, MAX_USER_AGENT, Method};
use crate::http::AppState;
use crate::http::client_ip::client_ip;
use crate::http::error::{ApiError, Body, full};
use crate::link::{LinkIds, LinkKind};
use crate::store::Store;
use crate::store::plan::oldest_kept;
use crate::token::{self, Parsed};

/// What the event of a hit needs from its request.
#[derive(Debug, Clone, Copy)]
pub struct HitRequest<'a> {
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub peer: IpAddr,
}

/// The 43-byte transparent 1x1 GIF.
pub const PIXEL_GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

fn redirect(location: HeaderValue) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(LOCATION, location);
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert("referrer-policy", NO_REFERRER);
    resp
}

fn pixel() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(PIXEL_GIF)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("43"));
    h.insert(CACHE_CONTROL, NO_STORE);
    resp
}

/// Answer a click or open for `raw` (the path segment after `/c/` or `/o/`),
/// and record an event for every hit that is answered with the link.
pub async fn follow<S: Store>(st: &AppState<S>, want: LinkKind, raw: &str, req: HitRequest<'_>) -> Response<Body> {
    let today = st.clock.today();
    let parsed = match token::parse(raw.as_bytes(), &st.keys.load(), today) {
        Ok(p) => p,
        Err(e) => {
            tracing::trace!(token = %token::shorten(raw), error = %e, "rejected token");
            return fail(st, want, false, req.headers, Failure::NotFound);
        }
    };
    let oldest = oldest_kept(today, st.retention_days);
    if parsed.day < oldest {
        return fail(st, want, true, req.headers, Failure::Expired);
    }
    let link = match lookup(st, parsed.day, parsed.format(), parsed.random).await {
        Ok(Some(link)) => link,
        // The oldest kept day may already be dropped by a replica whose clock
        // is a little ahead: a link we minted (the MAC says so) that is gone
        // from that day has expired, it is not unknown.
        Ok(None) if parsed.day == oldest => return fail(st, want, true, req.headers, Failure::Expired),
        Ok(None) => return fail(st, want, true, req.headers, Failure::NotFound),
        // The MAC proves we minted this pixel; an image must render even when the store is down.
        // Its event names the link by the token alone: the rollup and export look it up later.
        Err(e) if want == LinkKind::Open => {
            crate::log_limited!(warn, error = %e, "open pixel answered without its link: the store failed");
            record(st, want, &parsed, None, req);
            return pixel();
        }
        Err(e) => return fail(st, want, true, req.headers, Failure::Unavailable(e)),
    };
    match (want, link.kind) {
        (LinkKind::Click, LinkKind::Click) => match HeaderValue::from_maybe_shared(link.location) {
            Ok(v) => {
                record(st, want, &parsed, Some(link.ids), req);
                redirect(v)
            }
            Err(_) => ApiError::from(Error::Database("stored url is not a valid header".into())).into_response(),
        },
        (LinkKind::Open, LinkKind::Open) => {
            record(st, want, &parsed, Some(link.ids), req);
            pixel()
        }
        _ => ApiError::not_found().into_response(),
    }
}

/// Why a click or open could not be answered with its link.
enum Failure {
    NotFound,
    Expired,
    Unavailable(Error),
}

/// Answer a failed click or open. A pixel whose token we signed is always
/// the GIF (a mail client shows a broken image otherwise). An expired click
/// goes to the fallback URL when one is set. Otherwise a browser (`Accept:
/// text/html`) gets a small HTML page for the recipient and an API client
/// the JSON error, with the same status.
fn fail<S: Store>(st: &AppState<S>, want: LinkKind, signed: bool, headers: &HeaderMap, failure: Failure) -> Response<Body> {
    if want == LinkKind::Open && signed {
        return pixel();
    }
    if let (Failure::Expired, Some(url)) = (&failure, &st.fallback) {
        return redirect(url.clone());
    }
    let wants_html = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && want == LinkKind::Click {
        let (status, page) = match failure {
            Failure::NotFound => (StatusCode::NOT_FOUND, &st.pages.not_found),
            Failure::Expired => (StatusCode::NOT_FOUND, &st.pages.expired),
            Failure::Unavailable(e) => {
                crate::log_limited!(warn, error = %e, "click answered with the unavailable page: the store failed");
                (StatusCode::SERVICE_UNAVAILABLE, &st.pages.unavailable)
            }
        };
        return html(status, page.clone());
    }
    match failure {
        Failure::NotFound => ApiError::not_found().into_response(),
        Failure::Expired => ApiError::new(StatusCode::NOT_FOUND, "expired", "this link has expired").into_response(),
        Failure::Unavailable(e) => ApiError::from(e).into_response(),
    }
}

fn html(status: StatusCode, page: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(page));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, NO_STORE);
    // The page loads nothing: no scripts, styles or images from anywhere.
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Classify the hit and queue its event, with the link's letter and URL ids
/// when the lookup found them; never waits (a full queue drops and counts).
fn record<S: Store>(st: &AppState<S>, kind: LinkKind, token: &Parsed, link_ids: Option<LinkIds>, req: HitRequest<'_>) {
    let ua = req.headers.get(USER_AGENT).map_or(&b""[..], HeaderValue::as_bytes);
    let ua = &ua[..ua.len().min(MAX_USER_AGENT)];
    let ip = client_ip(req.peer, req.headers, &st.events.trusted_proxies);
    st.events.queue.push(Hit {
        at_ms: st.clock.now_ms(),
        kind,
        method: req.method,
        link_day: token.day,
        version: token.format(),
        random: token.random,
        link_ids,
        ip: IpBytes::new(st.events.anonymisation.apply(ip)),
        user_agent: ua.to_vec(),
        reason: st.events.classifier.at_capture(kind, req.method, ua),
    });
}

/// Cache, then negative cache, then one store lookup that fills one of them.
async fn lookup<S: Store>(
    st: &AppState<S>,
    day: crate::day::Day,
    version: token::Version,
    random: token::Random,
) -> crate::Result<Option<CachedLink>> {
    if let Some(hit) = st.cache.get(day, &random) {
        st.metrics.cache("link", true);
        return Ok(Some(hit));
    }
    st.metrics.cache("link", false);
    if st.negative.contains(day, &random) {
        st.metrics.cache("negative", true);
        return Ok(None);
    }
    st.metrics.cache("negative", false);
    let Some(r) = st.store.resolve(day, version, &random).await? else {
        st.negative.insert(day, random);
        return Ok(None);
    };
    let location = r.url.as_deref().map_or_else(Bytes::new, |u| Bytes::copy_from_slice(u.as_bytes()));
    let link = CachedLink { kind: r.kind, location, ids: r.ids };
    st.cache.insert(day, random, link.clone());
    Ok(Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real decoder reads the pixel as one 1x1 frame whose only pixel is
    /// fully transparent, and finds the trailer right after it.
    #[test]
    fn pixel_decodes_as_one_transparent_pixel() {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(&PIXEL_GIF[..]).expect("a GIF header and logical screen");
        assert_eq!((decoder.width(), decoder.height()), (1, 1));
        let frame = decoder.read_next_frame().expect("a decodable frame").expect("one frame");
        assert_eq!((frame.left, frame.top, frame.width, frame.height), (0, 0, 1, 1));
        assert_eq!(frame.buffer.len(), 4, "one RGBA pixel");
        assert_eq!(frame.buffer[3], 0, "the pixel is transparent: {:?}", frame.buffer);
        assert!(decoder.read_next_frame().expect("the trailer").is_none(), "exactly one frame");
    }
}
